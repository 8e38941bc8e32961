"""The minor-upgrade drill, last in the scenario: converge pinned pg01 at the minor release before
Debian's newest (15.18-0+deb12u1, bookworm main); playbooks/upgrade.yml takes the newest one of the
major (15.20-0+deb12u1, bookworm-security) for the server and client packages. dpkg's own restart is
held (policy-rc.d), so the role must find the old release still running and restart the server
through its handler; the play goes on only once pg_isready and a query as postgres pass. Checked
from outside: --check --diff shows the package change and changes nothing; afterwards the server
reports the new release, the rows written before are there, a second run changes nothing, and a
pin below the installed release is refused before any change."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import testinfra

testinfra_hosts = ["docker://pg01"]

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = Path(__file__).resolve().parent.parent
ROOT = SCENARIO.parents[3]
UPGRADE = (str(ROOT / "playbooks/upgrade.yml"), "-e", "chplatform_components=postgresql")
# The role's parts an upgrade touches: the packages, the restart and the gate.
UPGRADE_TAGS = "postgresql:install,postgresql:service"
# What converge.yml pins; the upgrade goes to apt's candidate (15.20-0+deb12u1 when this was written).
PINNED = "15.18-0+deb12u1"
PACKAGE = "postgresql-15"
INSTALL_TASK = "TASK [postgresql : Install the PostgreSQL server packages, at the pinned version"
AFTER_RESTARTS = "after the pending restarts]"
GATE_TASKS = (
    f"TASK [postgresql : Wait for PostgreSQL to accept connections on its socket (pg_isready), {AFTER_RESTARTS}",
    f"TASK [postgresql : Wait for PostgreSQL to answer a query as the superuser over its socket, {AFTER_RESTARTS}",
)
ROWS = 1000  # the rows the drill writes before the upgrade


def ansible(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ansible-playbook against the scenario's inventory with the project's modules and roles."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(
        ["ansible-playbook", *args, "-i", INVENTORY],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=SCENARIO,
    )


def recap(run: subprocess.CompletedProcess) -> dict[str, str]:
    """The PLAY RECAP line of each host."""
    assert "PLAY RECAP" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    lines = run.stdout[run.stdout.rindex("PLAY RECAP") :].splitlines()[1:]
    return {line.split()[0]: line for line in lines if re.match(r"^\S+\s+: ok=", line)}


def task_result(run: subprocess.CompletedProcess, start: str) -> str:
    """The output of the first task whose header starts with ``start``, up to the next header."""
    at = run.stdout.find(start)
    assert at >= 0, f"no task {start!r} in the run:\n{run.stdout[-4000:]}"
    end = run.stdout.find("\nTASK [", at + 1)
    return run.stdout[at : end if end >= 0 else None]


@pytest.fixture(scope="module")
def server():
    return testinfra.get_host("docker://pg01")


def sql(server, query: str) -> str:
    """A query as postgres through the local socket (peer)."""
    return server.check_output(f"runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1 -c {shlex.quote(query)}")


def installed(server) -> str:
    return server.check_output(f"dpkg-query --show --showformat='${{Version}}' {PACKAGE}")


def started_at(server) -> str:
    return sql(server, "SELECT pg_postmaster_start_time()")


def test_minor_upgrade_with_the_upgrade_playbook(server):
    candidate = server.check_output(f"apt-cache policy {PACKAGE} | sed -n 's/^ *Candidate: //p'")
    assert installed(server) == PINNED
    assert sql(server, "SHOW server_version").startswith(PINNED.split("-")[0] + " ")
    assert candidate != PINNED, f"the mirror offers nothing newer than {PINNED}: nothing to upgrade to"
    sql(
        server,
        "DROP TABLE IF EXISTS upgrade_drill; CREATE TABLE upgrade_drill (id int PRIMARY KEY, note text); "
        "INSERT INTO upgrade_drill SELECT i, md5(i::text) FROM generate_series(1, 1000) i",
    )
    checksum = sql(server, "SELECT md5(string_agg(note, ',' ORDER BY id)) FROM upgrade_drill")
    before = started_at(server)

    # The preview: the package change shown, nothing changed (the packages and the running server).
    preview = ansible(*UPGRADE, "--check", "--diff", "--tags", UPGRADE_TAGS)
    assert preview.returncode == 0, preview.stdout[-5000:] + preview.stderr[-2000:]
    shown = task_result(preview, INSTALL_TASK)
    assert "changed: [pg01]" in shown, shown
    assert re.search(rf"will be upgraded:\s+.*\b{PACKAGE}\b", shown), shown
    assert installed(server) == PINNED
    assert started_at(server) == before

    # The upgrade, with dpkg's own restart held (policy-rc.d answers 101, action not allowed, as on
    # hosts that hold service actions during package upgrades): postgresql-common neither stops nor
    # starts the cluster, the server keeps running the old release, and the role must restart it.
    # (Without the hold, postgresql-common restarts it and the role only checks the release.)
    server.check_output("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d")
    try:
        run = ansible(*UPGRADE)
    finally:
        server.check_output("rm -f /usr/sbin/policy-rc.d")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert "changed: [pg01]" in task_result(run, INSTALL_TASK)
    assert installed(server) == candidate
    release = candidate.split("-")[0]
    assert sql(server, "SHOW server_version").startswith(release + " "), sql(server, "SHOW server_version")
    assert sql(server, "SELECT version()").startswith(f"PostgreSQL {release} ")
    assert started_at(server) != before, "the server was not restarted onto the new release"
    # The role found the old release running and restarted the server through its handler, once,
    # after the package change and before the gate.
    found = " ".join(task_result(run, "TASK [postgresql : Restart PostgreSQL onto the installed release").split())
    assert f"PostgreSQL runs {PINNED.split('-')[0]}, the installed {PACKAGE} is {candidate}" in found, found
    install_at = run.stdout.index(INSTALL_TASK)
    restart_at = run.stdout.index("RUNNING HANDLER [postgresql : Restart PostgreSQL]")
    assert run.stdout.count("RUNNING HANDLER [postgresql : Restart PostgreSQL]") == 1
    assert install_at < restart_at < run.stdout.index(GATE_TASKS[0])
    print(f"{PACKAGE} {PINNED} -> {candidate}: dpkg held, the role restarted the server onto {release}")
    # The gate ran after the package change and the restart, and passed, before the play went on.
    for gate in GATE_TASKS:
        assert run.stdout.index(gate) > install_at, gate
        assert "ok: [pg01]" in task_result(run, gate)
    assert run.stdout.index(GATE_TASKS[1]) < run.stdout.index("TASK [postgresql : Create the login users")

    # The data, and the server answering.
    assert sql(server, "SELECT count(*) FROM upgrade_drill") == str(ROWS)
    assert sql(server, "SELECT md5(string_agg(note, ',' ORDER BY id)) FROM upgrade_drill") == checksum
    assert server.run("pg_isready --host=/var/run/postgresql --port=5432").rc == 0
    assert server.service("postgresql@15-main").is_running

    # A second run changes nothing: the parts of the role the upgrade touches (the full stack asserts
    # changed=0 for the whole role; the CI time budget).
    after = started_at(server)
    again = ansible(*UPGRADE, "--tags", UPGRADE_TAGS)
    assert again.returncode == 0, again.stdout[-5000:] + again.stderr[-2000:]
    assert all("changed=0" in line for line in recap(again).values()), recap(again)
    assert started_at(server) == after

    # Back to the pinned release: refused before any change on the host, naming the fix.
    back = ansible(*UPGRADE, "-e", f"postgresql_package_version={PINNED}", "--tags", "postgresql:install")
    out = " ".join((back.stdout + back.stderr).split())  # messages as one line, however the callback wraps them
    assert back.returncode != 0
    assert f"postgresql_package_version on pg01 is {PINNED}, older than the installed {PACKAGE} {candidate}" in out, (
        out[-3000:]
    )
    assert "the role does not downgrade" in out
    assert installed(server) == candidate
    assert started_at(server) == after
    sql(server, "DROP TABLE upgrade_drill")
