"""The host firewall on the real lab hosts (role firewall): nftables rules generated from the
inventory, a host without business on a port refused and one with business let in, rules that would
cut the controller off refused before any change, and rules removed by hand put back by the next run.

Runs in the full-stack scenario's verify step (every host converged over SSH with the rules on: the
rest of verify is the proof that everything the platform needs still gets through)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # platform_data, beside this file

import platform_data as data

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "lab" / "hosts.yml"
ENV = dict(
    os.environ,
    ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
    ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
    ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
    ANSIBLE_NOCOLOR="1",
)

# A probe from one lab host to another's port: "open" (connected), "refused" (reached, nothing
# listens), "dropped" (no answer: the firewall). Probes of one source run in parallel.
PROBE = """
probe() {{
  if timeout {timeout} bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then echo "$1:$2 open"
  elif [ $? -eq 124 ]; then echo "$1:$2 dropped"; else echo "$1:$2 refused"; fi
}}
{calls}
wait
"""

# (target host, port, a host with business there, a host without).
PAIRS = [
    ("kafka01", 9092, "airflow01", "superset01"),
    ("pg01", 5432, "airflow01", "minio01"),
    ("minio01", 9000, "airflow01", "superset01"),
    ("pg01", 9187, "monitor01", "airflow01"),
    # The Airflow UI through nginx (platform_web_tls): the blackbox prober gets in, pg01 does not.
    ("airflow01", 443, "monitor01", "pg01"),
]


def probe(source: str, targets: list[tuple[str, int]], timeout: int = 3) -> dict[tuple[str, int], str]:
    calls = "\n".join(f"probe {host} {port} &" for host, port in targets)
    out = data.remote(source, PROBE.format(timeout=timeout, calls=calls))
    results = {}
    for line in out.splitlines():
        where, state = line.split()
        host, port = where.rsplit(":", 1)
        results[(host, int(port))] = state
    return results


def ruleset(host: str) -> str:
    return data.remote(host, "nft list table inet chplatform")


@pytest.mark.parametrize("host", data.HOSTS)
def test_every_host_drops_what_it_does_not_allow_and_loads_the_rules_at_boot(host):
    rules = ruleset(host)
    enabled = data.remote(host, "systemctl is-enabled nftables")
    accepts = [line.strip() for line in rules.splitlines() if line.strip().endswith("accept") and "dport" in line]
    print(f"{host}: policy drop, {len(accepts)} port rules, nftables.service {enabled}")
    assert "policy drop;" in rules and enabled == "enabled"
    assert any("tcp dport 22 accept" in line for line in accepts), rules


def test_a_host_without_business_on_a_port_is_dropped_and_one_with_business_gets_in():
    wanted: dict[str, list[tuple[str, int]]] = {}
    for target, port, allowed, denied in PAIRS:
        wanted.setdefault(allowed, []).append((target, port))
        wanted.setdefault(denied, []).append((target, port))
    # Every source at once: a dropped probe waits for its timeout.
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        seen = dict(zip(wanted, pool.map(lambda item: probe(*item), wanted.items()), strict=True))
    for target, port, allowed, denied in PAIRS:
        print(
            f"{target}:{port}: from {allowed} {seen[allowed][(target, port)]}, from {denied} {seen[denied][(target, port)]}"
        )
    for target, port, allowed, denied in PAIRS:
        assert seen[allowed][(target, port)] == "open", (target, port, allowed)
        # Dropped, not refused: the service is there, the firewall keeps the host out.
        assert seen[denied][(target, port)] == "dropped", (target, port, denied)


def firewall_play(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), "playbooks/firewall.yml", *args],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_rules_that_would_cut_the_controller_off_are_refused_before_any_change():
    before = data.remote("kafka01", "sha256sum /etc/nftables.conf; nft list table inet chplatform | sha256sum")
    run = firewall_play("--limit", "kafka01", "-e", '{"firewall_admin_sources": ["127.0.0.2/32"]}')
    out = " ".join((run.stdout + run.stderr).split())
    gateway = data.remote("kafka01", "ip route show default | awk '{print $3}'")
    print(f"refused: {out[out.find('This controller') :][:300]}")
    assert run.returncode != 0
    assert f"This controller reaches kafka01 from {gateway}, which firewall_admin_sources (127.0.0.2/32)" in out
    assert f"Add {gateway} (or its range) to firewall_admin_sources; nothing was changed." in out
    assert data.remote("kafka01", "sha256sum /etc/nftables.conf; nft list table inet chplatform | sha256sum") == before


def test_rules_removed_on_a_host_are_put_back_by_the_next_run():
    """Drift: the table deleted by hand (or by the rollback timer) is loaded again, through the
    guarded path (rollback armed, a new SSH connection, rollback disarmed)."""
    expected = ruleset("pg01")
    data.remote("pg01", "nft delete table inet chplatform")
    run = firewall_play("--limit", "pg01")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for task in ("Arm the rollback", "Load the rules", "Connect again through the new rules", "Disarm the rollback"):
        assert f"TASK [firewall : {task}" in run.stdout, task
    timer = data.remote("pg01", "systemctl is-active chplatform-firewall-rollback.timer || true")
    print(f"pg01: rules loaded again, rollback timer {timer}")
    assert ruleset("pg01") == expected and timer == "inactive"
