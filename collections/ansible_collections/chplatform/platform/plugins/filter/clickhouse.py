"""Topology helpers for the clickhouse and clickhouse_keeper roles.

Everything here is derived from the inventory (group membership and host variables), never from
the position of a host in a list: Keeper server ids and replica names are explicit host variables.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

DOCUMENTATION = """
name: clickhouse
short_description: ClickHouse topology helpers (Keeper raft list, remote_servers shards, validation)
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


def clickhouse_duplicates(values: list[Any]) -> list[Any]:
    """The values that occur more than once (sorted, each named once)."""
    counts = Counter(v for v in values if v is not None)
    return sorted((v for v, n in counts.items() if n > 1), key=str)


def clickhouse_duplicate_replicas(hosts: list[str], hostvars: Any) -> list[str]:
    """'shard N: replica R' for every replica name used twice within one shard."""
    seen: Counter = Counter()
    for host in hosts:
        hv = _hv(hostvars, host)
        seen[(str(hv.get("clickhouse_shard")), str(hv.get("clickhouse_replica")))] += 1
    return [f"shard {s}: replica {r}" for (s, r), n in sorted(seen.items()) if n > 1]


def clickhouse_missing_hostvar(hosts: list[str], hostvars: Any, name: str) -> list[str]:
    """Hosts on which the host variable ``name`` is undefined or empty."""
    return [h for h in hosts if str(_hv(hostvars, h).get(name, "")).strip() in ("", "None")]


def clickhouse_bad_ids(hosts: list[str], hostvars: Any, name: str = "clickhouse_keeper_server_id") -> list[str]:
    """Hosts whose ``name`` is set but is not a positive integer."""
    bad = []
    for host in hosts:
        raw = _hv(hostvars, host).get(name)
        if isinstance(raw, bool) or not re.fullmatch(r"[1-9][0-9]*", str(raw).strip()):
            bad.append(host)
    return bad


def clickhouse_empty_shards(hosts: list[str], hostvars: Any, shard_count: int | None = None) -> list[int]:
    """Shard numbers 1..N (N = clickhouse_shard_count or the highest shard used) with no replica."""
    used = set()
    for host in hosts:
        try:
            used.add(int(_hv(hostvars, host).get("clickhouse_shard")))
        except (TypeError, ValueError):
            continue
    top = int(shard_count) if shard_count else max(used, default=0)
    return [n for n in range(1, top + 1) if n not in used]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "clickhouse_keeper_raft": clickhouse_keeper_raft,
            "clickhouse_shards": clickhouse_shards,
            "clickhouse_duplicates": clickhouse_duplicates,
            "clickhouse_duplicate_replicas": clickhouse_duplicate_replicas,
            "clickhouse_missing_hostvar": clickhouse_missing_hostvar,
            "clickhouse_empty_shards": clickhouse_empty_shards,
            "clickhouse_bad_ids": clickhouse_bad_ids,
        }
