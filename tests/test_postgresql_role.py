"""Fast checks of the postgresql role without containers: bad input fails before any change with a
message naming the fix, pg_hba is generated from inventory groups only, and the inventories agree."""

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, assert_refused, local_inventory, problem_lines, run_playbook

ROLE = ROOT / "roles" / "postgresql"
HBA_TEMPLATE = ROLE / "templates" / "etc" / "postgresql" / "15" / "main" / "pg_hba.conf.j2"
# Throw-away values of the vault_* secrets the platform contract maps into postgresql_users.
# (The MinIO secret of pgBackRest's user is among the role's inputs, used only with postgresql_backup.)
SECRETS = {
    **{
        f"vault_postgresql_{name}_password": f"test-{name}-pw"
        for name in ("airflow", "superset", "prod", "clickhouse", "airflow_reader", "monitoring")
    },
    "vault_minio_pgbackrest_secret_key": "test-pgbackrest-key",
}


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def apply_role(tmp_path: Path, role_vars: dict):
    """Apply the whole role to the controller itself with the given variables; it must stop in assert.yml."""
    play = {
        "name": "Apply the postgresql role with bad input",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {**SECRETS, "postgresql_listen_addresses": ["localhost"], **role_vars},
        "roles": ["postgresql"],
    }
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([play]))
    return run_playbook(playbook, "-i", "localhost,")


def refused(result, line: str, fix: str) -> str:
    """Stopped by the role's checks (one line per problem), before installing or changing anything,
    with no password in the output."""
    out = assert_refused(result, line, fix)
    assert "Install the PostgreSQL" not in out
    for secret in SECRETS.values():
        assert secret not in out
    return out


def test_user_without_password_fails_early_naming_user_and_variable(tmp_path):
    result = apply_role(
        tmp_path,
        {
            "postgresql_users": [{"name": "airflow", "password": "s3cret-airflow"}, {"name": "superset"}],
            "postgresql_databases": [{"name": "superset", "owner": "superset"}],
        },
    )
    out = refused(
        result,
        "postgresql_users[superset].password on localhost is empty",
        "set it (map it from vault_postgresql_superset_password) or give the user state: absent",
    )
    # ...and the output carries no password.
    assert "s3cret-airflow" not in out


def test_empty_password_from_an_unset_secret_fails_the_same_way(tmp_path):
    result = apply_role(tmp_path, {"vault_postgresql_clickhouse_password": ""})
    refused(
        result,
        "postgresql_users[clickhouse].password on localhost is empty",
        "map it from vault_postgresql_clickhouse_password",
    )


def test_database_owner_must_be_a_managed_user(tmp_path):
    result = apply_role(
        tmp_path,
        {
            "postgresql_users": [{"name": "airflow", "password": "x"}],
            "postgresql_databases": [{"name": "prod", "owner": "prod_owner"}],
        },
    )
    refused(
        result,
        "postgresql_databases[prod].owner on localhost is 'prod_owner'",
        "use one of postgresql_users (airflow) or postgres",
    )


def test_wildcard_listen_address_refused(tmp_path):
    result = apply_role(tmp_path, {"postgresql_listen_addresses": ["*"]})
    out = refused(
        result,
        "postgresql_listen_addresses on localhost is ['*']",
        "name the addresses to listen on (localhost and the private address), not a wildcard",
    )
    # The contract's users, databases and migrations are valid: this is the only problem.
    assert len(problem_lines(out)) == 1, problem_lines(out)


def test_access_entry_must_name_a_managed_database_and_user(tmp_path):
    result = apply_role(
        tmp_path, {"postgresql_hba_group_access": [{"group": "airflow", "database": "airflow", "user": "nobody"}]}
    )
    refused(result, "postgresql_hba_group_access on localhost is {", "its user is not in postgresql_users")


def test_migrations_need_their_file_and_a_unique_version(tmp_path):
    result = apply_role(
        tmp_path,
        {
            "postgresql_migrations": [
                {"database": "prod", "version": 1, "name": "taxi_schema", "file": "prod/001_schema.sql"},
                {"database": "prod", "version": 1, "name": "again", "file": "prod/001_schema.sql"},
                {"database": "prod", "version": 2, "name": "missing", "file": "prod/999_missing.sql"},
            ]
        },
    )
    out = refused(result, "postgresql_migrations[prod 1] on localhost is 1", "the version is used twice")
    assert any(
        line.startswith("postgresql_migrations[prod 2] on localhost is 'prod/999_missing.sql'")
        and "the file does not exist on the controller" in line
        for line in problem_lines(out)
    ), problem_lines(out)


@pytest.mark.parametrize(
    ("pin", "shown"),
    [
        ("15.18", "'15.18'"),  # no Debian revision: apt needs the whole version
        (15.18, "15.18"),  # unquoted in YAML: a number
        ("16.4-1.pgdg120+1", "'16.4-1.pgdg120+1'"),  # another major than postgresql_version
    ],
)
def test_package_pin_must_be_a_full_debian_version_of_the_major(tmp_path, pin, shown):
    result = apply_role(tmp_path, {"postgresql_package_version": pin})
    out = refused(
        result,
        f"postgresql_package_version on localhost is {shown}",
        "give a full Debian version of postgresql-15 as a quoted string, as apt-cache madison postgresql-15 lists it "
        '(e.g. "15.18-0+deb12u1" for 15), or "" for no pin',
    )
    assert len(problem_lines(out)) == 1, problem_lines(out)


def test_minor_upgrade_must_be_a_boolean(tmp_path):
    """playbooks/validate.yml, before any host (the role's argument spec refuses it too, when used alone)."""
    inventory = local_inventory(tmp_path, {"postgres": {"pg1": {"postgresql_minor_upgrade": "sometimes"}}}, **SECRETS)
    result = run_playbook(ROOT / "playbooks/validate.yml", "-i", inventory, "-e", "chplatform_components=postgresql")
    out = refused(result, "postgresql_minor_upgrade on pg1 is 'sometimes'", "use true or false")
    assert len(problem_lines(out)) == 1, problem_lines(out)


@pytest.mark.parametrize(
    ("role_vars", "specs", "state"),
    [
        # site.yml: what is installed stays (present), whatever apt offers on a new host.
        ({}, ["postgresql-15", "postgresql-client-15"], "present"),
        # playbooks/upgrade.yml: the major's newest minor release.
        ({"postgresql_minor_upgrade": True}, ["postgresql-15", "postgresql-client-15"], "latest"),
        # -e postgresql_minor_upgrade=true from the command line is a string.
        ({"postgresql_minor_upgrade": "true"}, ["postgresql-15", "postgresql-client-15"], "latest"),
        # A pin holds (or moves) the host at its version, in an upgrade run too.
        (
            {"postgresql_package_version": "15.18-0+deb12u1"},
            ["postgresql-15=15.18-0+deb12u1", "postgresql-client-15=15.18-0+deb12u1"],
            "present",
        ),
        (
            {"postgresql_package_version": "15.18-0+deb12u1", "postgresql_minor_upgrade": True},
            ["postgresql-15=15.18-0+deb12u1", "postgresql-client-15=15.18-0+deb12u1"],
            "present",
        ),
    ],
)
def test_server_packages_present_pinned_or_latest(tmp_path, role_vars, specs, state):
    """The apt arguments of the server packages' task (tasks/install.yml), from the role's own variables;
    the other packages (python3-psycopg2) are only ever present, by their own task."""
    out = tmp_path / "packages.json"
    playbook = write(
        tmp_path / "packages.yml",
        f"""
        - name: Compute the server packages' apt arguments from the role's variables
          hosts: localhost
          connection: local
          gather_facts: false
          vars_files: ["{ROLE}/defaults/main.yml", "{ROLE}/vars/main.yml"]
          vars:
            ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
          tasks:
            - name: Write them
              ansible.builtin.copy:
                content: "{{{{ {{'specs': __postgresql_server_package_specs,
                  'state': __postgresql_server_packages_state,
                  'others': postgresql_packages | difference(__postgresql_server_packages)}} | to_json }}}}"
                dest: "{out}"
                mode: "0600"
        """,
    )
    extra = json.dumps(role_vars)
    result = run_playbook(playbook, "-i", "localhost,", "-e", extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(out.read_text()) == {"specs": specs, "state": state, "others": ["python3-psycopg2"]}


def test_only_the_upgrade_playbook_upgrades_postgresql():
    """upgrade.yml turns the minor upgrade on for its run (vars on its import of services.yml, which reach
    every play imported below it); site.yml and the component playbooks never set it (present)."""
    upgrade = yaml.safe_load((ROOT / "playbooks/upgrade.yml").read_text())
    services = next(entry for entry in upgrade if entry.get("ansible.builtin.import_playbook") == "services.yml")
    assert services["vars"]["postgresql_minor_upgrade"] is True
    for path in [ROOT / "site.yml", *(ROOT / "playbooks").glob("*.yml"), *(ROOT / "inventories").rglob("*.yml")]:
        if path.name != "upgrade.yml":
            assert "postgresql_minor_upgrade" not in path.read_text(), path


def test_pg_hba_generated_from_inventory_groups(tmp_path):
    inventory = write(
        tmp_path / "hosts.yml",
        """
        all:
          children:
            postgres:
              hosts:
                pgx: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
            airflow:
              hosts:
                af2: {common_private_address: 127.0.11.6}
                af1: {common_private_address: 127.0.11.5}
            clickhouse: {hosts: {ch1: {common_private_address: 127.0.11.7}}}
            unrelated: {hosts: {x1: {common_private_address: 127.0.11.99}}}
        """,
    )
    out = tmp_path / "pg_hba.conf"
    access = write(
        tmp_path / "access.yml",
        """
        postgresql_hba_group_access:
          - {group: airflow, database: airflow, user: airflow}
          - {group: superset, database: superset, user: superset}
          - {group: clickhouse, database: prod, user: clickhouse}
        """,
    )
    playbook = write(
        tmp_path / "render.yml",
        f"""
        - name: Render pg_hba.conf from the role's template
          hosts: postgres
          gather_facts: false
          vars_files: ["{ROLE}/defaults/main.yml", "{ROLE}/vars/main.yml", "{access}"]
          tasks:
            - name: Render
              ansible.builtin.template:
                src: "{HBA_TEMPLATE}"
                dest: "{out}"
                mode: "0600"
        """,
    )
    result = run_playbook(playbook, "-i", str(inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    entries = [line.split() for line in out.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert entries == [
        ["local", "all", "postgres", "peer"],
        ["local", "postgres", "monitoring", "scram-sha-256"],
        ["hostssl", "airflow", "airflow", "127.0.11.5/32", "scram-sha-256"],
        ["hostssl", "airflow", "airflow", "127.0.11.6/32", "scram-sha-256"],
        ["hostssl", "prod", "clickhouse", "127.0.11.7/32", "scram-sha-256"],
    ]
    assert "127.0.11.99" not in out.read_text()


def test_the_platform_contract_defines_the_objects_once():
    """Users, databases, access and migrations live in the platform contract, not in the inventories."""
    contract = yaml.safe_load((ROOT / "roles/platform/defaults/main.yml").read_text())
    for inventory in ("lab", "production.example"):
        for path in (ROOT / "inventories" / inventory).rglob("*.yml"):
            if path.name == "vault.yml":
                continue
            data = yaml.safe_load(path.read_text()) or {}
            for key in (
                "postgresql_users",
                "postgresql_databases",
                "postgresql_hba_group_access",
                "postgresql_migrations",
            ):
                assert key not in data, f"{path} defines {key} again: it is the contract's"
    lab = contract
    for user in lab["postgresql_users"]:
        secret = "vault_postgresql_" + user["name"].removesuffix("_owner") + "_password"
        assert user["password"] == "{{ " + secret + " }}"
    versions = [m["version"] for m in lab["postgresql_migrations"]]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    for migration in lab["postgresql_migrations"]:
        sql = (ROOT / "files" / "postgresql" / migration["file"]).read_text()
        # Safe to re-run even outside the version gate: guarded DDL and conflict-tolerant inserts.
        assert "DROP " not in sql.upper()
        if "INSERT INTO" in sql:
            assert sql.count("\nINSERT INTO") == sql.count("\nON CONFLICT DO NOTHING;")
        if "CREATE TABLE" in sql:
            assert sql.count("CREATE TABLE") == sql.count("CREATE TABLE IF NOT EXISTS")


def run_gate(tmp_path: Path, sockdir: str, port: int, *extra: str):
    """The role's gate (tasks/health.yml) on the controller against a server on ``sockdir``/``port``, then
    the releases tasks/service.yml compares: the running server's (from the gate's query) and the
    installed package's (here a newer one, 15.99-0+deb12u1, as dpkg-query would print it)."""
    out = tmp_path / "releases.json"
    playbook = write(
        tmp_path / "gate.yml",
        f"""
        - name: The postgresql role's gate against a server on this controller
          hosts: localhost
          connection: local
          gather_facts: false
          vars_files: ["{ROLE}/defaults/main.yml", "{ROLE}/vars/main.yml"]
          vars:
            # Debian's python3 (user postgres may not read this virtualenv); become_user postgres from
            # root without sudo or temporary files.
            ansible_python_interpreter: /usr/bin/python3
            ansible_become_method: su
            ansible_pipelining: true
            __postgresql_gate: in a test
          tasks:
            - name: The gate
              ansible.builtin.import_tasks: "{ROLE}/tasks/health.yml"

            - name: Write the releases compared
              ansible.builtin.copy:
                content: "{{{{ {{'running': __postgresql_running_release, 'installed': __postgresql_installed_release,
                  'equal': __postgresql_running_release == __postgresql_installed_release}} | to_json }}}}"
                dest: "{out}"
                mode: "0600"
              vars:
                __postgresql_package_installed: {{stdout: "15.99-0+deb12u1"}}
        """,
    )
    args = ["-e", f"__postgresql_run_dir={sockdir}", "-e", f"postgresql_port={port}", *extra]
    return run_playbook(playbook, "-i", "localhost,", *args), out


def test_the_gate_passes_a_server_that_answers_and_reads_its_release(tmp_path, pg_service):
    result, out = run_gate(tmp_path, pg_service._sockdir, pg_service.port)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    releases = json.loads(out.read_text())
    server = subprocess.run(
        ["/usr/lib/postgresql/15/bin/postgres", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2]
    # The running release (15.18 from "15.18 (Debian 15.18-0+deb12u1)"), and a newer installed
    # package (15.99-0+deb12u1 -> 15.99) that tasks/service.yml would restart the server onto.
    assert releases == {"running": server, "installed": "15.99", "equal": False}


def test_the_gate_stops_the_run_naming_the_log_when_the_server_does_not_answer(tmp_path):
    result, _ = run_gate(tmp_path, str(tmp_path), 1, "-e", "__postgresql_ready_timeout=5")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        f"PostgreSQL on localhost did not accept connections and answer a query as postgres on {tmp_path} port 1"
        in (out)
    ), out[-3000:]
    assert "within 5 s" in out
    assert "/var/log/postgresql/postgresql-15-main.log" in out
