"""The upgrade drill (runs last: after test_default and test_ui): a changed lock whose migration
fails, then the retry that succeeds (roles/airflow/tasks/upgrade.yml).

The changed lock is the pinned one plus a comment line: another sha1, so another virtualenv,
venvs/<version>-<its sha1[:12]>, beside the active one; the role switches around `airflow db migrate`.
The drill does not pay for a second pip install of Airflow: it prepares that virtualenv as the
role's install would leave it (tests/molecule_runs.copy_virtualenv: a copy of the active one, its
scripts pointed at the copy, the stamp of the new lock), so the role goes straight to the switch.
The install itself (the common role's venv.yml, with pip) ran in the scenario's converge, and
tests/test_airflow_venv.py installs a changed lock beside an active one for real.

How the migration fails, for real and without touching the role: `airflow db migrate` first takes
Airflow's migration lock, a PostgreSQL advisory lock (airflow.utils.db.DBLocks.MIGRATIONS, key 1,
in database airflow), waiting lock_timeout (1.8 s) at most. A session on afpg01 holds that lock for
the whole run, as a second `db migrate` or a hung one would, so the NEW virtualenv's migration fails
with "canceling statement due to lock timeout". The running services never take that lock, nor do
pg_dump and the restore. The role must then restore the dump it took, link the old virtualenv
again, start the old services, wait for their health, and fail the play naming the step, the new
virtualenv and the dump, and saying the old version runs again. Checked from outside: the link,
which virtualenv each service's process has its libraries mapped from, the API server's health, the
metadata database's rows (a variable written by this test, the role's connections and variables,
the DAGs and their runs), the migration stamp against the database.

Then the lock is released and the same changed lock runs again: no pip (the new virtualenv was kept),
a successful switch (the services on the new virtualenv, the data intact, the old virtualenv kept
for airflow_keep_venvs = 2), and a third run changes nothing."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import testinfra

from tests.molecule_runs import (
    PIP_TASK,
    copy_virtualenv,
    failed_switch_message,
    host_recap,
    run_scenario_playbook,
    task_output,
    wait_for,
)

AIRFLOW = testinfra.get_host("docker://airflow01")
PG = testinfra.get_host("docker://afpg01")
CLI = "/usr/local/sbin/airflow-cli"
SERVICES = ["api-server", "scheduler", "dag-processor", "triggerer"]
SCENARIO = Path(__file__).resolve().parent.parent
ROOT = SCENARIO.parents[3]
LOCK = ROOT / "files/bundle/python/airflow.lock"
HOLDER = "chplatform-upgrade-drill"
# The rows that must survive: what the platform and its users put into the metadata database.
ROWS = """
SELECT json_build_object(
  'variables', (SELECT json_object_agg(key, val ORDER BY key) FROM variable),
  'connections', (SELECT json_agg(conn_id ORDER BY conn_id) FROM connection),
  'dags', (SELECT json_agg(dag_id ORDER BY dag_id) FROM dag),
  'dag_runs', (SELECT json_agg(dag_id || '/' || run_id ORDER BY dag_id, run_id) FROM dag_run),
  'users', (SELECT json_agg(username ORDER BY username) FROM ab_user),
  'revision', (SELECT json_agg(version_num) FROM alembic_version))
"""


def psql(sql: str) -> str:
    return PG.check_output(f"runuser -u postgres -- psql -d airflow -Atc {shlex.quote(sql)}")


def rows() -> dict:
    """The rows as stored (values Airflow encrypts with its Fernet key compare as their ciphertext)."""
    return json.loads(psql(" ".join(ROWS.split())))


def same_rows(before: dict, after: dict) -> None:
    """Everything as before; DAG runs the scheduler may have added in the meantime aside."""
    assert {k: v for k, v in after.items() if k != "dag_runs"} == {k: v for k, v in before.items() if k != "dag_runs"}
    assert set(before["dag_runs"] or []) <= set(after["dag_runs"] or []), "DAG runs were lost"


def variable(key: str) -> str:
    return AIRFLOW.check_output(f"{CLI} variables get {key} 2>/dev/null").splitlines()[-1]


def converge(*args: str) -> subprocess.CompletedProcess:
    """The scenario's converge.yml, on airflow01 only."""
    return run_scenario_playbook(SCENARIO, "converge.yml", "--limit", "airflow01", *args)


def recap(run: subprocess.CompletedProcess) -> dict[str, int]:
    return host_recap(run, "airflow01")


def active_venv() -> str:
    return AIRFLOW.check_output("readlink /opt/airflow/venv")


def main_pid(service: str) -> str:
    return AIRFLOW.check_output(f"systemctl show -p MainPID --value airflow-{service}")


def venvs_mapped(service: str) -> set[str]:
    """The virtualenvs whose files (Python extensions) the service's main process has mapped: the
    kernel shows their real paths, behind the /opt/airflow/venv link."""
    pid = main_pid(service)
    assert pid != "0", f"airflow-{service} does not run"
    maps = AIRFLOW.check_output(f"cat /proc/{pid}/maps")
    return set(re.findall(r"(/opt/airflow/venvs/[^/\s]+)/", maps))


def healthy() -> dict:
    health = json.loads(AIRFLOW.check_output("curl -fsS -m 10 http://127.0.0.1:8080/api/v2/monitor/health"))
    assert health["metadatabase"]["status"] == "healthy", health
    return health


def migration_state() -> dict:
    out = AIRFLOW.check_output(
        f"{CLI} --python /opt/airflow/airflow_objects.py --migration-state /opt/airflow/venv/.db-migrated.json"
    )
    return json.loads(out.splitlines()[-1])


@pytest.fixture(scope="module")
def drill_lock(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    text = LOCK.read_text() + "# upgrade drill: the same pins, another checksum, so another virtualenv\n"
    path = tmp_path_factory.mktemp("drill") / "airflow.lock"
    path.write_text(text)
    sha1 = hashlib.sha1(text.encode()).hexdigest()  # noqa: S324  the role's name of a lock, not security
    version = re.search(r"^apache-airflow-core==(\S+)", text, re.M).group(1)
    return path, f"/opt/airflow/venvs/{version}-{sha1[:12]}"


def test_a_failed_migration_switches_back_to_the_old_virtualenv(drill_lock: tuple[Path, str]) -> None:
    lock, new_venv = drill_lock
    old_venv = active_venv()
    assert old_venv.startswith("/opt/airflow/venvs/") and old_venv != new_venv
    for service in SERVICES:
        assert venvs_mapped(service) == {old_venv}, service
    # Data of this test next to the role's: a variable set through Airflow.
    marker = uuid.uuid4().hex
    AIRFLOW.check_output(f"{CLI} variables set chplatform_upgrade_drill {marker}")
    before = rows()
    assert "chplatform_upgrade_drill" in before["variables"] and before["connections"] and before["dags"]
    pids = {s: main_pid(s) for s in SERVICES}
    # The new lock's virtualenv, as the role's install would leave it (no pip in this drill).
    sha1 = hashlib.sha1(lock.read_bytes()).hexdigest()  # noqa: S324  the role's name of a lock, not security
    copy_virtualenv(AIRFLOW, old_venv, new_venv, f".installed-{sha1}")

    # Hold Airflow's migration lock (advisory lock 1 in database airflow) for the whole run.
    holder = subprocess.Popen(
        ["docker", "exec", "afpg01", "runuser", "-u", "postgres", "--", "env", f"PGAPPNAME={HOLDER}", "psql",
         "-d", "airflow", "-v", "ON_ERROR_STOP=1", "-c", "SELECT pg_advisory_lock(1)", "-c", "SELECT pg_sleep(3600)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 1 AND granted") == "1",
            "the drill's session to hold the migration lock",
        )
        started = time.monotonic()
        run = converge("-e", f"airflow_requirements_lock={lock}")
        print(f"failed upgrade run: {time.monotonic() - started:.0f} s, {recap(run)}")
    finally:
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{HOLDER}'")  # noqa: S608  a constant of this test, no outside input
        holder.wait(timeout=60)

    # The play failed, saying what failed, where the new virtualenv and the dump are, and what runs.
    message = failed_switch_message(run, "airflow01", "Airflow")
    assert message.startswith(
        f"Upgrading Airflow to the virtualenv {new_venv} failed at step 'airflow db migrate (with the new virtualenv)'"
    )
    assert "lock timeout" in message, "the migration's own error is not in the message"
    dump = re.search(r"restored from (/opt/airflow/backups/\S+?\.dump)", message)
    assert dump, message
    dump = dump.group(1)
    assert f"the old version runs again from {old_venv}" in message
    assert f"run the play again: {new_venv} is kept" in message

    # The old virtualenv is active and runs, restarted; the new one is kept, complete.
    assert active_venv() == old_venv
    for service in SERVICES:
        assert AIRFLOW.service(f"airflow-{service}").is_running, service
        assert main_pid(service) != pids[service], f"airflow-{service} was not restarted by the switch back"
        assert venvs_mapped(service) == {old_venv}, service
    assert AIRFLOW.file(f"{new_venv}/.installed-{sha1}").exists
    healthy()

    # The dump: private, readable by pg_restore; the database holds what it held before.
    dumped = AIRFLOW.file(dump)
    assert dumped.exists and dumped.mode == 0o600 and dumped.user == "root", dump
    assert AIRFLOW.run(f"pg_restore --list {dump}").rc == 0
    assert not AIRFLOW.file(f"{dump}.sql").exists, "the restore's SQL file was left behind"
    same_rows(before, rows())
    assert variable("chplatform_upgrade_drill") == marker
    state = migration_state()
    assert state["recorded"] == state["current"], state


def test_the_retry_switches_to_the_kept_virtualenv_and_then_changes_nothing(drill_lock: tuple[Path, str]) -> None:
    lock, new_venv = drill_lock
    old_venv = active_venv()
    before = rows()
    started = time.monotonic()
    run = converge("-e", f"airflow_requirements_lock={lock}")
    print(f"upgrade run: {time.monotonic() - started:.0f} s, {recap(run)}")
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    # No pip: the virtualenv of the failed attempt was complete and kept.
    assert "changed:" not in task_output(run, PIP_TASK), "pip ran again"
    assert active_venv() == new_venv
    for service in SERVICES:
        assert AIRFLOW.service(f"airflow-{service}").is_running, service
        assert venvs_mapped(service) == {new_venv}, service
    healthy()
    same_rows(before, rows())
    state = migration_state()
    assert state["recorded"] == state["current"], state
    # airflow_keep_venvs (2): the old one stays, to switch back to.
    venvs = AIRFLOW.check_output("ls /opt/airflow/venvs").split()
    assert sorted(f"/opt/airflow/venvs/{v}" for v in venvs) == sorted([old_venv, new_venv])

    again = converge("-e", f"airflow_requirements_lock={lock}")
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-5000:]
