"""The kafka role refuses bad inventories in assert.yml, before it changes anything.

Runs playbooks/kafka.yml limited to the `kafka:assert` tag against throw-away local inventories;
the checks are chplatform.platform.validate_inventory's (plugin_utils/inventory_checks.py), one
line per problem: `<variable> on <host or group> is <value>: <fix>`.
"""

import pytest

from tests.conftest import ROOT, assert_refused, local_inventory, run_concurrently, run_playbook

SHA = "0" * 64


def inventory(tmp_path, hosts: dict, **group_vars) -> str:
    defaults = {
        "kafka_artifact_sha256": SHA,
        "kafka_data_dir": str(tmp_path / "data"),
        # The clients' SCRAM users of the contract (kafka_users) take their passwords from these.
        **{
            f"vault_kafka_{user}_password": f"test-{user}"
            for user in ("clickhouse", "producer", "airflow", "monitoring")
        },
    }
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


CASES = [
    # (id, hosts, group vars, start of the problem line, part of its fix)
    (
        "even-controllers",
        {"k1": {"kafka_node_id": 1}, "k2": {"kafka_node_id": 2}},
        {},
        "kafka_process_roles on group kafka is 2 controllers (k1, k2)",
        "the KRaft quorum needs an odd number of controllers",
    ),
    (
        "zero-controllers",
        {"k1": {"kafka_node_id": 1, "kafka_process_roles": ["broker"]}},
        {},
        "kafka_process_roles on group kafka is no controller",
        "give controller to 1 or 3 hosts",
    ),
    (
        "duplicate-ids",
        {**THREE, "k3": {"kafka_node_id": 2}},
        {},
        "kafka_node_id on k2, k3 is 2",
        "give every Kafka node its own id",
    ),
    ("no-node-id", {"k1": {}}, {}, "kafka_node_id on k1 is unset", "set it under the host in hosts.yml"),
    (
        "no-sha256",
        THREE,
        {"kafka_artifact_sha256": ""},
        "kafka_artifact_sha256 on k1 is ''",
        "set the sha256 (64 hex digits) of the tarball",
    ),
    (
        "bad-cluster-id",
        THREE,
        {"kafka_cluster_id": "not-a-uuid"},
        "kafka_cluster_id on k1 is 'not-a-uuid'",
        "22-character base64url UUID",
    ),
    (
        "no-cluster-name",
        THREE,
        {"kafka_cluster_name": ""},
        "kafka_cluster_name on k1 is ''",
        "it seeds the cluster id of a new cluster",
    ),
    (
        # An upgrade to a release the bundle does not carry (the lab sets kafka_artifact_versions from it).
        "version-not-in-the-bundle",
        THREE,
        {"kafka_version": "4.4.0", "kafka_artifact_versions": ["4.2.1", "4.3.1"], "kafka_artifact_sha256": ""},
        "kafka_version on k1 is '4.4.0'",
        "the artifact source offers Kafka 4.2.1, 4.3.1: set kafka_version to one of them, or pin 4.4.0 in "
        "files/bundle/versions.yml",
    ),
    ("port-zero", THREE, {"kafka_port": 0}, "kafka_port on k1 is 0", "between 1 and 65535"),
    (
        "external-port-taken",
        THREE,
        {"kafka_external_listener_port": 9093},
        "kafka_external_listener_port on k1 is 9093",
        "use a port other than kafka_port, kafka_controller_port and kafka_broker_port",
    ),
    (
        "broker-port-taken",
        THREE,
        {"kafka_broker_port": 9092},
        "kafka_broker_port on k1 is 9092",
        "use a port other than kafka_port and kafka_controller_port",
    ),
    ("no-max-heap", THREE, {"kafka_heap_opts": "-Xms1g"}, "kafka_heap_opts on k1 is '-Xms1g'", "-Xmx1g"),
    (
        "user-named-like-a-kafka-host",
        THREE,
        {"kafka_users": [{"name": "k2", "password": "x" * 20, "acls": []}]},
        "kafka_users[k2].name on the inventory is 'k2'",
        "that host's certificate, a super user of the cluster",
    ),
    (
        "acl-operation-kafka-does-not-know",
        THREE,
        {
            "kafka_users": [
                {
                    "name": "etl",
                    "password": "x" * 20,
                    "acls": [{"resource_type": "topic", "name": "t", "operations": ["reed"]}],
                }
            ]
        },
        "kafka_users[etl].acls[0].operations on the inventory is ['reed']",
        "use Kafka's operations: all, alter, alter_configs",
    ),
    (
        "rf-above-brokers",
        THREE,
        {"kafka_topics_extra": [{"name": "too_wide", "replication_factor": 4}]},
        "kafka_topics[too_wide].replication_factor on group kafka is 4",
        "the group has 3 broker(s) — lower it to 3 or add brokers",
    ),
    (
        "duplicate-topic",
        THREE,
        {"kafka_topics_extra": [{"name": "sensor_data", "partitions": 6}]},
        "kafka_topics[sensor_data] on group kafka is 'sensor_data'",
        "the topic is listed twice",
    ),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> dict:
    """Every case's run, two at a time (tests/conftest.py run_concurrently): {id: (result, its tmp dir)}."""

    def case(id_, hosts, group_vars):
        tmp = tmp_path_factory.mktemp(id_)
        return run_assert(tmp, hosts, **group_vars), tmp

    return run_concurrently({c[0]: (lambda c=c: case(*c[:3])) for c in CASES})


@pytest.mark.parametrize(("case", "line", "fix"), [(c[0], *c[3:]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inventory_fails_with_a_fix(refusals, case, line, fix):
    result, tmp_path = refusals[case]
    # One mistake, one line, naming the variable, where it is set, its value and the fix.
    assert_refused(result, line, fix, count=1)
    # Only the checks ran: nothing was created on the (local) host.
    assert not (tmp_path / "data").exists()
