"""Day-2 operations on the Keeper quorum and the operators' clients, rendered and checked.

- The operators' clients: clickhouse-client's /etc/clickhouse-client/config.xml (the local server
  under its inventory name, on the native TLS port the server listens on, the CA, strict, no
  password) and keeper-client's configuration and wrapper on every Keeper member (the local member
  on Keeper's TLS client port, the CA passed as a flag).
- Replacing the dead keeper03 (id 3) by the new host keeper04 (id 4), playbooks/replace_keeper.yml:
  the roles' configure tasks rendered for the inventory before and after; every member's
  raft_configuration is the new member set, and each member records the membership it was given.
- The refusals, before any change, through the roles' checks (chplatform.platform.validate_inventory)
  with the members' recorded facts: an id reused by another host, a live member's id changed, two
  members removed from a quorum of three at once.

No Keeper can run on this machine: the live replacement (the leader adding keeper04 and removing
keeper03 on a configuration reload, /keeper/config, the rolling restart) is named as skipped."""

from __future__ import annotations

import json
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.clickhouse_helpers import FIXTURES, ISOLATED, rendered
from tests.conftest import ROOT, assert_refused, run_concurrently, run_playbook

CONTRACT = yaml.safe_load((ROOT / "roles/platform/defaults/main.yml").read_text())
CA = "/etc/chplatform/tls/ca.crt"


def xml(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # noqa: S314  (files rendered by the roles under test)


def groups(name: str) -> dict[str, dict]:
    data = yaml.safe_load((FIXTURES / f"{name}.yml").read_text())["all"]["children"]
    return {group: {h: (v or {}) for h, v in body["hosts"].items()} for group, body in data.items()}


def keeper_server(root: Path, host: str, servers: dict) -> ET.Element:
    if host in servers:
        return xml(root / host / "etc/clickhouse-server/config.d/keeper_server.xml").find("keeper_server")
    return xml(root / host / "etc/clickhouse-keeper/keeper_config.d/keeper_server.xml").find("keeper_server")


def raft(root: Path, host: str, servers: dict) -> tuple[int, list[tuple[int, str, int]]]:
    keeper = keeper_server(root, host, servers)
    members = [
        (int(s.findtext("id")), s.findtext("hostname"), int(s.findtext("port")))
        for s in keeper.find("raft_configuration").findall("server")
    ]
    return int(keeper.findtext("server_id")), members


def recorded(root: Path, host: str) -> dict:
    return json.loads((root / host / "etc/ansible/facts.d/chplatform_keeper.fact").read_text())


@pytest.fixture(scope="module")
def renders() -> dict[str, Path]:
    return rendered("lab", "lab_replaced")


# ---- the operators' clients ------------------------------------------------------------------


def test_clickhouse_client_connects_to_the_local_server_over_tls(renders):
    root = renders["lab"]
    for host in groups("lab")["clickhouse"]:
        path = root / host / "etc/clickhouse-client/config.xml"
        client = xml(path)
        # The server's certificate names the host by its inventory name (roles/pki).
        assert client.findtext("host") == host
        assert client.findtext("port") == str(CONTRACT["clickhouse_tcp_port_secure"])
        assert client.findtext("secure") == "true"
        assert client.findtext("user") == "admin"
        tls = client.find("openSSL/client")
        assert tls.findtext("caConfig") == CA
        assert tls.findtext("verificationMode") == "strict"
        assert tls.findtext("loadDefaultCAFile") == "false"
        assert tls.findtext("invalidCertificateHandler/name") == "RejectCertificateHandler"
        # World-readable, so no password in it (the interactive client asks for it).
        assert client.find("password") is None and "test-admin-password" not in path.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_clickhouse_client_port_is_a_tls_port_the_server_listens_on(renders):
    root = renders["lab"]
    for host in groups("lab")["clickhouse"]:
        port = xml(root / host / "etc/clickhouse-client/config.xml").findtext("port")
        network = xml(root / host / "etc/clickhouse-server/config.d/network.xml")
        assert network.findtext("tcp_port_secure") == port
        # The plain native port is closed (clickhouse_plaintext_ports false): the client could not use it.
        assert network.find("tcp_port") is None or network.find("tcp_port").get("remove") is not None


def test_keeper_client_connects_to_the_local_member_over_tls(renders):
    root, servers = renders["lab"], groups("lab")["clickhouse"]
    for host in groups("lab")["clickhouse_keeper"]:
        node = xml(root / host / "etc/clickhouse-keeper-client/config.xml").find("zookeeper/node")
        assert node.findtext("host") == host
        assert node.findtext("secure") == "1"
        # The port Keeper listens on with TLS, and no plain-text client port beside it.
        keeper = keeper_server(root, host, servers)
        secure_port = str(CONTRACT["clickhouse_keeper_tcp_port_secure"])
        assert node.findtext("port") == keeper.findtext("tcp_port_secure") == secure_port
        assert keeper.find("tcp_port") is None
        wrapper = root / host / "usr/local/bin/keeper-client"
        text = wrapper.read_text()
        binary = "/usr/bin/clickhouse keeper-client" if host in servers else "/usr/bin/clickhouse-keeper keeper-client"
        assert f"exec {binary} --config-file {root / host / 'etc/clickhouse-keeper-client/config.xml'}" in text
        assert f"--tls-ca-file {CA}" in text and '"$@"' in text
        assert stat.S_IMODE(wrapper.stat().st_mode) == 0o755


# ---- the replacement, rendered -----------------------------------------------------------------


def test_before_the_replacement_every_member_has_ids_1_2_3(renders):
    inv = groups("lab")
    for host in inv["clickhouse_keeper"]:
        server_id, members = raft(renders["lab"], host, inv["clickhouse"])
        assert members == [(1, "replica01", 9234), (2, "replica02", 9234), (3, "keeper03", 9234)]
        assert server_id == inv["clickhouse_keeper"][host]["clickhouse_keeper_server_id"]


def test_after_the_replacement_every_member_has_the_new_member_set(renders):
    inv = groups("lab_replaced")
    expected = [(1, "replica01", 9234), (2, "replica02", 9234), (4, "keeper04", 9234)]
    for host in inv["clickhouse_keeper"]:
        server_id, members = raft(renders["lab_replaced"], host, inv["clickhouse"])
        assert members == expected, host
        assert server_id == inv["clickhouse_keeper"][host]["clickhouse_keeper_server_id"]
    # The survivors keep their ids; the new host has the new id, the dead one's id is gone.
    assert raft(renders["lab_replaced"], "keeper04", inv["clickhouse"])[0] == 4
    for host in ("replica01", "replica02"):
        assert (
            raft(renders["lab"], host, inv["clickhouse"])[0]
            == raft(renders["lab_replaced"], host, inv["clickhouse"])[0]
        )
    assert not (renders["lab_replaced"] / "keeper03").exists()
    # The servers' Keeper client list follows the quorum.
    for host in inv["clickhouse"]:
        zk = xml(renders["lab_replaced"] / host / "etc/clickhouse-server/config.d/zookeeper.xml").find("zookeeper")
        assert sorted(n.findtext("host") for n in zk.findall("node")) == ["keeper04", "replica01", "replica02"]


def test_every_member_records_the_membership_it_was_given(renders):
    for name, ids in (("lab", [1, 2, 3]), ("lab_replaced", [1, 2, 4])):
        inv = groups(name)["clickhouse_keeper"]
        for host, hv in inv.items():
            fact = recorded(renders[name], host)
            assert fact["server_id"] == hv["clickhouse_keeper_server_id"] and fact["host"] == host
            assert [m["id"] for m in fact["members"]] == ids
            assert {m["host"] for m in fact["members"]} == set(inv)


# ---- the refusals --------------------------------------------------------------------------------

CASES = {
    "bad_reused_id.yml": (
        "clickhouse_keeper_server_id on keeper04 is 3",
        "id 3 belonged to keeper03 (recorded by the members in /etc/ansible/facts.d/chplatform_keeper.fact) and a "
        "Keeper id is never reused — give keeper04 a new id, higher than every id used so far (4 or more)",
    ),
    "bad_changed_id.yml": (
        "clickhouse_keeper_server_id on replica02 is 5",
        "replica02 is Keeper member 2 (recorded in /etc/ansible/facts.d/chplatform_keeper.fact when it was "
        "configured) and a live member's id never changes — set it back to 2",
    ),
    "bad_two_removed.yml": (
        "group clickhouse_keeper on the inventory is 3 hosts (replica01, keeper04, keeper05)",
        "it removes 2 members at once (replica02 (id 2), keeper03 (id 3)) from the quorum of 3 that replica01 "
        "runs with (recorded in /etc/ansible/facts.d/chplatform_keeper.fact), which tolerates 1",
    ),
}


@pytest.fixture(scope="module")
def checked() -> dict:
    def check(inventory: str):
        return lambda: run_playbook(FIXTURES / "assert.yml", "-i", str(FIXTURES / inventory), timeout=600, **ISOLATED)

    return run_concurrently({name: check(name) for name in [*CASES, "replace_ok.yml"]})


@pytest.mark.parametrize("inventory", sorted(CASES))
def test_unsafe_changes_are_refused_before_any_change(checked, inventory):
    start, fix = CASES[inventory]
    assert_refused(checked[inventory], start, fix, count=1)


def test_a_new_host_with_a_new_id_in_place_of_the_dead_one_passes(checked):
    result = checked["replace_ok.yml"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


def test_the_playbook_and_the_procedure_agree():
    plays = yaml.safe_load((ROOT / "playbooks/replace_keeper.yml").read_text())
    names = [p.get("name", "") for p in plays]
    # Survivors render first (no restart), then the new host joins, then the wait, then the restarts.
    order = [
        next(i for i, n in enumerate(names) if n.startswith("Standalone survivors render")),
        next(i for i, n in enumerate(names) if n.startswith("The new standalone member")),
        next(i for i, n in enumerate(names) if n.startswith("Wait until every member's view")),
        next(i for i, p in enumerate(plays) if p.get("ansible.builtin.import_playbook") == "clickhouse_keeper.yml"),
    ]
    assert order == sorted(order)
    assert (ROOT / "docs/keeper_replacement.md").exists()


def test_the_live_replacement():
    pytest.skip("no ClickHouse Keeper server can run on this machine: the live replacement is not exercised")
