"""One rolling-restart mechanism (roles/common/tasks/rolling_restart.yml) for Kafka, ClickHouse and
Keeper: each role passes only its per-component parts, a gate before each host goes down and a
health check after it is back, and puts the quorum's leader last. Kafka's restarts run for real in
the kafka scenario (gate, restart, health per node, the leader last); ClickHouse's and Keeper's
cannot run on this machine (no server), so their wiring is checked here and the live part is named
as skipped."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT

ROLES = {
    # role: (service, gate file, health file)
    "kafka": ("kafka", "restart_gate.yml", "health_after_restart.yml"),
    "clickhouse": ("clickhouse-server", "restart_gate.yml", "health_after_restart.yml"),
    "clickhouse_keeper": ("clickhouse-keeper", "restart_gate.yml", "health_after_restart.yml"),
}


def tasks(role: str, name: str) -> list[dict]:
    return yaml.safe_load((ROOT / "roles" / role / "tasks" / name).read_text())


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_restarts_through_the_shared_mechanism_with_its_gate_and_health(role):
    service, gate, health = ROLES[role]
    restart = tasks(role, "restart.yml")
    calls = [t.get("ansible.builtin.include_role", {}) for t in restart]
    shared = [t for t, call in zip(restart, calls, strict=True) if call.get("tasks_from") == "rolling_restart.yml"]
    assert len(shared) == 1, f"{role}: restart.yml must call the common rolling restart once"
    params = shared[0]["vars"]
    assert params["common_rolling_restart_service"] == service
    facts = next(t["ansible.builtin.set_fact"] for t in restart if "ansible.builtin.set_fact" in t)
    assert facts[params["common_rolling_restart_gate_tasks"].strip("{} ")].endswith(f"/tasks/{gate}")
    assert facts[params["common_rolling_restart_health_tasks"].strip("{} ")].endswith(f"/tasks/{health}")
    assert (ROOT / "roles" / role / "tasks" / gate).exists() and (ROOT / "roles" / role / "tasks" / health).exists()
    # The leader goes last: the candidates are the play's hosts reordered, not the play's order.
    assert "leader" in str(params["common_rolling_restart_hosts"]) or "__kafka_restart_order" in str(
        params["common_rolling_restart_hosts"]
    )
    # No role keeps a restart of its own: the mechanism is written once.
    for path in (ROOT / "roles" / role).rglob("*.yml"):
        text = path.read_text()
        if "state: restarted" in text:
            pytest.fail(f"{path.relative_to(ROOT)} restarts {service} itself instead of through the shared mechanism")


def test_the_clickhouse_gate_asks_the_keeper_role_for_the_other_members():
    gate = tasks("clickhouse", "restart_gate.yml")
    keeper = [t for t in gate if t.get("ansible.builtin.include_role", {}).get("name") == "clickhouse_keeper"]
    assert keeper and keeper[0]["ansible.builtin.include_role"]["tasks_from"] == "health.yml"
    assert "difference([common_rolling_restart_host])" in keeper[0]["loop"]


def test_the_live_clickhouse_and_keeper_restarts_are_not_run_here():
    pytest.skip(
        "no ClickHouse or Keeper server can run on this machine: their gates (other members in the quorum, the "
        "shard's other replicas healthy), restarts and health checks are wired (above) but not exercised"
    )
