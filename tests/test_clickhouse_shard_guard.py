"""The clickhouse role's refusal to drop every replica of a shard (tasks/cluster_state.yml, with the
filter chplatform.platform.clickhouse_shards_left_behind): the cluster as the last run rendered it
(remote_servers.xml on the servers) against the inventory of this run, before any change. Run on
this controller (every host local, each with its own configuration directory); no ClickHouse server
is needed: the check reads the rendered files."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.chplatform.platform.plugins.filter.clickhouse import clickhouse_shards_left_behind

from tests.conftest import local_inventory, run_playbook

RENDERED = """<?xml version="1.0"?>
<clickhouse>
    <remote_servers replace="replace">
        <main>
            <secret>x</secret>
{shards}
        </main>
    </remote_servers>
</clickhouse>
"""
SHARD = "<shard><internal_replication>true</internal_replication>{replicas}</shard>"
REPLICA = "<replica><host>{host}</host><port>9440</port><secure>1</secure></replica>"
# The last run: shard 1 on ch01 and ch02, shard 2 on ch03 and ch04.
LAST_RUN = [["ch01", "ch02"], ["ch03", "ch04"]]

PLAYBOOK = """\
- name: The clickhouse role's check of the rendered cluster against the inventory
  hosts: clickhouse
  gather_facts: false
  tasks:
    - name: Run tasks/cluster_state.yml
      ansible.builtin.import_role:
        name: clickhouse
        tasks_from: cluster_state.yml
"""


def rendered(shards: list[list[str]]) -> str:
    body = "\n".join(SHARD.format(replicas="".join(REPLICA.format(host=h) for h in hosts)) for hosts in shards)
    return RENDERED.format(shards=body)


def current(shards: dict[int, list[str]]) -> list[dict]:
    return [{"shard": n, "replicas": [{"hostname": h} for h in hosts]} for n, hosts in sorted(shards.items())]


def test_a_shard_without_any_replica_left_is_named_with_where_it_was_read() -> None:
    files = {"ch01": rendered(LAST_RUN), "ch02": rendered(LAST_RUN)}
    assert clickhouse_shards_left_behind(files, current({1: ["ch01", "ch02"]}), "main") == [
        {"shard": 2, "hostnames": ["ch03", "ch04"], "recorded_on": "ch01"}
    ]


@pytest.mark.parametrize(
    ("now", "retired"),
    [
        ({1: ["ch01", "ch02"], 2: ["ch03"]}, []),  # one replica of shard 2 removed: one is left
        ({1: ["ch01"], 2: ["ch04", "ch05"]}, []),  # ch05 replaces ch03
        ({1: ["ch01", "ch02", "ch03"]}, []),  # ch03 moved to shard 1: its data is still in the cluster
        ({1: ["ch01", "ch02"]}, [2]),  # shard 2 retired on purpose
    ],
    ids=["replica-removed", "replica-replaced", "host-moved", "retired"],
)
def test_a_shard_with_a_replica_left_or_retired_passes(now: dict, retired: list) -> None:
    assert clickhouse_shards_left_behind({"ch01": rendered(LAST_RUN)}, current(now), "main", retired) == []


def test_what_records_nothing_is_not_compared() -> None:
    files = {"ch01": "not xml", "ch02": rendered(LAST_RUN).replace("<main>", "<other>").replace("</main>", "</other>")}
    assert clickhouse_shards_left_behind(files, current({1: ["ch01"]}), "main") == []


def run_check(tmp_path: Path, hosts: dict[str, int], *extra: str):
    """The role's task file on hosts {name: shard}, each with a configuration directory that holds
    the last run's remote_servers.xml."""
    inventory_hosts = {}
    for host, shard in hosts.items():
        config = tmp_path / host
        (config / "config.d").mkdir(parents=True)
        (config / "config.d/remote_servers.xml").write_text(rendered(LAST_RUN))
        inventory_hosts[host] = {"clickhouse_config_dir": str(config), "clickhouse_shard": shard,
                                 "clickhouse_replica": host}  # fmt: skip
    inventory = local_inventory(tmp_path, {"clickhouse": inventory_hosts})
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    return run_playbook(tmp_path / "play.yml", "-i", inventory, *extra, timeout=300)


def test_the_role_refuses_an_inventory_without_shard_2_and_names_the_fixes(tmp_path: Path) -> None:
    run = run_check(tmp_path, {"ch01": 1, "ch02": 1})
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0, out[-3000:]
    named = "ClickHouse shard 2 of cluster main (replicas ch03, ch04, as the last run rendered it on ch01)"
    assert named in out, out[-3000:]
    assert "Nothing was changed." in out
    assert "add the new host to the shard first" in out
    assert """-e '{"clickhouse_retired_shards": [2]}'""" in out.replace('\\"', '"')


@pytest.mark.parametrize(
    ("hosts", "extra"),
    [({"ch01": 1, "ch03": 2}, ()), ({"ch01": 1, "ch02": 1}, ("-e", '{"clickhouse_retired_shards": [2]}'))],
    ids=["a-replica-of-each-shard-left", "shard-2-retired"],
)
def test_the_role_accepts_an_inventory_that_keeps_every_shard(tmp_path: Path, hosts: dict, extra: tuple) -> None:
    run = run_check(tmp_path, hosts, *extra)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
