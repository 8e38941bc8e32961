"""The airflow role's dump before a migration and its restore after a failed one (tasks/upgrade.yml),
run as the role runs them: the commands taken from the task file, with the libpq environment the role
renders (__airflow_db_env of vars/main.yml: the owner's password, verify-full TLS against a CA), as
the database's owner over TCP, against a real PostgreSQL 15 holding the real metadata schema of the
pinned Airflow (`airflow db migrate`, as in the role).

A failed migration is played by hand, as Airflow leaves one (each migration commits on its own): a
new table referencing dag, a new column, a moved alembic revision, a deleted variable. The role's
restore brings back exactly the dump (variables, connections, the schema, ClickHouse's grant),
where `pg_restore --clean --if-exists --single-transaction` refuses (the new table depends on dag).

Also: a held migration lock (the molecule drill's failure) fails the pinned Airflow's `db migrate`
within seconds, and the role's message names the lock timeout; and tasks/upgrade.yml as a whole,
with the role's airflow-cli wrapper, on this controller (no systemd: no services, a stand-in health
endpoint): the failed switch restores the dump and links the old virtualenv again, the retry
switches and keeps both virtualenvs."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_playbook
from tests.services import PG_CLICKHOUSE_USER, Postgres

DB = "airflow_upgrade"
OWNER = "airflow_upgrade_owner"
PASSWORD = "chplatform-test-airflow-upgrade"  # noqa: S105  test-only service on 127.0.0.1
# The switch of airflow (roles/airflow/tasks/upgrade.yml) is the common role's, shared with superset.
TASKS = ROOT / "roles/common/tasks/venv_switch.yml"

ENV_PLAYBOOK = """\
- name: Render the airflow role's libpq environment
  hosts: localhost
  gather_facts: false
  vars_files: ["{vars}"]
  tasks:
    - name: Write __airflow_db_env
      ansible.builtin.copy:
        content: "{{{{ __airflow_db_env | to_json }}}}"
        dest: "{dest}"
        mode: "0600"
"""


def _tasks(items: list) -> list[dict]:
    """Every task of a task list, those inside blocks and rescues too."""
    out = []
    for task in items:
        out.append(task)
        for key in ("block", "rescue", "always"):
            out += _tasks(task.get(key, []))
    return out


def role_command(name: str, dump: Path) -> list[str]:
    task = next(t for t in _tasks(yaml.safe_load(TASKS.read_text())) if t.get("name") == name)
    argv = task["ansible.builtin.command"]["argv"]
    assert task.get("no_log") is True, f"{name}: the environment holds the password"
    return [str(dump) if a == "{{ __common_venv_dump }}" else a for a in argv]


def role_db_env(pg: Postgres, tmp: Path) -> dict[str, str]:
    (tmp / "env.yml").write_text(ENV_PLAYBOOK.format(vars=ROOT / "roles/airflow/vars/main.yml", dest=tmp / "env.json"))
    extra = {
        "airflow_db_host": "127.0.0.1",
        "airflow_db_port": pg.port,
        "airflow_db_name": DB,
        "airflow_db_user": OWNER,
        "airflow_db_password": PASSWORD,
        "platform_postgresql_tls": {"sslmode": "verify-full", "sslrootcert": pg.ca_file},
        "ansible_python_interpreter": sys.executable,
    }
    (tmp / "extra.json").write_text(json.dumps(extra))
    run = run_playbook(tmp / "env.yml", "-i", "localhost,", "-c", "local", "-e", f"@{tmp / 'extra.json'}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    env = json.loads((tmp / "env.json").read_text())
    assert env == {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg.port),
        "PGDATABASE": DB,
        "PGUSER": OWNER,
        "PGPASSWORD": PASSWORD,
        "PGCONNECT_TIMEOUT": "10",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": pg.ca_file,
    }
    return env


def migrate(pg: Postgres, tmp: Path, fresh: bool = True) -> None:
    """A fresh database of its owner, CONNECT taken from PUBLIC (the postgresql role), migrated by the
    pinned Airflow as the role does (fresh=False: `db migrate` on the database as it is)."""
    from tests.test_clickhouse_airflow_grants import airflow_venv

    venv = airflow_venv()
    if fresh:
        pg.psql("postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        pg.psql("postgres", f"DROP ROLE IF EXISTS {OWNER}")
        pg.psql("postgres", f"CREATE ROLE {OWNER} LOGIN PASSWORD '{PASSWORD}'")
        pg.psql("postgres", f"CREATE DATABASE {DB} OWNER {OWNER}")
        pg.psql(DB, f"REVOKE CONNECT, TEMPORARY ON DATABASE {DB} FROM PUBLIC")
    conn = f"postgresql+psycopg2://{OWNER}:{PASSWORD}@127.0.0.1:{pg.port}/{DB}"
    cli = "import sys; from airflow.__main__ import main; sys.argv = ['airflow', 'db', 'migrate']; main()"
    proc = subprocess.run(
        [str(venv / "bin/python"), "-c", cli],
        env={"PATH": f"{venv}/bin:/usr/bin:/bin", "AIRFLOW_HOME": str(tmp), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
             "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn, "PGSSLMODE": "verify-full", "PGSSLROOTCERT": pg.ca_file},
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def as_owner(pg: Postgres, sql: str) -> str:
    """SQL as the database's owner (what a migration runs as)."""
    return pg.psql(DB, f"SET ROLE {OWNER}; {sql}")


def state(pg: Postgres) -> dict:
    q = lambda sql: pg.psql(DB, sql).strip()  # noqa: E731  a one-line shorthand for the checks below
    return {
        "revision": q("SELECT version_num FROM alembic_version"),
        "variables": q("SELECT string_agg(key || '=' || val, ',' ORDER BY key) FROM variable"),
        "connections": q("SELECT string_agg(conn_id, ',' ORDER BY conn_id) FROM connection"),
        "tables": q("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "variable_columns": q(
            "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns"
            " WHERE table_name = 'variable'"
        ),
        "clickhouse_reads_dag": q(f"SELECT has_table_privilege('{PG_CLICKHOUSE_USER}', 'public.dag', 'SELECT')"),
        "owner_connects": q(f"SELECT has_database_privilege('{OWNER}', '{DB}', 'CONNECT')"),
    }


HOLDER = "chplatform-test-migration-lock"


def release(pg: Postgres, holder: subprocess.Popen) -> None:
    """End the session that holds the lock (killing psql alone leaves its backend asleep, holding it)."""
    pg.psql(DB, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{HOLDER}'")  # noqa: S608  a constant of this test, no outside input
    holder.wait(timeout=30)


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=300, check=False, cwd=cwd
    )


def hold_the_migration_lock(pg) -> subprocess.Popen:
    """A psql session that takes Airflow's migration lock (advisory lock 1 of the database) and keeps
    it for 10 minutes, as a second or hung `db migrate` would; returned once the lock is held. The
    caller ends it (terminate) when done."""
    import time

    from tests.services import PG_BIN

    holder = subprocess.Popen(
        [str(PG_BIN / "psql"), "-h", pg._sockdir, "-p", str(pg.port), "-d", DB, "-U", "postgres",
         "-c", "SELECT pg_advisory_lock(1)", "-c", "SELECT pg_sleep(600)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        user="postgres" if os.geteuid() == 0 else None, env={**os.environ, "PGAPPNAME": HOLDER},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while pg.psql(DB, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 1").strip() != "1":
        if time.monotonic() >= deadline:
            holder.terminate()
            raise AssertionError("the holder did not get the lock")
        time.sleep(0.2)
    return holder


def test_restore_after_a_failed_migration_brings_back_the_dump(pg_service: Postgres, tmp_path: Path) -> None:
    pg = pg_service
    migrate(pg, tmp_path)
    env = role_db_env(pg, tmp_path)
    # Data of a running platform: variables, a connection; ClickHouse's grant.
    as_owner(
        pg,
        "INSERT INTO variable (key, val, is_encrypted) VALUES ('kept', 'yes', false), ('deleted_later', 'x', false);"
        " INSERT INTO connection (conn_id, conn_type, host, is_encrypted, is_extra_encrypted)"
        " VALUES ('pg_kept', 'postgres', 'afpg01', false, false);",
    )
    pg.psql(DB, f"GRANT CONNECT ON DATABASE {DB} TO {PG_CLICKHOUSE_USER}; GRANT SELECT ON dag TO {PG_CLICKHOUSE_USER}")
    before = state(pg)
    assert before["clickhouse_reads_dag"] == "t" and "kept=yes" in before["variables"]

    backups = tmp_path / "backups"
    backups.mkdir(mode=0o700)
    dump = backups / "airflow-before-3.3.2-0123456789ab.dump"
    dumped = run(role_command("Dump the metadata database before the migration", dump), env, tmp_path)
    assert dumped.returncode == 0, dumped.stderr
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert run(["pg_restore", "--list", str(dump)], {}, tmp_path).returncode == 0

    # What a migration that failed half-way leaves behind: its committed steps.
    as_owner(
        pg,
        "CREATE TABLE drill_new (id int PRIMARY KEY, dag_id varchar(250) REFERENCES dag (dag_id));"
        " ALTER TABLE variable ADD COLUMN drill_column text;"
        " UPDATE alembic_version SET version_num = 'drill0000000';"
        " DELETE FROM variable WHERE key = 'deleted_later';",
    )
    assert state(pg) != before

    # pg_restore --clean cannot drop what the new table references: it refuses, changing nothing.
    clean = run(
        ["pg_restore", "--no-password", "--clean", "--if-exists", "--single-transaction", "--dbname", DB, str(dump)],
        env,
        tmp_path,
    )
    assert clean.returncode != 0 and "depend" in clean.stderr, clean.stderr[-2000:]

    restored = run(role_command("Restore the metadata database from the dump, in one transaction", dump), env, tmp_path)
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert state(pg) == before
    assert pg.psql(DB, "SELECT to_regclass('public.drill_new')").strip() == ""
    assert sorted(p.name for p in backups.iterdir()) == [dump.name], "the restore's SQL file was not removed"

    # A failed restore (a dump that is not one) changes nothing: one transaction, stopped at the error.
    as_owner(pg, "DELETE FROM variable WHERE key = 'kept'")
    broken = backups / "broken.dump"
    broken.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    failed = run(role_command("Restore the metadata database from the dump, in one transaction", broken), env, tmp_path)
    assert failed.returncode != 0
    assert "kept=yes" not in state(pg)["variables"] and state(pg)["tables"] == before["tables"]


def test_a_held_migration_lock_fails_db_migrate_fast(pg_service: Postgres, tmp_path: Path) -> None:
    """The premise of the molecule drill (roles/airflow/molecule/default/tests/test_upgrade_drill.py):
    while a session holds Airflow's migration lock (advisory lock 1 of the database), the pinned
    Airflow's `db migrate` fails within seconds on its lock timeout, naming it."""
    import time

    pg = pg_service
    migrate(pg, tmp_path)
    holder = hold_the_migration_lock(pg)
    try:
        started = time.monotonic()
        with pytest.raises(AssertionError) as failed:
            migrate(pg, tmp_path, fresh=False)
        assert time.monotonic() - started < 60
    finally:
        release(pg, holder)
    stderr = str(failed.value).split("\nassert ")[0]
    assert "lock timeout" in stderr
    # The role's message names that cause, though Airflow's cleanup raised another error after it.
    message = failure_message(tmp_path, stderr.splitlines())
    print(message)
    assert "canceling statement due to lock timeout" in message
    assert "failed at step 'airflow db migrate (with the new virtualenv)'" in message
    assert "The metadata database was restored from /opt/airflow/backups/x.dump" in message


FAILURE_PLAYBOOK = """\
- name: The airflow role's failure message after a failed migration
  hosts: localhost
  gather_facts: false
  tasks: []
"""


def failure_message(tmp: Path, stderr_lines: list[str]) -> str:
    """Run the rescue's "Note what failed" and final fail task of the switch on a failed
    migration's output; return the message."""
    tasks = _tasks(yaml.safe_load(TASKS.read_text()))
    note = next(t for t in tasks if t.get("name") == "Note what failed")
    fail = next(t for t in tasks if t.get("name") == "Fail, naming the failed step, the new virtualenv and the dump")
    play = yaml.safe_load(FAILURE_PLAYBOOK)
    play[0]["vars"] = {
        "ansible_failed_result": {"stderr_lines": stderr_lines, "msg": "non-zero return code"},
        "__common_venv_step": "airflow db migrate (with the new virtualenv)",
        "common_venv_app": "Airflow",
        "common_venv_new": "/opt/airflow/venvs/new",
        "common_venv_old": "/opt/airflow/venvs/old",
        "__common_venv_dump": "/opt/airflow/backups/x.dump",
        "common_venv_link": "/opt/airflow/venv",
    }
    play[0]["tasks"] = [note, fail]
    (tmp / "fail.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    run = run_playbook(tmp / "fail.yml", "-i", "localhost,", "-c", "local", "-e",
                       f"ansible_python_interpreter={sys.executable}")  # fmt: skip
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0
    found = re.search(r"Upgrading Airflow to the virtualenv .*?repeats the switch\.", out.replace("\\'", "'"))
    assert found, out[-3000:]
    return found.group(0)


# --------------------------------------------------------------------------- tasks/upgrade.yml, whole

SWITCH_PLAYBOOK = """\
- name: The airflow role's switch, on this controller
  hosts: airflow
  gather_facts: false
  vars_files: ["{vars}"]
  tasks:
    - name: Install the role's airflow-cli wrapper
      ansible.builtin.template:
        src: "{templates}/usr/local/sbin/airflow-cli.j2"
        dest: "{wrapper}"
        mode: "0755"
    - name: What tasks/venv.yml found
      ansible.builtin.set_fact:
        __airflow_venv_old: "{{{{ airflow_home }}}}/venvs/old"
        __airflow_venv_new: "{{{{ airflow_home }}}}/venvs/new"
    - name: Run tasks/upgrade.yml (the common role's venv_switch.yml with the role's migration and health check)
      ansible.builtin.import_role:
        name: airflow
        tasks_from: upgrade.yml
"""

HEALTH_SERVER = """\
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"metadatabase": {"status": "healthy"}}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_the_switch_and_the_switch_back_run_for_real(pg_service: Postgres, tmp_path: Path) -> None:
    """tasks/upgrade.yml as a whole, on this controller (no systemd here: no services to stop and
    start, a stand-in answers the health check): the role's airflow-cli wrapper runs the pinned
    Airflow's `db migrate` from the new virtualenv (--venv). While Airflow's migration lock is held,
    the run fails with the role's message; the link is back on the old virtualenv; the database is
    restored from the dump (a row deleted after the dump is back: the restore ran). Then, the lock
    released, the switch succeeds: the link on the new virtualenv, the old one kept."""

    from tests.conftest import local_inventory
    from tests.services import PG_BIN, free_port
    from tests.test_clickhouse_airflow_grants import airflow_venv

    pg = pg_service
    migrate(pg, tmp_path)
    as_owner(pg, "INSERT INTO variable (key, val, is_encrypted) VALUES ('kept', 'yes', false)")
    home = tmp_path / "home"
    (home / "venvs").mkdir(parents=True)
    (home / "backups").mkdir(mode=0o700)
    for name in ("old", "new"):  # both the pinned Airflow (the drill's "same wheels, another lock")
        (home / "venvs" / name).symlink_to(airflow_venv())
    (home / "venv").symlink_to(home / "venvs/old")
    conn = f"postgresql+psycopg2://{OWNER}:{PASSWORD}@127.0.0.1:{pg.port}/{DB}"
    env_file = tmp_path / "airflow.env"
    env_file.write_text(
        f"AIRFLOW_HOME='{home}'\nAIRFLOW__DATABASE__SQL_ALCHEMY_CONN='{conn}'\nAIRFLOW__CORE__LOAD_EXAMPLES=False\n"
        f"PGSSLMODE=verify-full\nPGSSLROOTCERT='{pg.ca_file}'\nPATH='/usr/local/bin:/usr/bin:/bin'\n"
    )
    port = free_port()
    health = subprocess.Popen([sys.executable, "-c", HEALTH_SERVER, str(port)])
    (tmp_path / "switch.yml").write_text(
        SWITCH_PLAYBOOK.format(
            vars=ROOT / "roles/airflow/vars/main.yml",
            templates=ROOT / "roles/airflow/templates",
            wrapper=tmp_path / "airflow-cli",
        )
    )
    inventory = local_inventory(
        tmp_path, {"airflow": {"af1": {}}},
        airflow_home=str(home), airflow_venv=str(home / "venv"), airflow_user=os.environ.get("USER", "root"),
        airflow_keep_venvs=2, airflow_api_port=port, airflow_db_host="127.0.0.1", airflow_db_port=pg.port,
        airflow_db_name=DB, airflow_db_user=OWNER, airflow_db_password=PASSWORD,
        platform_postgresql_tls={"sslmode": "verify-full", "sslrootcert": pg.ca_file},
    )  # fmt: skip
    # The role's internal variables (vars/main.yml, above inventory variables): as extra vars.
    internal = {"__airflow_services": [], "__airflow_cli": str(tmp_path / "airflow-cli"),
                "__airflow_env_file": str(env_file)}  # fmt: skip
    (tmp_path / "internal.json").write_text(json.dumps(internal))
    extra = ("-e", f"@{tmp_path / 'internal.json'}")
    holder = hold_the_migration_lock(pg)
    try:
        # A row deleted after the dump, just before the migration, shows that the restore ran: this
        # wrapper of the role's wrapper deletes it, then migrates (as if the migration had removed it).
        deleting = tmp_path / "delete-then-cli"
        psql = f"{PG_BIN / 'psql'} -h {pg._sockdir} -p {pg.port} -U postgres -d {DB}"
        deleting.write_text(
            f"#!/bin/sh\nset -e\nrunuser -u postgres -- {psql} -qc \"DELETE FROM variable WHERE key = 'kept'\"\n"  # noqa: S608  a constant of this test, no outside input
            f'exec {tmp_path / "airflow-cli"} "$@"\n'
        )
        deleting.chmod(0o755)
        before = state(pg)
        failed = run_playbook(
            tmp_path / "switch.yml", "-i", inventory, *extra, "-e", f"__airflow_cli={deleting}", timeout=600
        )
    except BaseException:
        health.kill()
        raise
    finally:
        release(pg, holder)
    out = " ".join((failed.stdout + failed.stderr).split()).replace("''", "'")
    assert failed.returncode != 0, out[-3000:]
    message = re.search(r"Upgrading Airflow to the virtualenv .*?repeats the switch\.", out)
    assert message, out[-4000:]
    print(message.group(0))
    assert "canceling statement due to lock timeout" in message.group(0)
    assert "the old version runs again from " + str(home / "venvs/old") in message.group(0)
    dump = Path(re.search(r"restored from (\S+\.dump)", message.group(0)).group(1))
    assert dump.parent == home / "backups" and stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert os.readlink(home / "venv") == str(home / "venvs/old")
    assert state(pg) == before, "the database is not what the dump held"

    try:
        done = run_playbook(tmp_path / "switch.yml", "-i", inventory, *extra, timeout=600)
    finally:
        health.kill()
    assert done.returncode == 0, done.stdout[-4000:]
    assert os.readlink(home / "venv") == str(home / "venvs/new")
    assert sorted(p.name for p in (home / "venvs").iterdir()) == ["new", "old"]
    assert len(list((home / "backups").glob("*.dump"))) == 2
    assert state(pg) == before
