"""Runs of a molecule scenario's playbooks from its verify tests (the upgrade drills of the airflow
and superset scenarios): molecule's inventory and the project's roles and collection, no colour,
and no lab secret in the output."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.lab_secrets import lab_secret_values

ROOT = Path(__file__).resolve().parent.parent


def run_scenario_playbook(
    scenario: Path, playbook: str, *args: str, timeout: int = 2400
) -> subprocess.CompletedProcess:
    """ansible-playbook <playbook> (relative to the scenario) with molecule's inventory; never raises
    on its exit code. Fails the test when the output holds the value of a lab secret."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    run = subprocess.run(
        ["ansible-playbook", playbook, "-i", inventory, *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=scenario,
    )  # fmt: skip
    out = run.stdout + run.stderr
    leaked = [name for name, value in lab_secret_values().items() if value in out]
    assert not leaked, f"the run printed the values of these lab secrets: {leaked}"
    return run


def host_recap(run: subprocess.CompletedProcess, host: str) -> dict[str, int]:
    """The counts of the host's PLAY RECAP line (ok, changed, failed...)."""
    line = re.search(rf"^{re.escape(host)}\s+:\s+(ok=.*)$", run.stdout, re.M)
    assert line, run.stdout[-3000:] + run.stderr[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))}


def task_output(run: subprocess.CompletedProcess, name: str) -> str:
    """What the run printed for the role task of that name ('' when not shown: skipped)."""
    return "".join(c for c in run.stdout.split("\nTASK [") if f" : {name}]" in c.split("\n", 1)[0])


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60, interval: float = 1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)


def copy_virtualenv(host, old: str, new: str, stamp: str) -> None:
    """On a testinfra host, the virtualenv the common role's venv.yml would build for another lock of
    the same pins, without pip: a copy of ``old`` at ``new``, its scripts pointed at the copy, the
    records of the original (.installed-*, .db-migrated.json) dropped and ``stamp`` (.installed-<id>)
    written, so the role finds it complete. The upgrade drills pay for no second install this way
    (the scenarios' first converge installs through the same venv.yml, with pip)."""
    script = (
        f"set -e; cp -a {old} {new}; "
        f"find {new}/bin -maxdepth 1 -type f -exec grep -lI {old} {{}} + | xargs -r sed -i 's#{old}#{new}#g'; "
        f"rm -f {new}/.installed-* {new}/.db-migrated.json; echo copy > {new}/{stamp}"
    )
    host.check_output(f"sh -c {shlex.quote(script)}")
    assert host.run(f"{new}/bin/python -c 'import sys; assert sys.prefix == \"{new}\"'").rc == 0, (
        "the copy is not a virtualenv"
    )


# The task of the common role's venv.yml that runs pip for a new lock.
PIP_TASK = "Install the pinned packages into the new virtualenv"


def failed_switch_message(run: subprocess.CompletedProcess, host: str, app: str) -> str:
    """The run failed on ``host`` only, without pip (the drill prepared the new virtualenv), with the
    common role's venv_switch.yml message for ``app``: return that message, on one line (whatever the
    result format, JSON or YAML, which may wrap lines and double single quotes)."""
    out = run.stdout + run.stderr
    assert run.returncode != 0 and host_recap(run, host)["failed"] == 1, out[-5000:]
    assert "changed:" not in task_output(run, PIP_TASK), "pip ran: the drill's virtualenv is not the one the role names"
    flat = " ".join(out.split()).replace("''", "'")
    message = re.search(rf"Upgrading {app} to the virtualenv .*?repeats the switch\.", flat)
    assert message, out[-5000:]
    print(message.group(0))
    return message.group(0)
