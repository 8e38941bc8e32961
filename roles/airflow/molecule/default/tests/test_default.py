"""Airflow on airflow01 (metadata on afpg01), checked from outside where possible."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import testinfra
import yaml

from tests.lab_secrets import lab_secret

AIRFLOW = testinfra.get_host("docker://airflow01")
PG = testinfra.get_host("docker://afpg01")
CLI = "/usr/local/sbin/airflow-cli"
SERVICES = ["api-server", "scheduler", "dag-processor", "triggerer"]
DAG_IDS = {
    "api_to_ext",
    "clickhouse_backup_full",
    "clickhouse_backup_incremental",
    "file_to_ext",
    "pg_to_ch",
    "trips_load",
}
# Through nginx over TLS (platform_web_tls), from afpg01, verified against the platform's CA there.
URL = "https://airflow01"
CA = "/etc/chplatform/tls/ca.crt"
CURL = f"curl --cacert {CA}"


def _cli_json(*args: str) -> object:
    out = AIRFLOW.check_output(f"{CLI} {' '.join(args)} --output json 2>/dev/null")
    # Airflow may log lines before the JSON document: take the last line that is JSON.
    return json.loads([line for line in out.splitlines() if line.startswith(("[", "{"))][-1])


@pytest.mark.parametrize("service", SERVICES)
def test_service_running(service: str) -> None:
    svc = AIRFLOW.service(f"airflow-{service}")
    assert svc.is_running
    assert svc.is_enabled


def test_secrets_file_is_private() -> None:
    env = AIRFLOW.file("/etc/airflow/airflow.env")
    assert env.mode == 0o600
    assert env.user == "root"
    assert "AIRFLOW__CORE__FERNET_KEY=" in env.content_string
    assert "fernet_key" not in AIRFLOW.file("/opt/airflow/airflow.cfg").content_string


def test_config_uses_fab_and_local_executor() -> None:
    cfg = AIRFLOW.file("/opt/airflow/airflow.cfg").content_string
    assert "auth_manager = airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager" in cfg
    assert "executor = LocalExecutor" in cfg
    assert "load_examples = False" in cfg


def test_statsd_exporter_turns_the_schedulers_heartbeat_into_a_prometheus_counter() -> None:
    """Airflow sends StatsD to 127.0.0.1; statsd_exporter serves it, named by the role's mapping."""
    assert AIRFLOW.service("statsd-exporter").is_running
    assert "statsd_on = True" in AIRFLOW.file("/opt/airflow/airflow.cfg").content_string
    deadline = time.monotonic() + 60
    while True:
        metrics = AIRFLOW.check_output("curl -sf http://127.0.0.1:9102/metrics")
        beats = [line for line in metrics.splitlines() if line.startswith("airflow_scheduler_heartbeat_total ")]
        if beats and float(beats[0].split()[1]) > 0:
            break
        assert time.monotonic() < deadline, "no airflow_scheduler_heartbeat_total > 0 from statsd_exporter in 60 s"
        time.sleep(3)
    print(beats[0])


def test_database_is_migrated() -> None:
    assert AIRFLOW.run(f"{CLI} db check-migrations -t 0").rc == 0


def test_login_page_from_another_host() -> None:
    page = PG.check_output(f"{CURL} -fsS {URL}/auth/login/")
    assert "password" in page.lower()
    assert "<form" in page.lower()


def test_admin_gets_a_token_and_reads_the_api() -> None:
    body = json.dumps({"username": "admin", "password": lab_secret("airflow_admin")})
    out = PG.check_output(f"{CURL} -fsS -X POST -H 'Content-Type: application/json' -d '{body}' {URL}/auth/token")
    token = json.loads(out)["access_token"]
    assert token.count(".") == 2  # a JWT
    dags = json.loads(PG.check_output(f"{CURL} -fsS -H 'Authorization: Bearer {token}' '{URL}/api/v2/dags?limit=100'"))
    assert {d["dag_id"] for d in dags["dags"]} >= DAG_IDS


def test_wrong_password_is_refused() -> None:
    body = json.dumps({"username": "admin", "password": "not-the-password"})
    code = PG.check_output(
        f"{CURL} -s -o /dev/null -w '%{{http_code}}' -X POST -H 'Content-Type: application/json' "
        f"-d '{body}' {URL}/auth/token"
    )
    assert code in {"401", "403"}


def test_all_dags_parsed_without_errors() -> None:
    deadline = time.monotonic() + 180
    while True:
        found = {d["dag_id"] for d in _cli_json("dags", "list")}
        if found >= DAG_IDS or time.monotonic() > deadline:
            break
        time.sleep(10)
    assert found >= DAG_IDS, f"missing DAGs: {DAG_IDS - found}"
    errors = AIRFLOW.check_output(f"{CLI} dags list-import-errors --output json 2>/dev/null")
    assert errors.strip().splitlines()[-1] in {"[]", "No data found"}, errors


@pytest.mark.parametrize(
    ("conn_id", "conn_type", "host", "port", "login"),
    [
        ("clickhouse_default", "clickhouse", "replica01", 8443, "etl"),
        ("postgres_prod", "postgres", "afpg01", 5432, "airflow_reader"),
        ("postgres_airflow_metadata", "postgres", "afpg01", 5432, "airflow"),
        ("minio_s3", "aws", None, None, "airflow"),
        ("kafka_default", "kafka", None, None, None),
    ],
)
def test_connection(conn_id: str, conn_type: str, host: str | None, port: int | None, login: str) -> None:
    conns = _cli_json("connections", "get", conn_id)
    conn = conns[0] if isinstance(conns, list) else conns
    assert conn["conn_type"] == conn_type
    assert (conn["host"] or None) == host
    assert (int(conn["port"]) if conn["port"] else None) == port
    assert (conn["login"] or None) == login
    if conn_id == "minio_s3":
        assert conn["extra_dejson"]["endpoint_url"] == "https://minio01:9000"
        # botocore verifies MinIO's certificate against the platform's CA.
        assert conn["extra_dejson"]["verify"] == "/etc/chplatform/tls/ca.crt"
    if conn_id == "kafka_default":
        # SASL_SSL as Kafka user airflow (its SCRAM password from the lab's secrets), the CA verifying the brokers.
        extra = dict(conn["extra_dejson"])
        assert len(extra.pop("sasl.password")) >= 16
        assert extra == {
            "bootstrap.servers": "kafka01:9092",
            "group.id": "airflow",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "airflow",
            "ssl.ca.location": "/etc/chplatform/tls/ca.crt",
        }
    if conn_id == "clickhouse_default":
        # HTTPS, the server verified against the platform's CA (platform_clickhouse_tls).
        assert conn["extra_dejson"] == {"secure": "true", "verify": "true", "ca_cert": "/etc/chplatform/tls/ca.crt"}
    if conn_type == "postgres":
        # TLS, the server verified against the platform's CA (platform_postgresql_tls).
        assert conn["extra_dejson"] == {"sslmode": "verify-full", "sslrootcert": "/etc/chplatform/tls/ca.crt"}


def _connection_test(conn_id: str) -> testinfra.backend.base.CommandResult:
    return AIRFLOW.run(f"{CLI} connections test {conn_id} 2>&1")


def test_connection_test_reaches_the_metadata_database() -> None:
    """`airflow connections test` is enabled ([core] test_connection) and logs in to afpg01 with the
    stored credentials (postgres_prod's user may connect from the clickhouse hosts only: pg_hba)."""
    result = _connection_test("postgres_airflow_metadata")
    assert result.rc == 0 and "Connection success!" in result.stdout, result.stdout


def test_connection_test_of_kafka_contacts_the_broker() -> None:
    """The Kafka hook's test asks the contract's broker for metadata (no Kafka in this scenario:
    it must fail naming kafka01:9092, not report success without contacting anything)."""
    result = _connection_test("kafka_default")
    assert result.rc == 1, result.stdout
    assert "Connection failed!" in result.stdout and "kafka01:9092" in result.stdout, result.stdout


def test_migration_stamp_matches_the_database() -> None:
    """The stamp that lets a re-run skip `airflow db check-migrations` names the installed Airflow
    and the database's current alembic revisions."""
    out = AIRFLOW.check_output(
        f"{CLI} --python /opt/airflow/airflow_objects.py --migration-state /opt/airflow/venv/.db-migrated.json"
    )
    state = json.loads(out.splitlines()[-1])
    assert state["recorded"] == state["current"], state
    defaults = yaml.safe_load((Path(__file__).resolve().parents[3] / "defaults" / "main.yml").read_text())
    assert state["current"]["airflow_version"] == defaults["airflow_version"]
    heads = PG.check_output("runuser -u postgres -- psql -d airflow -Atc 'SELECT version_num FROM alembic_version'")
    assert state["current"]["revisions"]["alembic_version"] == [heads.strip()]


def test_the_virtualenv_of_the_lock_is_linked_as_the_active_one() -> None:
    """One virtualenv per lock, venvs/<version>-<sha1[:12]>, complete (its stamp); /opt/airflow/venv
    links to it; the dumps' directory is root's alone; pg_dump is there for the next upgrade."""
    role = Path(__file__).resolve().parents[3]
    lock = (role.parents[1] / "files/bundle/python/airflow.lock").read_bytes()
    sha1 = hashlib.sha1(lock).hexdigest()  # noqa: S324  the role's name of a lock, not security
    version = yaml.safe_load((role / "defaults" / "main.yml").read_text())["airflow_version"]
    venv = f"/opt/airflow/venvs/{version}-{sha1[:12]}"
    link = AIRFLOW.file("/opt/airflow/venv")
    assert link.is_symlink and link.linked_to == venv
    assert AIRFLOW.file(f"{venv}/.installed-{sha1}").content_string == f"{version}\n"
    assert AIRFLOW.file(f"{venv}/requirements.lock").exists
    assert (
        "ExecStart=/opt/airflow/venv/bin/airflow"
        in AIRFLOW.file("/etc/systemd/system/airflow-scheduler.service").content_string
    )
    backups = AIRFLOW.file("/opt/airflow/backups")
    assert backups.is_directory and backups.mode == 0o700 and backups.user == "root"
    assert AIRFLOW.exists("pg_dump") and AIRFLOW.exists("pg_restore")


def test_variables() -> None:
    def get(key: str) -> str:
        return AIRFLOW.check_output(f"{CLI} variables get {key} 2>/dev/null").strip().splitlines()[-1]

    assert get("chplatform_api_quotes_url") == "http://airflow01:8000/quotes.json"
    assert get("chplatform_datasets_bucket") == "datasets"
    assert get("chplatform_backup_keep_full") == "4"


def test_metadata_connection_works_from_airflow() -> None:
    """The stored metadata connection's credentials and TLS parameters really log in to PostgreSQL
    from airflow01, over TLS; Airflow's own sessions (sql_alchemy_conn) are TLS too."""
    conn = _cli_json("connections", "get", "postgres_airflow_metadata")[0]
    script = (
        "import json, os, psycopg2; c = psycopg2.connect(host=os.environ['H'], port=os.environ['P'], "
        "user=os.environ['U'], password=os.environ['W'], dbname=os.environ['D'], **json.loads(os.environ['X'])); "
        "cur = c.cursor(); cur.execute('SELECT count(*) FROM dag'); print(cur.fetchone()[0]); "
        "cur.execute('SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()'); print(cur.fetchone()[0])"
    )
    out = AIRFLOW.check_output(
        f"H={conn['host']} P={conn['port']} U={conn['login']} W='{conn['password']}' D={conn['schema']} "
        f"X='{json.dumps(conn['extra_dejson'])}' /opt/airflow/venv/bin/python -c \"{script}\""
    )
    count, version = out.split()
    print(f"postgres_airflow_metadata: {count} DAGs over {version}")
    assert int(count) >= len(DAG_IDS) and version in ("TLSv1.2", "TLSv1.3")
    sessions = PG.check_output(
        "runuser -u postgres -- psql -d airflow -Atc \"SELECT count(*) FILTER (WHERE NOT s.ssl) || ' ' || count(*) "
        "FROM pg_stat_activity AS a JOIN pg_stat_ssl AS s USING (pid) WHERE a.usename = 'airflow' "
        'AND a.client_addr IS NOT NULL"'
    )
    plain, total = map(int, sessions.split())
    print(f"airflow's sessions on the metadata database: {total}, of them without TLS: {plain}")
    assert total > 0 and plain == 0


def test_fixture_api_serves_quotes() -> None:
    data = json.loads(PG.check_output("curl -fsS http://airflow01:8000/quotes.json"))
    assert len(data["quotes"]) > 0


# ---- The UI behind nginx (roles/web_proxy, platform_web_tls) ----


def test_https_answers_with_a_certificate_the_ca_verifies() -> None:
    """The health endpoint through nginx on 443, from afpg01, the chain and the name verified."""
    out = PG.check_output(f"{CURL} -fsS -w ' %{{http_code}} %{{ssl_verify_result}}' {URL}/api/v2/monitor/health")
    body, code, verify = out.rsplit(" ", 2)
    print(f"https://airflow01/api/v2/monitor/health: {code}, verify result {verify}: {body[:200]}")
    assert code == "200" and verify == "0"
    assert json.loads(body)["metadatabase"]["status"] == "healthy"
    headers = PG.check_output(f"{CURL} -fsS -o /dev/null -D - {URL}/api/v2/monitor/health").lower()
    assert "strict-transport-security: max-age=" in headers


def test_plain_http_is_a_permanent_redirect_to_https() -> None:
    out = PG.check_output("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' http://airflow01/dags?x=1")
    print(f"http://airflow01/dags?x=1: {out}")
    assert out == "301 https://airflow01/dags?x=1"


def test_tls_1_1_is_refused_and_1_2_and_1_3_are_served() -> None:
    # SECLEVEL=0: the client offers TLS 1.1 at all (Debian's OpenSSL would not), so a refusal is the server's.
    old = PG.run(
        f"openssl s_client -connect airflow01:443 -servername airflow01 -CAfile {CA} -tls1_1 "
        "-cipher 'DEFAULT:@SECLEVEL=0' </dev/null"
    )
    print(f"TLS 1.1: rc {old.rc}, {(old.stdout + old.stderr).strip().splitlines()[-1:]}")
    # (s_client prints "Protocol : TLSv1.1" for the attempt even when it failed: the alert is the answer.)
    assert old.rc != 0 and "alert protocol version" in old.stdout + old.stderr
    for version in ("tls1_2", "tls1_3"):
        new = PG.run(
            f"openssl s_client -connect airflow01:443 -servername airflow01 -CAfile {CA} -{version} </dev/null"
        )
        assert new.rc == 0 and "Verify return code: 0 (ok)" in new.stdout, (version, new.stdout[-500:])


def test_the_api_server_listens_on_loopback_only() -> None:
    assert AIRFLOW.socket("tcp://127.0.0.1:8080").is_listening
    assert not AIRFLOW.socket("tcp://0.0.0.0:8080").is_listening
    reached = PG.run("curl -sS -m 5 -o /dev/null http://airflow01:8080/")
    assert reached.rc != 0, "the API server answers on airflow01's network address"
    assert (
        "execution_api_server_url = http://127.0.0.1:8080/execution/"
        in AIRFLOW.file("/opt/airflow/airflow.cfg").content_string
    )


def test_nginx_holds_the_hosts_key_for_root_only() -> None:
    key = AIRFLOW.file("/etc/chplatform/tls/nginx/host.key")
    assert key.mode == 0o600 and key.user == "root"
    assert AIRFLOW.service("nginx").is_running and AIRFLOW.service("nginx").is_enabled
    assert not AIRFLOW.file("/etc/nginx/sites-enabled/default").exists
    assert AIRFLOW.run("nginx -t").rc == 0
