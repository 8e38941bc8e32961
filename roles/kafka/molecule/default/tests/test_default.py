"""Checks of the kafka role from outside: a 3-voter KRaft quorum, replication across brokers,
topics as code (including check mode and refused changes), and data that survives a restart."""

import json
import os
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("kafka")

NODES = {"kafka01": 1, "kafka02": 2, "kafka03": 3}
PYTHON = "/opt/kafka-admin-venv/bin/python"
SCENARIO = Path(__file__).resolve().parent.parent
ROOT = SCENARIO.parents[3]


def node(name: str):
    return testinfra.get_host(f"docker://{name}")


def py(name: str, script: str, timeout: int = 120) -> str:
    """Run a kafka-python script with the admin venv on a node; return its stdout, fail on error."""
    cmd = f"timeout {timeout} {PYTHON} - <<'PY'\n{textwrap.dedent(script)}\nPY"
    result = node(name).run(cmd)
    assert result.rc == 0, f"script on {name} failed (rc={result.rc}): {result.stderr}\n{result.stdout}"
    return result.stdout.strip()


def ansible(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ansible against the scenario's inventory with the project's modules and roles."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(
        [*args, "-i", INVENTORY], env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=SCENARIO
    )


def topic_module(args: dict, *extra: str) -> subprocess.CompletedProcess:
    params = {"bootstrap_servers": ["kafka01:9092", "kafka02:9092", "kafka03:9092"], **args}
    return ansible(
        "ansible",
        "kafka01",
        "-m",
        "chplatform.platform.kafka_topic",
        "-a",
        json.dumps(params),
        "-e",
        f"ansible_python_interpreter={PYTHON}",
        *extra,
    )


# ---------------------------------------------------------------- every node


def test_service_runs_java_directly(host):
    assert host.service("kafka").is_running and host.service("kafka").is_enabled
    unit = host.file("/etc/systemd/system/kafka.service").content_string
    assert "ExecStart=/usr/bin/java $KAFKA_HEAP_OPTS" in unit
    assert "-cp '/opt/kafka/current/libs/*' kafka.Kafka /etc/kafka/server.properties" in unit
    assert "-Dlog4j2.configurationFile=/etc/kafka/log4j2.xml" in unit
    assert "LimitNOFILE=" in unit
    # The molecule heap comes from the lab group_vars, small enough for 3 JVMs on a shared box.
    assert "KAFKA_HEAP_OPTS=-Xms256m -Xmx512m" in unit
    proc = host.process.get(comm="java")
    assert proc.user == "kafka"
    assert "-Xmx512m" in proc.args and "kafka.Kafka" in proc.args


def test_listeners_answer(host):
    assert host.socket("tcp://0.0.0.0:9092").is_listening
    assert host.socket("tcp://0.0.0.0:9093").is_listening


def test_layout_and_ownership(host):
    assert host.file("/opt/kafka/current").linked_to == "/opt/kafka/kafka_2.13-4.3.1"
    assert host.file("/opt/kafka/current/libs").is_directory
    data = host.file("/data/kafka")
    assert data.is_directory and data.user == "kafka" and data.mode == 0o750
    props = host.file("/etc/kafka/server.properties")
    assert props.user == "root" and props.group == "kafka" and props.mode == 0o640
    assert host.user("kafka").shell == "/usr/sbin/nologin"
    assert host.file("/var/log/kafka/server.log").user == "kafka"


def test_server_properties(host):
    name = host.check_output("hostname")
    props = dict(
        line.split("=", 1)
        for line in host.file("/etc/kafka/server.properties").content_string.splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == str(NODES[name])
    assert props["controller.quorum.bootstrap.servers"] == "kafka01:9093,kafka02:9093,kafka03:9093"
    assert f"PLAINTEXT://{name}:9092" in props["advertised.listeners"]
    assert props["log.dirs"] == "/data/kafka"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == "2"
    assert props["auto.create.topics.enable"] == "false"


def test_storage_formatted_once_with_one_cluster_id(host):
    name = host.check_output("hostname")
    meta = host.file("/data/kafka/meta.properties").content_string
    assert f"node.id={NODES[name]}" in meta
    ids = {
        line.split("=", 1)[1]
        for n in NODES
        for line in node(n).file("/data/kafka/meta.properties").content_string.splitlines()
        if line.startswith("cluster.id=")
    }
    assert len(ids) == 1, f"nodes disagree on the cluster id: {ids}"
    assert len(ids.pop()) == 22


# ---------------------------------------------------------------- the cluster (checked once)


@pytest.fixture
def once(request):
    """Cluster-level tests run once (for kafka01) rather than once per node."""
    if "kafka01" not in request.node.name:
        pytest.skip("cluster-level check, run for kafka01 only")


def test_quorum_has_three_voters(host, once):
    out = py(
        "kafka02",
        """
        import json
        from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers="kafka02:9092")
        part = admin.describe_metadata_quorum()["topics"][0]["partitions"][0]
        cluster = admin.describe_cluster()
        print(json.dumps({"voters": sorted(v["replica_id"] for v in part["current_voters"]),
                          "leader": part["leader_id"],
                          "brokers": sorted((b["broker_id"], b["is_fenced"]) for b in cluster["brokers"])}))
        """,
    )
    state = json.loads(out)
    assert state["voters"] == [1, 2, 3]
    assert state["leader"] in (1, 2, 3)
    assert state["brokers"] == [[1, False], [2, False], [3, False]]


def test_quorum_tool_via_java(host, once):
    # The stock tool, run with java and the libs/ classpath (no bin/*.sh in the distribution).
    out = node("kafka03").check_output(
        "java -cp '/opt/kafka/current/libs/*' org.apache.kafka.tools.MetadataQuorumCommand "
        "--bootstrap-server kafka03:9092 describe --status 2>/dev/null"
    )
    voters = next(line for line in out.splitlines() if line.startswith("CurrentVoters:"))
    assert all(f'"id": {i}' in voters for i in (1, 2, 3)), voters


def test_message_produced_on_one_broker_is_consumed_on_another(host, once):
    marker = f"hello-{uuid.uuid4()}"
    py(
        "kafka01",
        f"""
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers="kafka01:9092", acks="all")
        p.send("sensor_data", b"{marker}").get(timeout=60)
        p.flush(); p.close()
        """,
    )
    out = py(
        "kafka03",
        f"""
        from kafka import KafkaConsumer
        c = KafkaConsumer("sensor_data", bootstrap_servers="kafka03:9092", auto_offset_reset="earliest",
                          consumer_timeout_ms=20000, enable_auto_commit=False)
        for m in c:
            if m.value == b"{marker}":
                print("found"); break
        c.close()
        """,
    )
    assert out == "found"


def test_external_listener_advertised_as_localhost(host, once):
    out = py(
        "kafka01",
        """
        from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers="localhost:29092")
        print(sorted((b["broker_id"], b["host"], b["port"]) for b in admin.describe_cluster()["brokers"]))
        """,
    )
    assert out == "[(1, 'localhost', 29092)]"


def test_topics_as_code(host, once):
    out = py(
        "kafka02",
        """
        import json
        from kafka.admin import ConfigResource, KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers="kafka02:9092")
        res = {}
        for t in admin.describe_topics(["sensor_data", "molecule_events"]):
            cfg = admin.describe_configs([ConfigResource("TOPIC", t["name"])])["topic"][t["name"]]
            res[t["name"]] = {"partitions": len(t["partitions"]),
                              "rf": {len(p["replica_nodes"]) for p in t["partitions"]}.pop(),
                              "configs": {k: v["value"] for k, v in cfg.items()
                                          if v["config_source"] == "DYNAMIC_TOPIC_CONFIG"}}
        print(json.dumps(res))
        """,
    )
    topics = json.loads(out)
    assert topics["sensor_data"] == {
        "partitions": 3,
        "rf": 3,
        "configs": {"retention.ms": "604800000", "cleanup.policy": "delete"},
    }
    assert topics["molecule_events"] == {
        "partitions": 2,
        "rf": 2,
        "configs": {"retention.ms": "3600000", "compression.type": "zstd"},
    }


def test_topic_module_check_mode_and_refusals(host, once):
    same = {
        "name": "molecule_events",
        "partitions": 2,
        "replication_factor": 2,
        "configs": {"retention.ms": 3600000, "compression.type": "zstd"},
    }
    run = topic_module(same, "--check")
    assert run.returncode == 0 and "kafka01 | SUCCESS" in run.stdout, run.stdout + run.stderr
    # Growing in check mode reports the change and does nothing.
    run = topic_module({**same, "partitions": 4}, "--check")
    assert run.returncode == 0 and "kafka01 | CHANGED" in run.stdout, run.stdout + run.stderr
    assert "increase partitions of molecule_events 2 -> 4" in run.stdout
    # Decreasing partitions and changing the replication factor fail with a reason.
    run = topic_module({**same, "partitions": 1})
    assert run.returncode != 0 and "cannot decrease them to 1" in run.stdout
    run = topic_module({**same, "replication_factor": 3})
    assert run.returncode != 0 and "needs a partition reassignment" in run.stdout
    count = py(
        "kafka01",
        """
        from kafka.admin import KafkaAdminClient
        print(len(KafkaAdminClient(bootstrap_servers="kafka01:9092").describe_topics(["molecule_events"])[0]["partitions"]))
        """,
    )
    assert count == "2"


def test_converged_play_in_check_mode_changes_nothing(host, once):
    run = ansible("ansible-playbook", "converge.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    recap = run.stdout[run.stdout.rindex("PLAY RECAP") :]
    for name in NODES:
        line = next(x for x in recap.splitlines() if x.startswith(name))
        assert "changed=0" in line and "failed=0" in line, line


def test_acked_messages_survive_a_broker_restart(host, once):
    topic = f"durability_{uuid.uuid4().hex[:8]}"
    py(
        "kafka01",
        f"""
        from kafka import KafkaProducer
        from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers="kafka01:9092")
        admin.create_topics({{"{topic}": {{"num_partitions": 3, "replication_factor": 3}}}}, wait_for_metadata=True)
        p = KafkaProducer(bootstrap_servers="kafka01:9092", acks="all")
        futures = [p.send("{topic}", str(i).encode()) for i in range(1000)]
        for f in futures:
            f.get(timeout=60)
        p.flush(); p.close()
        """,
    )
    kafka02 = node("kafka02")
    kafka02.check_output("systemctl restart kafka")
    wait = kafka02.run(
        "for i in $(seq 60); do /opt/kafka-admin-venv/bin/kafka-health --bootstrap kafka02:9092 --node-id 2 "
        "--broker --controller && exit 0; sleep 3; done; exit 1"
    )
    assert wait.rc == 0, wait.stdout
    out = py(
        "kafka02",
        f"""
        from kafka import KafkaConsumer
        c = KafkaConsumer("{topic}", bootstrap_servers="kafka02:9092", auto_offset_reset="earliest",
                          consumer_timeout_ms=20000, enable_auto_commit=False)
        values = set()
        for m in c:
            values.add(int(m.value))
            if len(values) == 1000:
                break
        c.close()
        print(len(values), min(values), max(values))
        """,
    )
    assert out == "1000 0 999"
