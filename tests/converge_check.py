"""Check mode on a converged molecule scenario: `ansible-playbook converge.yml --check --diff`.

A verify test calls ``check_diff_is_clean()``: it re-runs the scenario's converge playbook in check
mode with diffs, with molecule's own inventory and environment, and asserts that nothing would
change, nothing fails, and no lab secret shows up in the output (diffs of secret-bearing files
must be hidden by ``diff: false`` / ``no_log``)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.lab_secrets import lab_secret_values

RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def check_diff_is_clean(
    timeout: int = 1200, playbook: str | None = None, inventory: str | None = None, cwd: str | None = None, **env: str
) -> str:
    """Run the check; return its output. Fails naming the changed tasks or the leaked secret.
    Default: the scenario's converge.yml with molecule's inventory; the full stack passes site.yml
    and the lab inventory."""
    scenario = os.environ.get("MOLECULE_SCENARIO_DIRECTORY")
    inventory = inventory or os.environ.get("MOLECULE_INVENTORY_FILE")
    if not (playbook or scenario) or not inventory:
        pytest.fail("not run by molecule verify: MOLECULE_SCENARIO_DIRECTORY / MOLECULE_INVENTORY_FILE are not set")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **env)
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, playbook or str(Path(scenario, "converge.yml")), "--check", "--diff"],
        cwd=cwd or scenario,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    out = proc.stdout + proc.stderr
    recap = RECAP.findall(out)
    assert proc.returncode == 0 and recap, f"--check --diff failed (rc={proc.returncode}):\n{out[-4000:]}"
    changed_tasks, task = [], ""
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line[6 : line.rfind("]")]
        elif line.startswith("changed: [") and task not in changed_tasks:
            changed_tasks.append(task)
    for host, _ok, changed, unreachable, failed in recap:
        assert (changed, unreachable, failed) == ("0", "0", "0"), (
            f"{host}: --check --diff on the converged host reports changed={changed} failed={failed} "
            f"unreachable={unreachable}; tasks that would change: {changed_tasks}\n{out[-4000:]}"
        )
    leaked = [name for name, value in lab_secret_values().items() if value in out]
    assert not leaked, f"--check --diff printed the values of these lab secrets: {leaked}"
    print(f"--check --diff: changed=0 on {', '.join(h for h, *_ in recap)}")
    return out
