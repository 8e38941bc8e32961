"""The upgrade drill (runs last: after test_default and test_ui): a changed lock whose migration
fails, then the retry that succeeds (roles/superset/tasks/upgrade.yml, the common role's
venv_switch.yml, which airflow's drill also runs).

The changed lock is the pinned one plus a comment line: another install id, so another virtualenv,
venvs/<version>-<id[:12]>. This drill does not pay for a second pip install of Superset (the
scenario's converge installs through the same common venv.yml, and tests/test_airflow_venv.py a
changed lock beside an active one): it prepares that virtualenv the way the role would leave it
(tests/molecule_runs.copy_virtualenv), so the role finds it complete and goes straight to the switch.

How the migration fails: the new virtualenv carries a .pth file that stops every Python
started from it with "RuntimeError: upgrade drill ...", so `superset db upgrade` with the NEW
virtualenv fails, as a release that cannot start would. The role must then restore the dump it
took, link the old virtualenv again, start Superset, wait for /health, and fail naming the step, the
new virtualenv and the dump. Checked from outside: the link, which virtualenv the gunicorn workers
have their libraries mapped from, /health, the metadata database's rows.

Then the .pth file goes and the same lock runs again: no pip, a successful switch (the
workers on the new virtualenv, the data intact, the old virtualenv kept for superset_keep_venvs = 2),
and a third run changes nothing."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import time
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

SUPERSET = testinfra.get_host("docker://superset01")
PG = testinfra.get_host("docker://sspg01")
SCENARIO = Path(__file__).resolve().parent.parent
ROOT = SCENARIO.parents[3]
LOCK = ROOT / "files/bundle/python/superset.lock"
PTH = "zz-chplatform-upgrade-drill.pth"
STEP = "superset db upgrade and superset init (with the new virtualenv)"
# The rows that must survive: what the role and its users put into the metadata database.
ROWS = """
SELECT json_build_object(
  'dashboards', (SELECT json_agg(dashboard_title ORDER BY dashboard_title) FROM dashboards),
  'charts', (SELECT json_agg(slice_name ORDER BY slice_name) FROM slices),
  'databases', (SELECT json_agg(database_name ORDER BY database_name) FROM dbs),
  'users', (SELECT json_agg(username ORDER BY username) FROM ab_user),
  'roles', (SELECT count(*) FROM ab_role),
  'revision', (SELECT json_agg(version_num) FROM alembic_version))
"""


def rows() -> dict:
    sql = " ".join(ROWS.split())
    return json.loads(PG.check_output(f"runuser -u postgres -- psql -d superset -Atc {shlex.quote(sql)}"))


def converge(*args: str) -> subprocess.CompletedProcess:
    """The scenario's converge.yml, on superset01 only."""
    return run_scenario_playbook(SCENARIO, "converge.yml", "--limit", "superset01", *args, timeout=1800)


def recap(run: subprocess.CompletedProcess) -> dict[str, int]:
    return host_recap(run, "superset01")


def active_venv() -> str:
    return SUPERSET.check_output("readlink /opt/superset/venv")


def venvs_mapped() -> set[str]:
    """The virtualenvs whose files (numpy's, pandas' extensions...) the gunicorn workers have mapped:
    the kernel shows their real paths, behind the /opt/superset/venv link."""
    pid = SUPERSET.check_output("systemctl show -p MainPID --value superset")
    assert pid != "0", "superset does not run"
    workers = SUPERSET.check_output(f"pgrep -P {pid} || true").split()
    assert workers, "gunicorn has no workers"
    maps = SUPERSET.check_output(" ".join(f"cat /proc/{w}/maps;" for w in workers))
    return set(re.findall(r"(/opt/superset/venvs/[^/\s]+)/", maps))


def healthy() -> bool:
    return SUPERSET.run("curl -fsS -m 10 http://127.0.0.1:8088/health").stdout.strip() == "OK"


@pytest.fixture(scope="module")
def drill_lock(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The changed lock, the new virtualenv the role will name for it, and its install id (the
    role's: sha1 of the lock as Ansible's file lookup reads it, right-stripped, and of the overrides,
    none in this scenario)."""
    text = LOCK.read_text() + "# upgrade drill: the same pins, another install id, so another virtualenv\n"
    path = tmp_path_factory.mktemp("drill") / "superset.lock"
    path.write_text(text)
    install_id = hashlib.sha1(text.rstrip().encode()).hexdigest()  # noqa: S324  the role's name of an install, not security
    version = re.search(r"^apache-superset==(\S+)", text, re.M).group(1)
    return path, f"/opt/superset/venvs/{version}-{install_id[:12]}", install_id


def test_a_failed_migration_switches_back_to_the_old_virtualenv(drill_lock: tuple[Path, str, str]) -> None:
    lock, new_venv, install_id = drill_lock
    old_venv = active_venv()
    assert old_venv.startswith("/opt/superset/venvs/") and old_venv != new_venv
    assert venvs_mapped() == {old_venv}
    before = rows()
    assert before["dashboards"] and before["charts"] and before["users"], before

    # The new virtualenv as the role's install would leave it, plus the failure.
    # A .pth file: its import line runs in every Python of that virtualenv (a sitecustomize.py
    # would not: Debian's own, in the standard library, comes first on sys.path).
    error = "RuntimeError: upgrade drill: this virtualenv refuses to start"
    fails = f"import os, sys; sys.stderr.write('{error}\\n'); os._exit(1)\n"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    copy_virtualenv(SUPERSET, old_venv, new_venv, f".installed-{install_id}")
    failure = f'printf %s {shlex.quote(fails)} > "$({new_venv}/bin/python -I -c {shlex.quote(purelib)})/{PTH}"'
    SUPERSET.check_output(f"sh -c {shlex.quote(failure)}")
    assert SUPERSET.run(f"{new_venv}/bin/python -c pass").rc != 0, "the drill's failure is not in place"
    pid = SUPERSET.check_output("systemctl show -p MainPID --value superset")

    started = time.monotonic()
    run = converge("-e", f"superset_requirements_file={lock}")
    print(f"failed upgrade run: {time.monotonic() - started:.0f} s, {recap(run)}")
    message = failed_switch_message(run, "superset01", "Superset")
    assert message.startswith(f"Upgrading Superset to the virtualenv {new_venv} failed at step '{STEP}'")
    assert "RuntimeError: upgrade drill" in message, "the migration's own error is not in the message"
    dump = re.search(r"restored from (/opt/superset/backups/\S+?\.dump)", message)
    assert dump, message
    assert f"the old version runs again from {old_venv}" in message

    # The old virtualenv is active and runs, restarted; the new one is kept.
    assert active_venv() == old_venv
    restarted = SUPERSET.check_output("systemctl show -p MainPID --value superset")
    assert restarted != pid, "no restart on the old virtualenv"
    wait_for(healthy, "Superset's /health on the old virtualenv", timeout=120, interval=2)
    assert venvs_mapped() == {old_venv}
    assert SUPERSET.file(f"{new_venv}/.installed-{install_id}").exists
    dumped = SUPERSET.file(dump.group(1))
    assert dumped.exists and dumped.mode == 0o600 and dumped.user == "root"
    assert SUPERSET.run(f"pg_restore --list {dump.group(1)}").rc == 0
    assert rows() == before


def test_the_retry_switches_to_the_kept_virtualenv_and_then_changes_nothing(drill_lock: tuple[Path, str, str]) -> None:
    lock, new_venv, _ = drill_lock
    old_venv = active_venv()
    before = rows()
    SUPERSET.check_output(f"sh -c {shlex.quote(f'rm -f {new_venv}/lib/python3*/site-packages/{PTH}')}")
    started = time.monotonic()
    run = converge("-e", f"superset_requirements_file={lock}")
    print(f"upgrade run: {time.monotonic() - started:.0f} s, {recap(run)}")
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    assert "changed:" not in task_output(run, PIP_TASK), "pip ran again"
    assert active_venv() == new_venv
    wait_for(healthy, "Superset's /health on the new virtualenv", timeout=120, interval=2)
    assert venvs_mapped() == {new_venv}
    assert rows() == before
    # superset_keep_venvs (2): the old one stays, to switch back to.
    venvs = SUPERSET.check_output("ls /opt/superset/venvs").split()
    assert sorted(f"/opt/superset/venvs/{v}" for v in venvs) == sorted([old_venv, new_venv])

    again = converge("-e", f"superset_requirements_file={lock}")
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-5000:]
