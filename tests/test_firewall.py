"""The host firewall's rules (role firewall, plugins/plugin_utils/firewall.py): which sources may
reach which port, built from the same port resolution as validation. The rules on real hosts, and a
host without business on a port being refused, are checked by the full-stack scenario
(molecule/default/tests/test_firewall.py)."""

from __future__ import annotations

import pytest
import yaml
from ansible_collections.chplatform.platform.plugins.plugin_utils.firewall import FirewallError, host_rules
from ansible_collections.chplatform.platform.plugins.plugin_utils.inventory_checks import EXPORTER_PORTS, PORTS

from tests.conftest import ROOT

CLIENTS = yaml.safe_load((ROOT / "roles/firewall/defaults/main.yml").read_text())["firewall_clients"]
GROUPS = {
    "kafka": ["kafka01", "kafka02"],
    "clickhouse": ["replica01", "replica02"],
    "clickhouse_keeper": ["replica01", "replica02", "keeper03"],
    "airflow": ["airflow01"],
    "superset": ["superset01"],
    "postgres": ["pg01"],
    "monitoring": ["monitor01"],
}
ADDRESSES = {
    "kafka01": "127.0.10.11",
    "kafka02": "127.0.10.12",
    "replica01": "127.0.10.21",
    "replica02": "127.0.10.22",
    "keeper03": "127.0.10.23",
    "airflow01": "127.0.10.31",
    "superset01": "127.0.10.41",
    "pg01": "127.0.10.51",
    "monitor01": "127.0.10.61",
}


def rules_of(listeners, admin=("127.0.7.0/24",), **kwargs) -> dict[int, dict]:
    return {r["port"]: r for r in host_rules(listeners, CLIENTS, GROUPS, ADDRESSES, list(admin), **kwargs)}


def listener(port: int, variable: str, component: str = "test") -> dict:
    return {"port": port, "component": component, "variable": variable}


def test_every_port_validation_knows_says_who_may_connect():
    """A port a role listens on without an entry would stop the role: every variable of validation's
    port table (PORTS, EXPORTER_PORTS) has one, and nothing else is listed."""
    known = {name for ports in (*PORTS.values(), *EXPORTER_PORTS.values()) for name, _ in ports}
    print(f"{len(known)} port variables; firewall_clients names {len(CLIENTS)}")
    assert set(CLIENTS) == known


def test_prometheus_reaches_every_port_it_scrapes():
    for name, _ in (p for ports in EXPORTER_PORTS.values() for p in ports):
        assert "monitoring" in CLIENTS[name], name


def test_a_broker_port_is_open_to_its_clients_and_nobody_else():
    rules = rules_of([listener(9092, "kafka_port", "kafka"), listener(9093, "kafka_controller_port", "kafka")])
    for port, rule in rules.items():
        print(f"{port}: {rule['variables']} <- {rule['ipv4']}")
    # SSH first, from the admin range only.
    assert next(iter(rules)) == 22 and rules[22]["ipv4"] == ["127.0.7.0/24"]
    assert set(rules[9092]["ipv4"]) == {
        "127.0.10.11/32", "127.0.10.12/32",  # the brokers
        "127.0.10.21/32", "127.0.10.22/32",  # ClickHouse's Kafka engine
        "127.0.10.31/32",  # Airflow
        "127.0.10.61/32",  # the lag exporter
        "127.0.7.0/24",  # operators
    }  # fmt: skip
    assert "127.0.10.41/32" not in rules[9092]["ipv4"]  # Superset has no business there
    assert rules[9093]["ipv4"] == ["127.0.10.11/32", "127.0.10.12/32"]


def test_a_host_inside_the_admin_range_is_merged_into_it():
    """nft refuses overlapping intervals in one set."""
    rules = rules_of([listener(8088, "superset_port")], admin=["127.0.10.0/26"])
    assert rules[8088]["ipv4"] == ["127.0.10.0/26"]


def test_ipv6_sources_get_their_own_set_and_the_ssh_port_follows_the_inventory():
    rules = rules_of([listener(9090, "prometheus_port")], admin=["fd00::/64", "127.0.7.5"], ssh_port=2222)
    assert list(rules) == [2222, 9090]
    assert rules[2222]["ipv6"] == ["fd00::/64"] and rules[2222]["ipv4"] == ["127.0.7.5/32"]


@pytest.mark.parametrize(
    ("listeners", "admin", "fix"),
    [
        ([listener(7777, "my_port", "mine")], ["127.0.9.0/24"], "add `my_port: [<the groups that connect to it>]`"),
        ([], [], "set it to the range the operators and the controller come from"),
        ([], ["127.0.10.300"], "write it as 10.20.0.5 or 10.20.0.0/24"),
    ],
    ids=["port-without-clients", "no-admin-sources", "bad-address"],
)
def test_bad_input_is_refused_naming_the_fix(listeners, admin, fix):
    with pytest.raises(FirewallError) as err:
        rules_of(listeners, admin=admin)
    print(err.value)
    assert fix in str(err.value)
