"""Unit tests of the chplatform.platform clickhouse filters (topology helpers)."""

from __future__ import annotations

from ansible_collections.chplatform.platform.plugins.filter import clickhouse as f

HOSTVARS = {
    "replica01": {"clickhouse_shard": 1, "clickhouse_replica": "replica01", "clickhouse_keeper_server_id": 1},
    "replica02": {"clickhouse_shard": "1", "clickhouse_replica": "replica02", "clickhouse_keeper_server_id": "2"},
    "keeper03": {"clickhouse_keeper_server_id": 3, "clickhouse_keeper_hostname": "k3.internal"},
    "a-new": {"clickhouse_keeper_server_id": 7},
}


def test_raft_sorted_by_id_not_position():
    raft = f.clickhouse_keeper_raft(["keeper03", "a-new", "replica02", "replica01"], HOSTVARS)
    assert [(m["id"], m["hostname"]) for m in raft] == [
        (1, "replica01"),
        (2, "replica02"),
        (3, "k3.internal"),
        (7, "a-new"),
    ]
    assert {m["port"] for m in raft} == {9234} and {m["client_port"] for m in raft} == {9181}


def test_shards_structure():
    shards = f.clickhouse_shards(["replica02", "replica01"], HOSTVARS)
    assert shards == [
        {
            "shard": 1,
            "replicas": [
                {"host": "replica01", "hostname": "replica01", "port": 9000, "replica": "replica01"},
                {"host": "replica02", "hostname": "replica02", "port": 9000, "replica": "replica02"},
            ],
        }
    ]
