"""Checks of the postgresql role from outside: each consumer reaches its own database with its own
password and nothing else, over TLS that it verifies against the platform's CA; plain text, another
CA and TLS below 1.2 are refused; the read-only user reads prod and cannot write; a host outside the
consumer groups is refused by pg_hba. Passwords come from the lab secret files and are never printed:
they travel to the client in a .pgpass file copied with `docker cp`, not on any command line."""

import os
import shlex
import subprocess
import tempfile

import pytest
import testinfra

from tests.lab_secrets import lab_secret

testinfra_hosts = ["docker://pg01"]

SECRETS = {"airflow": "postgresql_airflow", "superset": "postgresql_superset", "clickhouse": "postgresql_clickhouse"}
WRONG = "certainly-not-the-password"


def secret(user: str) -> str:
    return lab_secret(SECRETS[user])


def install_pgpass(container: str) -> None:
    """Write a .pgpass for every consumer user into the container, without the passwords on any command line."""
    lines = "".join(f"pg01:5432:*:{user}:{secret(user)}\n" for user in SECRETS)
    with tempfile.NamedTemporaryFile("w", delete=False, dir=os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")) as f:
        os.chmod(f.name, 0o600)
        f.write(lines)
    try:
        subprocess.run(["docker", "cp", f.name, f"{container}:/root/.pgpass"], check=True, capture_output=True)
    finally:
        os.unlink(f.name)
    testinfra.get_host(f"docker://{container}").check_output(
        "chown root:root /root/.pgpass && chmod 0600 /root/.pgpass"
    )


@pytest.fixture(scope="module")
def server():
    return testinfra.get_host("docker://pg01")


@pytest.fixture(scope="module")
def client():
    install_pgpass("pgclient")
    yield testinfra.get_host("docker://pgclient")
    testinfra.get_host("docker://pgclient").run("rm -f /root/.pgpass")


@pytest.fixture(scope="module")
def stranger():
    install_pgpass("pgstranger")
    yield testinfra.get_host("docker://pgstranger")
    testinfra.get_host("docker://pgstranger").run("rm -f /root/.pgpass")


CA = "/etc/chplatform/tls/ca.crt"
# What every client of the platform passes (platform_postgresql_tls): TLS, the server's certificate
# and name verified against the platform's CA.
VERIFY_FULL = f"sslmode=verify-full sslrootcert={CA}"


def psql(host, user: str, db: str, sql: str, password: str | None = None, tls: str = VERIFY_FULL):
    """Run SQL on pg01 over the network as `user`; the password comes from .pgpass unless one is forced."""
    conninfo = f"host=pg01 port=5432 dbname={db} user={user} connect_timeout=5 {tls}"
    env = f"PGPASSWORD={shlex.quote(password)} " if password else ""
    return host.run(f"{env}psql {shlex.quote(conninfo)} -X -A -t -q -w -v ON_ERROR_STOP=1 -c {shlex.quote(sql)}")


def local_sql(server, db: str, sql: str) -> str:
    """Run SQL on pg01 as the postgres superuser through the local socket (peer)."""
    return server.check_output(
        f"runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1 -d {db} -c {shlex.quote(sql)}"
    )


def address(host) -> str:
    return host.check_output("hostname -I").split()[0]


# --- the server --------------------------------------------------------------------------------


def test_server_runs_postgresql_15_from_debian_in_the_data_root(server):
    assert server.package("postgresql-15").is_installed
    assert server.service("postgresql@15-main").is_running
    assert server.service("postgresql").is_enabled
    assert local_sql(server, "postgres", "SHOW server_version").startswith("15.")
    assert local_sql(server, "postgres", "SHOW data_directory") == "/data/postgresql/15/main"
    data = server.file("/data/postgresql/15/main")
    assert data.is_directory and data.user == "postgres" and data.mode == 0o700
    # No stray Debian default cluster in /var/lib/postgresql.
    assert server.check_output("pg_lsclusters --no-header | wc -l") == "1"


def test_listens_on_private_address_and_localhost_only(server):
    listening = server.check_output("ss -Hltn 'sport = :5432'")
    assert f"{address(server)}:5432" in listening
    assert "127.0.0.1:5432" in listening
    assert "0.0.0.0:5432" not in listening and "*:5432" not in listening


def test_passwords_are_scram_hashes(server):
    rows = local_sql(
        server,
        "postgres",
        "SELECT rolname || '=' || (rolpassword LIKE 'SCRAM-SHA-256$%') FROM pg_authid "
        "WHERE rolname IN ('airflow','superset','prod_owner','clickhouse') ORDER BY 1",
    ).splitlines()
    assert rows == ["airflow=true", "clickhouse=true", "prod_owner=true", "superset=true"]
    assert local_sql(server, "postgres", "SHOW password_encryption") == "scram-sha-256"
    # Least privilege: none of them is a superuser or may create roles or databases.
    assert (
        local_sql(
            server,
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('airflow','superset','prod_owner','clickhouse') "
            "AND (rolsuper OR rolcreaterole OR rolcreatedb)",
        )
        == "0"
    )


def test_databases_and_owners(server):
    rows = local_sql(
        server,
        "postgres",
        "SELECT datname || ':' || pg_get_userbyid(datdba) FROM pg_database "
        "WHERE datname IN ('airflow','superset','prod') ORDER BY 1",
    ).splitlines()
    assert rows == ["airflow:airflow", "prod:prod_owner", "superset:superset"]
    # PUBLIC lost CONNECT: a user may connect only where it owns the database or was granted it.
    assert local_sql(server, "postgres", "SELECT has_database_privilege('superset', 'airflow', 'CONNECT')") == "f"
    assert local_sql(server, "postgres", "SELECT has_database_privilege('clickhouse', 'prod', 'CONNECT')") == "t"
    # ClickHouse's CONNECT on airflow comes with its table grants from the airflow role, not from here.
    assert local_sql(server, "postgres", "SELECT has_database_privilege('clickhouse', 'airflow', 'CONNECT')") == "f"


def test_pg_hba_lists_exactly_the_consumers(server):
    client_ip = address(testinfra.get_host("docker://pgclient"))
    stranger_ip = address(testinfra.get_host("docker://pgstranger"))
    hba = server.file("/etc/postgresql/15/main/pg_hba.conf")
    assert hba.user == "postgres" and hba.mode == 0o640
    entries = [line.split() for line in hba.content_string.splitlines() if line.strip() and not line.startswith("#")]
    assert entries == [
        ["local", "all", "postgres", "peer"],
        ["local", "postgres", "monitoring", "scram-sha-256"],
        ["hostssl", "airflow", "airflow", f"{client_ip}/32", "scram-sha-256"],
        ["hostssl", "superset", "superset", f"{client_ip}/32", "scram-sha-256"],
        ["hostssl", "prod", "clickhouse", f"{client_ip}/32", "scram-sha-256"],
        ["hostssl", "airflow", "clickhouse", f"{client_ip}/32", "scram-sha-256"],
        ["hostssl", "prod", "airflow_reader", f"{client_ip}/32", "scram-sha-256"],
    ]
    assert stranger_ip not in hba.content_string


def test_the_metrics_exporter_reads_the_server_as_a_pg_monitor_member_only(server):
    """prometheus-postgres-exporter logs in as monitoring (member of pg_monitor, nothing else) over
    the local socket; its login file is readable by its service user only."""
    metrics = server.check_output("curl -sf http://127.0.0.1:9187/metrics")
    assert "\npg_up 1\n" in metrics, [line for line in metrics.splitlines() if line.startswith("pg_up")]
    assert "pg_settings_max_connections" in metrics and "pg_stat_activity_count" in metrics
    member_of = local_sql(
        server,
        "postgres",
        "SELECT string_agg(b.rolname, ',') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = 'monitoring'",
    )
    assert member_of == "pg_monitor"
    assert (
        local_sql(server, "prod", "SELECT has_table_privilege('monitoring', 'public.schema_migrations', 'SELECT')")
        == "f"
    )
    env = server.file("/etc/default/prometheus-postgres-exporter")
    assert (env.user, env.group, env.mode) == ("root", "prometheus", 0o640)


def test_prod_migrations_recorded_once(server):
    applied = local_sql(
        server, "prod", "SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM public.schema_migrations"
    )
    assert applied == "1:taxi_schema,2:reference_data,3:fleet"
    owners = local_sql(server, "prod", "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert owners == "prod_owner"


def test_updated_at_trigger_keeps_the_watermark_current(server):
    # In one transaction (rolled back): the stored value predates it, an UPDATE moves it to now().
    out = local_sql(
        server,
        "prod",
        "BEGIN; SELECT updated_at < now() FROM public.zones WHERE zone_id = 43; "
        "UPDATE public.zones SET name = name WHERE zone_id = 43 RETURNING updated_at = now(); ROLLBACK;",
    )
    assert out.split() == ["t", "t"]


# --- the consumers, from another host ----------------------------------------------------------


@pytest.mark.parametrize("user", ["airflow", "superset"])
def test_metadata_user_owns_its_database(client, user):
    result = psql(
        client,
        user,
        user,
        "DROP TABLE IF EXISTS molecule_probe; CREATE TABLE molecule_probe (id int PRIMARY KEY, note text); "
        "INSERT INTO molecule_probe VALUES (1, 'hello'); SELECT note FROM molecule_probe; DROP TABLE molecule_probe;",
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "hello"


def test_clickhouse_reads_prod(client):
    result = psql(
        client,
        "clickhouse",
        "prod",
        "SELECT (SELECT count(*) FROM boroughs) || ',' || (SELECT count(*) FROM zones) || ',' "
        "|| (SELECT count(*) FROM drivers) || ',' || (SELECT count(*) FROM vehicles)",
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "6,113,150,120"
    joined = psql(
        client,
        "clickhouse",
        "prod",
        "SELECT b.name FROM zones z JOIN boroughs b USING (borough_id) WHERE z.name = 'JFK Airport'",
    )
    assert joined.stdout.strip() == "Queens", joined.stderr


def test_clickhouse_reads_tables_created_later_by_the_owner(server, client):
    local_sql(
        server,
        "prod",
        "SET ROLE prod_owner; CREATE TABLE public.molecule_later (id int); "
        "INSERT INTO public.molecule_later VALUES (7)",
    )
    try:
        result = psql(client, "clickhouse", "prod", "SELECT id FROM molecule_later")
        assert result.rc == 0, result.stderr
        assert result.stdout.strip() == "7"
    finally:
        local_sql(server, "prod", "DROP TABLE public.molecule_later")


def test_clickhouse_cannot_write_prod(client):
    insert = psql(client, "clickhouse", "prod", "INSERT INTO vendors (vendor_id, name) VALUES (99, 'Intruder')")
    assert insert.rc != 0
    assert "permission denied for table vendors" in insert.stderr
    create = psql(client, "clickhouse", "prod", "CREATE TABLE intruder (id int)")
    assert create.rc != 0
    assert "permission denied for schema public" in create.stderr


@pytest.mark.parametrize(
    ("user", "db"),
    [("airflow", "superset"), ("superset", "airflow"), ("clickhouse", "superset"), ("airflow", "prod")],
)
def test_wrong_database_refused_by_pg_hba(client, user, db):
    result = psql(client, user, db, "SELECT 1")
    assert result.rc != 0
    assert f'no pg_hba.conf entry for host "{address(client)}", user "{user}", database "{db}"' in result.stderr


def test_clickhouse_passes_pg_hba_to_airflow_but_has_no_connect_there_without_the_airflow_role(client):
    """pg_hba lets the clickhouse hosts reach database airflow as clickhouse (named collection
    pg_airflow); CONNECT and SELECT on four tables come from the airflow role after its migrations
    (tests/test_clickhouse_airflow_grants.py), which this scenario does not run."""
    result = psql(client, "clickhouse", "airflow", "SELECT 1")
    assert result.rc != 0
    assert 'permission denied for database "airflow"' in result.stderr, result.stderr


@pytest.mark.parametrize("user", ["airflow", "superset", "clickhouse"])
def test_wrong_password_refused(client, user):
    db = {"clickhouse": "prod"}.get(user, user)
    result = psql(client, user, db, "SELECT 1", password=WRONG)
    assert result.rc != 0
    assert f'password authentication failed for user "{user}"' in result.stderr


def test_stranger_host_refused_even_with_the_right_password(stranger):
    for user, db in (("airflow", "airflow"), ("clickhouse", "prod")):
        result = psql(stranger, user, db, "SELECT 1")
        assert result.rc != 0
        assert f'no pg_hba.conf entry for host "{address(stranger)}", user "{user}"' in result.stderr


# --- TLS -----------------------------------------------------------------------------------------


def test_the_server_presents_its_host_certificate_from_the_platform_ca(server):
    key = server.file("/etc/chplatform/tls/postgresql/host.key")
    assert key.user == "postgres" and key.mode == 0o600
    assert local_sql(server, "postgres", "SHOW ssl") == "on"
    assert local_sql(server, "postgres", "SHOW ssl_cert_file") == "/etc/chplatform/tls/postgresql/host.crt"
    assert local_sql(server, "postgres", "SHOW ssl_min_protocol_version") == "TLSv1.2"
    verified = server.check_output(f"openssl verify -CAfile {CA} /etc/chplatform/tls/postgresql/host.crt")
    print(verified)
    assert verified.endswith(": OK")


def test_clients_connect_over_tls_verifying_the_server(client):
    row = psql(client, "airflow", "airflow", "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert row.rc == 0, row.stderr
    print(f"airflow -> pg01 ({VERIFY_FULL}): ssl|version = {row.stdout.strip()}")
    assert row.stdout.strip() in ("t|TLSv1.2", "t|TLSv1.3")


def test_plain_text_is_refused(client):
    result = psql(client, "airflow", "airflow", "SELECT 1", tls="sslmode=disable")
    assert result.rc != 0
    assert f'no pg_hba.conf entry for host "{address(client)}", user "airflow", database "airflow", no encryption' in (
        result.stderr
    ), result.stderr


def test_a_client_trusting_another_ca_refuses_the_server(client):
    """The server's certificate is checked: a client with some other CA as its root stops."""
    client.check_output(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj '/CN=other CA' "
        "-keyout /tmp/other-ca.key -out /tmp/other-ca.crt 2>/dev/null"
    )
    result = psql(client, "airflow", "airflow", "SELECT 1", tls="sslmode=verify-full sslrootcert=/tmp/other-ca.crt")
    assert result.rc != 0
    assert "certificate verify failed" in result.stderr, result.stderr


def test_no_protocol_below_tls_1_2(client):
    """sslscan (Debian's) through PostgreSQL's STARTTLS: TLS 1.2 or 1.3 only."""
    client.check_output(
        "command -v sslscan >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sslscan >/dev/null"
    )
    out = client.check_output(
        "sslscan --no-colour --starttls-psql --no-ciphersuites --no-groups --no-heartbleed --no-renegotiation "
        "--no-compression --no-fallback pg01:5432"
    )
    protocols = dict(line.split()[:2] for line in out.splitlines() if line.startswith(("SSLv", "TLSv")))
    print(f"sslscan pg01:5432: {protocols}")
    assert protocols, out
    assert all(state == "disabled" for name, state in protocols.items() if name not in ("TLSv1.2", "TLSv1.3")), out
    assert "enabled" in (protocols.get("TLSv1.2"), protocols.get("TLSv1.3")), out
