"""Topology helpers for the clickhouse and clickhouse_keeper roles.

Everything here is derived from the inventory (group membership and host variables), never from
the position of a host in a list: Keeper server ids and replica names are explicit host variables.
"""

from __future__ import annotations

from typing import Any

DOCUMENTATION = """
name: clickhouse
short_description: ClickHouse topology helpers (Keeper raft list, remote_servers shards)
"""


class _HostVars:
    """Lazy view of one host's variables: only the keys asked for are templated."""

    def __init__(self, hostvars: Any, host: str) -> None:
        try:
            self._vars = hostvars[host]
        except KeyError:
            self._vars = {}

    def get(self, name: str, default: Any = None) -> Any:
        try:
            value = self._vars[name]
        except KeyError:
            return default
        return default if value is None else value


def _hv(hostvars: Any, host: str) -> _HostVars:
    return _HostVars(hostvars, host)


def clickhouse_keeper_raft(
    hosts: list[str], hostvars: Any, port: int = 9234, client_port: int = 9181
) -> list[dict[str, Any]]:
    """Raft members of the Keeper quorum, sorted by server id.

    Each item: {"id", "host" (inventory name), "hostname" (address the peers use), "port", "client_port"}.
    A host without ``clickhouse_keeper_server_id`` gets ``id: None`` (the assertions reject it).
    """
    members = []
    for host in hosts:
        hv = _hv(hostvars, host)
        raw = hv.get("clickhouse_keeper_server_id")
        try:
            server_id = int(raw) if raw is not None and str(raw) != "" else None
        except (TypeError, ValueError):
            server_id = None
        members.append(
            {
                "id": server_id,
                "host": host,
                "hostname": str(hv.get("clickhouse_keeper_hostname", host)),
                "port": int(port),
                "client_port": int(client_port),
            }
        )
    return sorted(members, key=lambda m: (m["id"] is None, m["id"] or 0, m["host"]))


def clickhouse_shards(hosts: list[str], hostvars: Any, port: int = 9000) -> list[dict[str, Any]]:
    """remote_servers structure: shards sorted by number, each with its replicas sorted by name.

    Each shard: {"shard": int, "replicas": [{"host", "hostname", "port", "replica"}]}.
    """
    shards: dict[int, list[dict[str, Any]]] = {}
    for host in hosts:
        hv = _hv(hostvars, host)
        try:
            shard = int(hv.get("clickhouse_shard"))
        except (TypeError, ValueError):
            continue
        shards.setdefault(shard, []).append(
            {
                "host": host,
                "hostname": str(hv.get("clickhouse_hostname", host)),
                "port": int(port),
                "replica": str(hv.get("clickhouse_replica", "")),
            }
        )
    return [{"shard": n, "replicas": sorted(r, key=lambda x: x["replica"])} for n, r in sorted(shards.items())]


def clickhouse_shards_left_behind(
    rendered: dict[str, str], shards: list[dict[str, Any]], cluster: str, retired: list[Any] | None = None
) -> list[dict[str, Any]]:
    """The shards of the cluster as the last run rendered it (remote_servers.xml, read on the server
    hosts: {inventory host: file text}) of which no replica is in the cluster this run would render
    (``shards``, clickhouse_shards' structure): their data would drop out of the cluster.

    A shard is known by its replicas' host names, its number by its place in the file (the role
    renders them in order). Each item: {"shard", "hostnames", "recorded_on"}; shards whose number is
    in ``retired`` are left out. A file that does not parse, or has no such cluster, records nothing.
    """
    import xml.etree.ElementTree as ET

    keep = {str(r["hostname"]) for s in shards for r in s["replicas"]}
    retired_numbers = {int(n) for n in (retired or [])}
    lost: dict[tuple[str, ...], dict[str, Any]] = {}
    for host in sorted(rendered):
        try:
            root = ET.fromstring(rendered[host])  # noqa: S314  files this role rendered, read back from its own hosts
        except ET.ParseError:
            continue
        node = root.find(f"remote_servers/{cluster}")
        for number, shard in enumerate(node.findall("shard") if node is not None else [], start=1):
            names = tuple(sorted({(h.text or "").strip() for h in shard.findall("replica/host")} - {""}))
            if names and not keep.intersection(names) and number not in retired_numbers:
                lost.setdefault(names, {"shard": number, "hostnames": list(names), "recorded_on": host})
    return sorted(lost.values(), key=lambda s: s["shard"])


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "clickhouse_keeper_raft": clickhouse_keeper_raft,
            "clickhouse_shards": clickhouse_shards,
            "clickhouse_shards_left_behind": clickhouse_shards_left_behind,
        }
