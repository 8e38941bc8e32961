"""The kafka role refuses bad inventories in assert.yml, before it changes anything.

Runs playbooks/kafka.yml limited to the `kafka:assert` tag against throw-away local inventories.
"""

import pytest

from tests.conftest import ROOT, local_inventory, run_playbook

SHA = "0" * 64


def inventory(tmp_path, hosts: dict, **group_vars) -> str:
    defaults = {"kafka_artifact_sha256": SHA, "kafka_data_dir": str(tmp_path / "data")}
    return local_inventory(tmp_path, {"kafka": hosts}, **{**defaults, **group_vars})


def run_assert(tmp_path, hosts: dict, **group_vars):
    inv = inventory(tmp_path, hosts, **group_vars)
    return run_playbook(
        ROOT / "playbooks" / "kafka.yml",
        "-i",
        inv,
        "--tags",
        "kafka:assert",
        ANSIBLE_FACT_CACHING="memory",
        ANSIBLE_GATHERING="explicit",
    )


THREE = {"k1": {"kafka_node_id": 1}, "k2": {"kafka_node_id": 2}, "k3": {"kafka_node_id": 3}}


def test_valid_three_node_inventory_passes(tmp_path):
    result = run_assert(tmp_path, THREE)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("hosts", "group_vars", "message"),
    [
        ({"k1": {"kafka_node_id": 1}, "k2": {"kafka_node_id": 2}}, {}, "needs an odd number of controllers"),
        ({"k1": {"kafka_node_id": 1, "kafka_process_roles": ["broker"]}}, {}, "(has 0: [])"),
        ({**THREE, "k3": {"kafka_node_id": 2}}, {}, "kafka_node_id values in group kafka repeat"),
        ({"k1": {}}, {}, "give it kafka_node_id"),
        (THREE, {"kafka_artifact_sha256": ""}, "Set kafka_artifact_sha256"),
        (THREE, {"kafka_cluster_id": "not-a-uuid"}, "kafka_cluster_id must be empty or a 22-character"),
        (
            THREE,
            {"kafka_topics_extra": [{"name": "too_wide", "replication_factor": 4}]},
            "between 1 and the number of brokers (3)",
        ),
        (
            THREE,
            {"kafka_topics_extra": [{"name": "sensor_data", "partitions": 6}]},
            "list a topic twice",
        ),
    ],
    ids=[
        "even-controllers",
        "zero-controllers",
        "duplicate-ids",
        "no-node-id",
        "no-sha256",
        "bad-cluster-id",
        "rf-above-brokers",
        "duplicate-topic",
    ],
)
def test_bad_inventory_fails_with_a_fix(tmp_path, hosts, group_vars, message):
    result = run_assert(tmp_path, hosts, **group_vars)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert message in output, output[-3000:]
    # Only assertions ran: nothing was created on the (local) host.
    assert not (tmp_path / "data").exists()
