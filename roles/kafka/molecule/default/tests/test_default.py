"""Checks of the kafka role from outside, after prepare (kafka01 alone, with data) and converge
(kafka02 and kafka03 added): a 3-voter KRaft quorum, every message of the one-node cluster still
there at replication factor 3, topics as code (including the module's check mode and a planned
reassignment; the converged play in check mode is checked by the full stack), data that survives a
restart, the refusal to drop a broker that holds data, and a restart owed by a run that stopped
before restarting."""

import itertools
import json
import os
import re
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("kafka")

NODES = {"kafka01": 1, "kafka02": 2, "kafka03": 3}
PYTHON = "/opt/kafka-admin-venv/bin/python"
SCENARIO = Path(__file__).resolve().parent.parent
ROOT = SCENARIO.parents[3]
# Written by the role when a node's configuration, unit or version changed; removed after the restart.
MARKER = "/var/lib/chplatform/restart-owed/kafka"
# converge installs the release before the pinned one; the last test upgrades the cluster to the pinned one.
VERSIONS = yaml.safe_load((ROOT / "files/bundle/versions.yml").read_text())
PREVIOUS, PINNED = VERSIONS["kafka_previous_version"], VERSIONS["kafka_version"]


def node(name: str):
    return testinfra.get_host(f"docker://{name}")


# The Kafka hosts' admin path: TLS on the brokers' listener (9094) with the node's own certificate,
# a super user. Every admin script of these tests starts with it.
ADMIN_TLS = (
    'TLS = dict(security_protocol="SSL", ssl_cafile="/etc/chplatform/tls/ca.crt", '
    'ssl_certfile="/etc/chplatform/tls/kafka/host.crt", ssl_keyfile="/etc/chplatform/tls/kafka/host.key")\n'
)


def py(name: str, script: str, timeout: int = 120) -> str:
    """Run a kafka-python script with the admin venv on a node; return its stdout, fail on error."""
    cmd = f"timeout {timeout} {PYTHON} - <<'PY'\n{ADMIN_TLS}{textwrap.dedent(script)}\nPY"
    result = node(name).run(cmd)
    assert result.rc == 0, f"script on {name} failed (rc={result.rc}): {result.stderr}\n{result.stdout}"
    return result.stdout.strip()


def ansible(*args: str, timeout: int = 900, inventory: str = INVENTORY) -> subprocess.CompletedProcess:
    """Run ansible against the scenario's inventory with the project's modules and roles."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(
        [*args, "-i", inventory], env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=SCENARIO
    )


def recap(run: subprocess.CompletedProcess) -> dict[str, str]:
    """The PLAY RECAP line of each host."""
    assert "PLAY RECAP" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    lines = run.stdout[run.stdout.rindex("PLAY RECAP") :].splitlines()[1:]
    return {line.split()[0]: line for line in lines if re.match(r"^\S+\s+: ok=", line)}


def main_pid(name: str) -> str:
    return node(name).check_output("systemctl show -p MainPID --value kafka")


def running_broker_config(key: str) -> dict[int, str]:
    """What each broker runs with (not what its server.properties says)."""
    out = py(
        "kafka01",
        f"""
        import json
        from kafka.admin import ConfigResource, KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers="kafka01:9094", **TLS)
        res = admin.describe_configs([ConfigResource("BROKER", str(b), configs={{"{key}": None}}) for b in (1, 2, 3)],
                                     config_filter="all")["broker"]
        print(json.dumps({{b: res[b]["{key}"]["value"] for b in res}}))
        """,
    )
    return {int(b): v for b, v in json.loads(out).items()}


def topic_module(args: dict, *extra: str) -> subprocess.CompletedProcess:
    params = {
        "bootstrap_servers": ["kafka01:9094", "kafka02:9094", "kafka03:9094"],
        "security_protocol": "SSL",
        "ssl_cafile": "/etc/chplatform/tls/ca.crt",
        "ssl_certfile": "/etc/chplatform/tls/kafka/host.crt",
        "ssl_keyfile": "/etc/chplatform/tls/kafka/host.key",
        **args,
    }
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
    for port in (9092, 9093, 9094):
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening, port


def test_jmx_exporter_serves_the_contract_metrics(host):
    """The agent in each Kafka process answers on the contract's port with the names the alert rules use."""
    jar = host.file("/opt/kafka/jmx_prometheus_javaagent-1.0.1.jar")
    assert jar.is_file and jar.user == "root" and jar.mode == 0o644
    rules = host.file("/etc/kafka/jmx_exporter.yml")
    assert rules.user == "root" and rules.group == "kafka" and rules.mode == 0o640
    assert "-javaagent:/opt/kafka/jmx_prometheus_javaagent-1.0.1.jar=9404:/etc/kafka/jmx_exporter.yml" in (
        host.process.get(comm="java").args
    )
    page = host.check_output(
        "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:9404/metrics\").read().decode())'"
    )
    names = {line.split("{")[0].split()[0] for line in page.splitlines() if line and not line.startswith("#")}
    for name in (
        "kafka_server_replicamanager_underreplicatedpartitions",
        "kafka_controller_kafkacontroller_offlinepartitionscount",
        "kafka_controller_kafkacontroller_activecontrollercount",
        "kafka_network_requestmetrics_totaltimems",
        "kafka_log_log_size",
        "kafka_server_brokertopicmetrics_messagesin_total",
        "kafka_server_raft_metrics_current_leader",
    ):
        assert name in names, f"{name} is missing from {host.backend.hostname}:9404/metrics"


def test_layout_and_ownership(host):
    # The release converge installed, or the pinned one once the upgrade test has run (the tests of
    # kafka01 run before those of kafka02 and kafka03).
    assert host.file("/opt/kafka/current").linked_to in (f"/opt/kafka/kafka_2.13-{v}" for v in (PREVIOUS, PINNED))
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
    assert f"CLIENT://{name}:9092" in props["advertised.listeners"]
    assert f"BROKER://{name}:9094" in props["advertised.listeners"]
    assert props["inter.broker.listener.name"] == "BROKER"
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,BROKER:SSL,CONTROLLER:SSL,EXTERNAL:SASL_SSL"
    assert props["super.users"] == "User:kafka01;User:kafka02;User:kafka03"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert "PLAINTEXT" not in props["listeners"]
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
        admin = KafkaAdminClient(bootstrap_servers="kafka02:9094", **TLS)
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


TOOL_CLASSES = r"""python3 - <<'PY'
import glob, re, zipfile
classes = {n[:-6].replace("/", ".") for j in glob.glob("/opt/kafka/current/libs/*.jar")
           for n in zipfile.ZipFile(j).namelist() if n.endswith(".class")}
for path in sorted(glob.glob("/usr/local/bin/kafka-*")):
    cls = re.search(r"-cp '[^']*' (\S+) ", open(path).read()).group(1)
    print(path.rsplit("/", 1)[1], cls, cls in classes)
PY"""
ADMIN = "--bootstrap-server kafka03:9094 --command-config /etc/kafka/server.properties"


def test_the_admin_tools_are_commands_and_run(host, once):
    """Kafka's own tools (the distribution has no bin/*.sh) as commands, each running a class that is in
    libs/; the quorum, the topics and the groups as an operator's runbook asks for them."""
    n = node("kafka03")
    tools = [line.split() for line in n.check_output(TOOL_CLASSES).splitlines()]
    print("admin tools:", ", ".join(f"{name} ({cls.rsplit('.', 1)[1]})" for name, cls, _ in tools))
    assert len(tools) >= 16 and all(found == "True" for *_, found in tools), [t for t in tools if t[2] != "True"]
    out = n.check_output(
        f"kafka-metadata-quorum {ADMIN} describe --status && echo ---- && kafka-topics {ADMIN} --list"
        f" && echo ---- && kafka-consumer-groups {ADMIN} --list"
    )
    quorum, topics, _groups = out.split("----")
    voters = next(line for line in quorum.splitlines() if line.startswith("CurrentVoters:"))
    assert all(f'"id": {i}' in voters for i in (1, 2, 3)), voters
    assert {"sensor_data", "molecule_events"} <= set(topics.split()), topics


def test_message_produced_on_one_broker_is_consumed_on_another(host, once):
    marker = f"hello-{uuid.uuid4()}"
    py(
        "kafka01",
        f"""
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers="kafka01:9094", **TLS, acks="all")
        p.send("sensor_data", b"{marker}").get(timeout=60)
        p.flush(); p.close()
        """,
    )
    out = py(
        "kafka03",
        f"""
        from kafka import KafkaConsumer
        c = KafkaConsumer("sensor_data", bootstrap_servers="kafka03:9094", **TLS, auto_offset_reset="earliest",
                          consumer_timeout_ms=20000, enable_auto_commit=False)
        for m in c:
            if m.value == b"{marker}":
                print("found"); break
        c.close()
        """,
    )
    assert out == "found"


STATE = Path(os.environ.get("CHPLATFORM_LAB_STATE", "~/.local/share/chplatform/lab")).expanduser()
CA = "/etc/chplatform/tls/ca.crt"


def secret(name: str) -> str:
    """A lab secret (inventories/lab/group_vars/all/secrets.yml), read on the controller."""
    return (STATE / "secrets" / name).read_text().split()[0]


def sasl_py(name: str, user: str, script: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """A kafka-python script on a node as Kafka user `user` (SASL_SSL, SCRAM, the CA): the script and
    the password go through stdin, never on a command line. SASL = the client settings."""
    head = (
        f'SASL = dict(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="{user}", '
        f'sasl_plain_password=PASSWORD, ssl_cafile="{CA}")\n'
    )
    body = f"PASSWORD = {secret('kafka_' + user)!r}\n{head}{textwrap.dedent(script)}"
    return subprocess.run(
        ["docker", "exec", "-i", name, "timeout", str(timeout), PYTHON, "-"],
        input=body, capture_output=True, text=True, timeout=timeout + 30, check=False,
    )  # fmt: skip


def test_external_listener_advertised_as_localhost_over_sasl_ssl(host, once):
    """The extra listener speaks SASL_SSL too; kafka01's certificate names localhost (pki_extra_names)."""
    run = sasl_py(
        "kafka01",
        "clickhouse",
        """
        from kafka import KafkaConsumer
        c = KafkaConsumer(bootstrap_servers="localhost:29092", **SASL)
        assert c.partitions_for_topic("sensor_data")
        print(sorted((b.node_id, b.host, b.port) for b in c._client.cluster.brokers()))
        c.close()
        """,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[(1, 'localhost', 29092)]"


def test_users_and_acls_are_code(host, once):
    """Every user of kafka_users has its SCRAM credential; ClickHouse's ACLs are exactly the listed ones."""
    out = py(
        "kafka01",
        """
        import json
        from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                                 KafkaAdminClient, ResourcePatternFilter, ResourceType)
        admin = KafkaAdminClient(bootstrap_servers="kafka01:9094", **TLS)
        users = admin.describe_user_scram_credentials()
        every = ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)
        acls, _ = admin.describe_acls(ACLFilter("User:clickhouse", "*", ACLOperation.ANY, ACLPermissionType.ANY, every))
        print(json.dumps({"users": sorted(u for u, v in users.items() if v["credential_infos"]),
                          "acls": sorted(f"{a.resource_pattern.resource_type.name} {a.resource_pattern.resource_name} "
                                         f"{a.operation.name} {a.permission_type.name}" for a in acls)}))
        """,
    )
    state = json.loads(out)
    assert state["users"] == ["airflow", "clickhouse", "monitoring", "producer"]
    assert state["acls"] == [
        "GROUP clickhouse_sensor_data DESCRIBE ALLOW",
        "GROUP clickhouse_sensor_data READ ALLOW",
        "TOPIC sensor_data DESCRIBE ALLOW",
        "TOPIC sensor_data READ ALLOW",
    ]


ACL_PROBE = """
import json
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
def attempt(fn):
    # "ok", "denied" (an authorization error of Kafka's), or anything else, named.
    try:
        fn()
        return "ok"
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        return "denied" if "Authorization" in text else text
def produce(topic):
    p = KafkaProducer(bootstrap_servers="kafka01:9092", acks="all", max_block_ms=15000, **SASL)
    try:
        p.send(topic, b"acl-probe").get(timeout=20)
    finally:
        p.close(timeout=5)
def consume(topic, group):
    c = KafkaConsumer(topic, bootstrap_servers="kafka01:9092", group_id=group, auto_offset_reset="earliest",
                      consumer_timeout_ms=8000, enable_auto_commit=False, **SASL)
    try:
        next(iter(c))
    finally:
        c.close()
def fetch(topic):
    # Without a group: the topic's own Read ACL decides.
    c = KafkaConsumer(bootstrap_servers="kafka01:9092", enable_auto_commit=False, **SASL)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp]); c.seek_to_beginning(tp)
        for _ in range(5):
            c.poll(timeout_ms=2000)
        c.position(tp)
    finally:
        c.close()
def offsets(topic):
    c = KafkaConsumer(bootstrap_servers="kafka01:9092", enable_auto_commit=False, **SASL)
    try:
        c.end_offsets([TopicPartition(topic, 0)])
    finally:
        c.close()
print(json.dumps({%s}))
"""


@pytest.mark.parametrize(
    ("user", "probes", "expected"),
    [
        (
            "producer",
            '"write": attempt(lambda: produce("sensor_data")), "read": attempt(lambda: fetch("sensor_data")), '
            '"other_topic": attempt(lambda: produce("molecule_events"))',
            {"write": "ok", "read": "denied", "other_topic": "denied"},
        ),
        (
            "clickhouse",
            '"read": attempt(lambda: consume("sensor_data", "clickhouse_sensor_data")), '
            '"write": attempt(lambda: produce("sensor_data")), '
            '"other_group": attempt(lambda: consume("sensor_data", "not_clickhouse")), '
            '"other_topic": attempt(lambda: offsets("molecule_events"))',
            {"read": "ok", "write": "denied", "other_group": "denied", "other_topic": "denied"},
        ),
    ],
)
def test_a_scram_user_can_do_only_what_its_acls_allow(host, once, user, probes, expected):
    run = sasl_py("kafka02", user, ACL_PROBE % probes, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"Kafka user {user}: {got}")
    assert got == expected


@pytest.mark.parametrize("port", [9092, 9093, 9094])
def test_no_protocol_below_tls_1_2(host, once, port):
    """openssl s_client offering TLS 1.1 (its own floor lowered, SECLEVEL=0) gets the broker's
    "protocol version" alert on every listener; TLS 1.2 is taken on the clients' listener."""

    def hello(version: str) -> str:
        return (
            node("kafka02")
            .run(
                f"openssl s_client -connect kafka01:{port} -servername kafka01 -CAfile {CA} -{version} "
                "-cipher 'DEFAULT@SECLEVEL=0' </dev/null 2>&1"
            )
            .stdout
        )

    old = hello("tls1_1")
    assert "alert protocol version" in old, old[-1500:]
    if port == 9092:
        new = hello("tls1_2")
        assert "Protocol  : TLSv1.2" in new and "Verify return code: 0 (ok)" in new, new[-1500:]
    print(f"kafka01:{port}: TLS 1.1 refused with a protocol version alert")


def test_the_clients_listener_refuses_plain_text_strangers_and_wrong_passwords(host, once):
    """9092: plain text gets no Kafka answer, a client trusting only the system CAs refuses the broker,
    a wrong password is refused. 9094: a TLS client without a certificate of the CA is refused."""
    script = """
        import json, socket, ssl, struct
        from kafka.admin import KafkaAdminClient
        def login(**kw):
            try:
                KafkaAdminClient(bootstrap_servers="kafka01:9092", request_timeout_ms=8000, bootstrap_timeout_ms=8000,
                                 **{**SASL, **kw}).close()
                return "ok"
            except Exception as exc:
                return type(exc).__name__
        # An ApiVersions request in plain text: a TLS listener answers with nothing Kafka can read.
        with socket.create_connection(("kafka01", 9092), timeout=10) as s:
            s.sendall(struct.pack(">ihhih", 10, 18, 0, 1, 0))
            try:
                reply = s.recv(64)
            except OSError as exc:
                reply = type(exc).__name__.encode()
        # A Kafka response starts with its size and our correlation id (1).
        plain = "answered" if reply[4:8] == struct.pack(">i", 1) else "no answer"
        # TLS without a client certificate on the brokers' listener.
        ctx = ssl.create_default_context(cafile="CA_FILE")
        try:
            with socket.create_connection(("kafka01", 9094), timeout=10) as raw, \\
                    ctx.wrap_socket(raw, server_hostname="kafka01") as s:
                s.sendall(struct.pack(">ihhih", 10, 18, 0, 1, 0))
                no_cert = "answered" if s.recv(64)[4:8] == struct.pack(">i", 1) else "no answer"
        except (ssl.SSLError, OSError) as exc:
            no_cert = type(exc).__name__
        print(json.dumps({"plain": plain, "no_cert": no_cert, "right": login(),
                          "wrong_password": login(sasl_plain_password="not-the-password"),
                          "system_cas": login(ssl_cafile=None)}))
        """.replace("CA_FILE", CA)
    run = sasl_py("kafka03", "clickhouse", script, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"clients' listener: {got}")
    assert got["right"] == "ok"
    assert got["plain"] == "no answer"
    assert got["no_cert"] != "answered"
    assert got["wrong_password"] != "ok" and got["system_cas"] != "ok"  # noqa: S105  an outcome, not a password


def test_topics_as_code(host, once):
    out = py(
        "kafka02",
        """
        import json
        from kafka.admin import ConfigResource, KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers="kafka02:9094", **TLS)
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
    # Decreasing partitions fails with a reason; a replication factor above the brokers too.
    run = topic_module({**same, "partitions": 1})
    assert run.returncode != 0 and "cannot decrease them to 1" in run.stdout
    run = topic_module({**same, "replication_factor": 4})
    assert run.returncode != 0 and "replication factor 4 needs 4 brokers; the cluster has 3" in run.stdout
    # A new replication factor is a reassignment: check mode shows the plan, old and new replicas.
    run = topic_module({**same, "replication_factor": 3}, "--check", "--diff")
    assert run.returncode == 0 and "kafka01 | CHANGED" in run.stdout, run.stdout + run.stderr
    assert "change the replication factor of molecule_events 2 -> 3 by a partition reassignment" in run.stdout
    for partition in (0, 1):
        assert re.search(
            rf"reassign partition {partition} of molecule_events: replicas \[\d, \d\] -> \[\d, \d, \d\]", run.stdout
        )
    assert '"replication_factor": 3' in run.stdout and '"reassignment"' in run.stdout
    state = py(
        "kafka01",
        """
        from kafka.admin import KafkaAdminClient
        t = KafkaAdminClient(bootstrap_servers="kafka01:9094", **TLS).describe_topics(["molecule_events"])[0]
        print(len(t["partitions"]), sorted({len(p["replica_nodes"]) for p in t["partitions"]}))
        """,
    )
    assert state == "2 [2]"


def test_acked_messages_survive_a_broker_restart(host, once):
    topic = f"durability_{uuid.uuid4().hex[:8]}"
    py(
        "kafka01",
        f"""
        from kafka import KafkaProducer
        from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers="kafka01:9094", **TLS)
        admin.create_topics({{"{topic}": {{"num_partitions": 3, "replication_factor": 3}}}}, wait_for_metadata=True)
        p = KafkaProducer(bootstrap_servers="kafka01:9094", **TLS, acks="all")
        futures = [p.send("{topic}", str(i).encode()) for i in range(1000)]
        for f in futures:
            f.get(timeout=60)
        p.flush(); p.close()
        """,
    )
    kafka02 = node("kafka02")
    kafka02.check_output("systemctl restart kafka")
    wait = kafka02.run(
        "for i in $(seq 60); do /opt/kafka-admin-venv/bin/kafka-health --bootstrap kafka02:9094 --node-id 2 "
        "--broker --controller --cafile /etc/chplatform/tls/ca.crt --certfile /etc/chplatform/tls/kafka/host.crt "
        "--keyfile /etc/chplatform/tls/kafka/host.key && exit 0; sleep 3; done; exit 1"
    )
    assert wait.rc == 0, wait.stdout
    out = py(
        "kafka02",
        f"""
        from kafka import KafkaConsumer
        c = KafkaConsumer("{topic}", bootstrap_servers="kafka02:9094", **TLS, auto_offset_reset="earliest",
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


# ---------------------------------------------------------------- the grown cluster


def test_no_restart_is_owed_after_converge(host):
    assert not host.file(MARKER).exists


def test_every_message_of_the_one_node_cluster_is_still_there(host, once):
    seed = json.loads(node("kafka01").file("/root/molecule-seed.json").content_string)
    n = seed["count"]
    assert n >= 1000
    # Read from kafka03, which did not exist when the messages were written.
    out = py(
        "kafka03",
        f"""
        from kafka import KafkaConsumer
        from kafka.admin import KafkaAdminClient
        c = KafkaConsumer("{seed["topic"]}", bootstrap_servers="kafka03:9094", **TLS, auto_offset_reset="earliest",
                          consumer_timeout_ms=20000, enable_auto_commit=False)
        seen = set()
        for m in c:
            if m.value.startswith(b"seed-"):
                seen.add(int(m.value[5:]))
                if len(seen) == {n}:
                    break
        c.close()
        group = "{seed["group"]}"
        offsets = KafkaAdminClient(bootstrap_servers="kafka03:9094", **TLS).list_group_offsets(group)[group]
        print(len(seen), min(seen), max(seen), sum(o.offset for o in offsets.values()))
        """,
    )
    # Every message, and the consumer group's committed position (kept in __consumer_offsets).
    assert out == f"{n} 0 {n - 1} {n}"


def test_topics_reached_replication_factor_three_by_reassignment(host, once):
    out = py(
        "kafka02",
        """
        import json
        from kafka.admin import ConfigResource, KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers="kafka02:9094", **TLS)
        res = {}
        for t in admin.describe_topics(["sensor_data", "__consumer_offsets"]):
            res[t["name"]] = [[p["replica_nodes"], sorted(p["isr_nodes"]), p["leader_id"]] for p in t["partitions"]]
        throttles = admin.describe_configs([ConfigResource("TOPIC", "sensor_data")]
                                           + [ConfigResource("BROKER", str(b)) for b in (1, 2, 3)])
        res["throttles"] = sorted(k for kind in throttles.values() for cfg in kind.values() for k in cfg
                                  if "throttled" in k)
        res["reassigning"] = len(admin.list_partition_reassignments())
        print(json.dumps(res))
        """,
    )
    state = json.loads(out)
    for name in ("sensor_data", "__consumer_offsets"):
        for replicas, isr, _ in state[name]:
            assert sorted(replicas) == [1, 2, 3] == isr, (name, replicas, isr)
    # sensor_data's 3 partitions: each broker is the preferred leader (first replica) of one. (The
    # current leaders may differ for a while after the restarts of these tests.)
    assert sorted(replicas[0] for replicas, _, _ in state["sensor_data"]) == [1, 2, 3]
    assert len(state["__consumer_offsets"]) == 50
    # The reassignment is over and its throttle removed, on the topic and on the brokers.
    assert state["reassigning"] == 0
    assert state["throttles"] == []


def kafka_inventory(tmp_path: Path, names: list[str], extra: dict[str, dict] | None = None) -> str:
    """An inventory whose group kafka holds ``names`` (the scenario's hosts, their connection as
    molecule wrote it, plus ``extra`` variables), with the scenario's group_vars and host_vars."""
    molecule_inventory = yaml.safe_load(Path(INVENTORY).read_text())
    hosts = {h: {**molecule_inventory["all"]["hosts"][h], **(extra or {}).get(h, {})} for h in names}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"kafka": {"hosts": hosts}}}}))
    for link in ("group_vars", "host_vars"):
        (tmp_path / link).symlink_to((Path(INVENTORY).parent / link).resolve())
    return str(tmp_path / "hosts.yml")


def test_removing_a_broker_is_refused_before_any_change(host, once, tmp_path):
    """kafka03 taken out of the inventory while it holds replicas and a vote: the kafka play stops
    before changing anything, naming the node and the drain procedure."""
    # Validation refuses an even number of controllers before this check could run: the smaller
    # inventory keeps an odd quorum by making kafka02 a broker-only node.
    smaller = kafka_inventory(tmp_path, ["kafka01", "kafka02"], {"kafka02": {"kafka_process_roles": ["broker"]}})
    before = {n: (node(n).file("/etc/kafka/server.properties").sha256sum, main_pid(n)) for n in ("kafka01", "kafka02")}
    # --tags kafka: the kafka role only. converge.yml applies the common role first, which would
    # rightly rewrite /etc/hosts for the smaller inventory (site.yml runs it as a play of its own).
    run = ansible("ansible-playbook", "converge.yml", "--tags", "kafka", inventory=smaller)
    assert run.returncode != 0, run.stdout[-3000:]
    # (Failures go to stderr with molecule's display_failed_stderr.)
    output = run.stdout + run.stderr
    line = next((x for x in output.splitlines() if "Kafka node 3 is no longer in the inventory" in x), None)
    assert line is not None, output[-4000:]
    # One line: the node, what it holds, and the drain procedure.
    for part in ("partition replica(s) and a vote in the metadata quorum", "removing it now loses data",
                 "remove-controller --controller-id 3 --controller-directory-id ",
                 "playbooks/remove_kafka_broker.yml -e kafka_remove_hosts=<host>",
                 "then remove the host from the inventory"):  # fmt: skip
        assert part in line, (part, line)
    lines = recap(run)
    assert all("changed=0" in lines[n] for n in ("kafka01", "kafka02")), lines
    assert any("failed=1" in lines[n] for n in ("kafka01", "kafka02")), lines
    # Nothing before the refusal touched the configuration or the service.
    assert "Render server.properties" not in run.stdout
    after = {n: (node(n).file("/etc/kafka/server.properties").sha256sum, main_pid(n)) for n in ("kafka01", "kafka02")}
    assert after == before


def test_owed_restart_survives_a_run_that_stops_before_the_restart(host, once, tmp_path):
    """A run that rewrites server.properties and stops before the restart (here: --tags kafka:config)
    leaves the marker; the broker keeps running the old configuration; the next run restarts it behind
    the gate and the health check, and clears the marker. The setting changes on kafka03 only (a
    host variable): only kafka03 owes the restart, and the other nodes are not restarted (CI time: one
    restart instead of three; the upgrade drill below restarts every node, one at a time, leader last).
    The upgrade run then puts kafka03 back on the scenario's setting."""
    key = "message.max.bytes"
    default = running_broker_config(key)[1]
    changed = str(int(default) + 12)
    setting = {"kafka03": {"kafka_server_properties_extra": {key: int(changed)}}}
    inventory = kafka_inventory(tmp_path, list(NODES), setting)
    others = ("kafka01", "kafka02")
    pids = {n: main_pid(n) for n in NODES}
    files = {n: node(n).file("/etc/kafka/server.properties").sha256sum for n in others}

    run = ansible("ansible-playbook", "converge.yml", "--tags", "kafka:config", inventory=inventory)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "Restart the service on" not in run.stdout
    assert f"{key}={changed}" in node("kafka03").file("/etc/kafka/server.properties").content_string
    assert node("kafka03").file(MARKER).exists, "kafka03: no owed restart recorded"
    for n in others:
        assert node(n).file("/etc/kafka/server.properties").sha256sum == files[n], f"{n}: configuration changed"
        assert not node(n).file(MARKER).exists, f"{n}: a restart recorded for an unchanged configuration"
    assert {n: main_pid(n) for n in NODES} == pids, "a node restarted"
    assert running_broker_config(key) == {1: default, 2: default, 3: default}

    # The next run applies the restart. Only its restart step runs here (--tags kafka:restart, the
    # step that reads the markers; CI time): the rest of a full run changes nothing on a converged
    # cluster (the idempotence step) and so cannot write or clear a marker.
    run = ansible("ansible-playbook", "converge.yml", "--tags", "kafka:restart", inventory=inventory)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # Task banners of the rolling restart and of the health wait that follows each restart.
    events = [
        ("restart" if kind.startswith("Restart") else "healthy", name)
        for kind, name in re.findall(
            r"^TASK \[(?:\w+ : )?(Restart the service on|Wait until the node is registered and in the quorum, node)"
            r" (kafka0\d)\]",
            run.stdout,
            flags=re.MULTILINE,
        )
    ]
    # The gate (the node healthy, every partition in sync), the restart, healthy again: kafka03 only.
    assert events == [("healthy", "kafka03"), ("restart", "kafka03"), ("healthy", "kafka03")], run.stdout[-4000:]
    for n in NODES:
        assert not node(n).file(MARKER).exists, f"{n}: owed restart not cleared"
    assert main_pid("kafka03") != pids["kafka03"], "kafka03 was not restarted"
    assert {n: main_pid(n) for n in others} == {n: pids[n] for n in others}, "an unchanged node restarted"
    assert running_broker_config(key) == {1: default, 2: default, 3: changed}
    lines = recap(run)
    assert set(NODES) <= set(lines) and all("failed=0" in line for line in lines.values()), lines


# ---------------------------------------------------------------- the upgrade, under load (last)

# Runs in the background on kafka01 while upgrade.yml runs: acks=all, idempotent, each message a
# sequence number; counts what the brokers acknowledged until /tmp/upgrade-stop exists.
UPGRADE_PRODUCER = """
import json, os, sys, time
from kafka import KafkaProducer
topic = sys.argv[1]
p = KafkaProducer(bootstrap_servers=["kafka01:9094", "kafka02:9094", "kafka03:9094"], **TLS, acks="all",
                  enable_idempotence=True, delivery_timeout_ms=120000, request_timeout_ms=30000, linger_ms=5)
state = {"sent": 0, "acked": [], "failed": 0}
def ok(i):
    return lambda _meta: state["acked"].append(i)
def bad(_exc):
    state["failed"] += 1
while not os.path.exists("/tmp/upgrade-stop"):
    for _ in range(20):
        p.send(topic, str(state["sent"]).encode()).add_callback(ok(state["sent"])).add_errback(bad)
        state["sent"] += 1
    time.sleep(0.1)
p.flush(timeout=150)
p.close()
print(json.dumps({"sent": state["sent"], "acked": sorted(state["acked"]), "failed": state["failed"]}))
"""

# Runs in the background on kafka02: the metadata quorum's leader and the finalized metadata version,
# four times a second, until /tmp/upgrade-stop exists.
QUORUM_WATCH = """
import json, os, time
from kafka.admin import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=["kafka01:9094", "kafka02:9094", "kafka03:9094"], **TLS,
                         request_timeout_ms=3000)
seen = []
while not os.path.exists("/tmp/upgrade-stop"):
    now = time.time()
    try:
        part = admin.describe_metadata_quorum()["topics"][0]["partitions"][0]
        leader, epoch = part["leader_id"], part["leader_epoch"]
    except Exception:
        leader, epoch = -1, -1
    try:
        level = admin.describe_features()["metadata.version"]["finalized"][1]
    except Exception:
        level = None
    seen.append([now, leader, epoch, level])
    time.sleep(0.25)
print(json.dumps(seen))
"""


UPGRADE = (str(ROOT / "playbooks/upgrade.yml"), "-e", "chplatform_components=kafka")
REMOVE = str(ROOT / "playbooks/remove_kafka_broker.yml")


def background(name: str, script: str, *args: str) -> subprocess.Popen:
    cmd = f"{PYTHON} - {' '.join(args)} <<'PY'\n{ADMIN_TLS}{textwrap.dedent(script)}\nPY"
    return subprocess.Popen(
        ["docker", "exec", name, "bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finalized_metadata_version() -> str:
    out = node("kafka01").check_output(f"kafka-features {ADMIN} describe")
    return re.search(r"metadata\.version\s.*FinalizedVersionLevel:\s*(\S+)", out).group(1)


def started_at(name: str) -> float:
    """When systemd last started Kafka on a node (seconds since the epoch)."""
    out = node(name).check_output("systemctl show -p ExecMainStartTimestamp --timestamp=unix --value kafka")
    return int(out.lstrip("@"))


def every_acknowledged_message_once(topic: str, produced: str, produced_err: str) -> None:
    """UPGRADE_PRODUCER's report against what a consumer reads from the topic: nothing failed, every
    acknowledged message is there, none twice, none that was not acknowledged."""
    result = json.loads(produced.strip().splitlines()[-1]) if produced.strip() else {}
    assert result, produced_err[-2000:]
    acked = result["acked"]
    out = py(
        "kafka03",
        f"""
        import json
        from kafka import KafkaConsumer
        c = KafkaConsumer("{topic}", bootstrap_servers="kafka03:9094", **TLS, auto_offset_reset="earliest",
                          consumer_timeout_ms=20000, enable_auto_commit=False)
        values = [int(m.value) for m in c]
        c.close()
        print(json.dumps(values))
        """,
        timeout=300,
    )
    consumed = json.loads(out)
    print(f"producer: sent {result['sent']}, acked {len(acked)}, failed {result['failed']}; consumed {len(consumed)}")
    assert result["failed"] == 0 and len(acked) > 1000
    assert len(consumed) == len(set(consumed)), "a message was written twice"
    assert set(acked) <= set(consumed), f"{len(set(acked) - set(consumed))} acknowledged message(s) lost"
    assert len(consumed) == len(acked)


def test_upgrade_moves_the_cluster_to_the_pinned_release_under_load(host, once):
    """playbooks/upgrade.yml, from the release before the pinned one to the pinned one, while a producer
    sends with acks=all: one node at a time, the quorum's leader last, the metadata version raised only
    after the last node; every acknowledged message read back once, the quorum without a leader for a
    few seconds at most; a second run changes nothing; going back below the new metadata version is
    refused before any change."""
    assert PREVIOUS != PINNED
    for n in NODES:
        assert node(n).file("/opt/kafka/current").linked_to == f"/opt/kafka/kafka_2.13-{PREVIOUS}"
    before = finalized_metadata_version()
    assert before.startswith(PREVIOUS.rsplit(".", 1)[0] + "-"), before
    topic = f"upgrade_{uuid.uuid4().hex[:8]}"
    py(
        "kafka01",
        f"""
        from kafka.admin import KafkaAdminClient, NewTopic
        admin = KafkaAdminClient(bootstrap_servers="kafka01:9094", **TLS)
        admin.create_topics([NewTopic("{topic}", 3, 3, topic_configs={{"min.insync.replicas": "2"}})])
        """,
    )
    for n in NODES:
        node(n).run("rm -f /tmp/upgrade-stop")
    watch = background("kafka02", QUORUM_WATCH)
    producer = background("kafka01", UPGRADE_PRODUCER, topic)
    try:
        time.sleep(5)
        run = ansible("ansible-playbook", *UPGRADE)
    finally:
        for n in ("kafka01", "kafka02"):
            node(n).run("touch /tmp/upgrade-stop")
        produced, produced_err = producer.communicate(timeout=200)
        watched, watched_err = watch.communicate(timeout=60)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]

    # Every node runs the pinned release, restarted once, and nothing is owed.
    for n in NODES:
        assert node(n).file("/opt/kafka/current").linked_to == f"/opt/kafka/kafka_2.13-{PINNED}"
        assert not node(n).file(MARKER).exists
    after = finalized_metadata_version()
    assert after.startswith(PINNED.rsplit(".", 1)[0] + "-"), after
    restarts = re.findall(r"^TASK \[(?:\w+ : )?Restart the service on (kafka0\d)\]", run.stdout, flags=re.MULTILINE)
    assert sorted(restarts) == sorted(NODES), restarts
    raised = run.stdout.index("Raise the metadata version, every node running the new release, to Kafka")
    last_health = run.stdout.rindex("Wait until the restarted node is healthy, node")
    assert raised > last_health, "the metadata version was raised before the last node was healthy"

    # The quorum: who led when the run began went last; the longest time without a known leader.
    samples = json.loads(watched)
    assert samples, watched_err
    first_leader = next(leader for _, leader, _, _ in samples if leader >= 0)
    assert NODES[restarts[-1]] == first_leader, (restarts, first_leader)
    known = [t for t, leader, _, _ in samples if leader >= 0]
    gaps = [b - a for a, b in itertools.pairwise(known)]
    longest = max(gaps)
    elections = len({epoch for _, leader, epoch, _ in samples if leader >= 0}) - 1
    print(f"quorum: {len(samples)} samples, longest without a known leader {longest:.1f} s, {elections} election(s)")
    assert longest < 15, f"the quorum had no known leader for {longest:.1f} s"
    # The metadata version rose once, after the last node had started on the new release.
    levels = [(t, level) for t, _, _, level in samples if level is not None]
    first_raised = next(t for t, level in levels if level > levels[0][1])
    last_start = max(started_at(n) for n in NODES)
    print(f"metadata version {before} -> {after}: raised {first_raised - last_start:.1f} s after the last node started")
    assert first_raised > last_start
    assert all(level == levels[0][1] for t, level in levels if t < last_start)

    # Every acknowledged message is in the topic, once.
    every_acknowledged_message_once(topic, produced, produced_err)

    # A second run changes nothing (the finalize step included).
    again = ansible("ansible-playbook", *UPGRADE, "--tags", "kafka:finalize")
    assert again.returncode == 0 and all("changed=0" in line for line in recap(again).values()), again.stdout[-3000:]

    # Back to the previous release (converge.yml pins it): refused before any change, naming the fix.
    pids = {n: main_pid(n) for n in NODES}
    back = ansible("ansible-playbook", "converge.yml", "--tags", "kafka:assert")
    assert back.returncode != 0
    output = back.stdout + back.stderr
    refusal = f"Kafka {PREVIOUS} cannot run this cluster: its metadata version is finalized at {after}"
    assert refusal in output, output[-3000:]
    assert "Nothing was changed" in output
    for n in NODES:
        assert node(n).file("/opt/kafka/current").linked_to == f"/opt/kafka/kafka_2.13-{PINNED}"
        assert main_pid(n) == pids[n]


# ---------------------------------------------------------------- a broker added, drained and removed (last)


def replicas_per_node() -> dict[int, int]:
    """How many partition replicas each node holds, over every topic (Kafka's internal ones too)."""
    out = py(
        "kafka01",
        """
        import json
        from collections import Counter
        from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers="kafka01:9094", **TLS)
        held = Counter(b for t in admin.describe_topics() for p in t["partitions"] for b in p["replica_nodes"])
        print(json.dumps(held))
        """,
    )
    return {int(n): c for n, c in json.loads(out).items()}


@pytest.fixture
def last(request):
    """The drain drill runs once, as the very last test: for kafka03, the last host, whose tests run
    after kafka01's and kafka02's. Adding kafka04 changes every node's configuration (super.users names
    each node): no per-node check may run after it."""
    if "kafka03" not in request.node.name:
        pytest.skip("cluster-level drill, run once, after every other check (for kafka03)")


def test_a_fourth_broker_is_added_then_drained_and_removed_under_load(host, last, tmp_path):
    """kafka04 joins the running cluster as a broker-only node (the scenario's converge with it in
    group kafka: the other nodes restart one at a time for their new super.users) and takes replicas
    of a new topic; then, while a producer sends with acks=all, playbooks/remove_kafka_broker.yml drains
    it (every replica moved to the three others), stops it and unregisters it: every acknowledged
    message is read back once. A second run changes nothing, and the role's check before any change
    accepts the inventory without kafka04."""
    four = kafka_inventory(tmp_path, [*NODES, "kafka04"])
    pids = {n: main_pid(n) for n in NODES}
    add = ansible("ansible-playbook", "converge.yml", "-e", f"kafka_version={PINNED}", inventory=four)
    assert add.returncode == 0, add.stdout[-5000:] + add.stderr[-2000:]
    assert node("kafka04").service("kafka").is_running
    print(f"kafka04 added; restarted meanwhile: {[n for n in NODES if main_pid(n) != pids[n]] or 'none'}")

    topic = f"drain_{uuid.uuid4().hex[:8]}"
    py(
        "kafka01",
        f"""
        from kafka.admin import KafkaAdminClient, NewTopic
        admin = KafkaAdminClient(bootstrap_servers="kafka01:9094", **TLS)
        admin.create_topics([NewTopic("{topic}", 4, 3, topic_configs={{"min.insync.replicas": "2"}})])
        """,
    )
    before = replicas_per_node()
    assert before.get(4, 0) >= 3, f"kafka04 holds too little to drain: {before}"

    for n in ("kafka01", "kafka02"):
        node(n).run("rm -f /tmp/upgrade-stop")
    producer = background("kafka01", UPGRADE_PRODUCER, topic)
    try:
        time.sleep(5)
        run = ansible("ansible-playbook", REMOVE, "-e", "kafka_remove_hosts=kafka04", inventory=four)
    finally:
        node("kafka01").run("touch /tmp/upgrade-stop")
        produced, produced_err = producer.communicate(timeout=200)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]

    after = replicas_per_node()
    print(f"replicas per node before the drain {before}, after {after}")
    assert after.get(4, 0) == 0, after
    assert sum(after.values()) == sum(before.values()), "a replica was dropped instead of moved"
    assert not node("kafka04").service("kafka").is_running
    assert not node("kafka04").service("kafka").is_enabled
    assert "changed: [kafka0" in run.stdout.split("Unregister the removed brokers", 1)[1].split("TASK [", 1)[0]
    every_acknowledged_message_once(topic, produced, produced_err)

    # A second run: nothing to move, nothing to stop, not registered any more.
    again = ansible("ansible-playbook", REMOVE, "-e", "kafka_remove_hosts=kafka04", inventory=four)
    assert again.returncode == 0 and all("changed=0" in line for line in recap(again).values()), again.stdout[-4000:]

    # kafka04 out of the inventory (the scenario's): the role's check before any change (kafka:assert,
    # as in the refusal test above) asks the cluster and finds nothing held and no vote on node 4.
    gone = ansible("ansible-playbook", "converge.yml", "--tags", "kafka:assert", "-e", f"kafka_version={PINNED}")
    output = gone.stdout + gone.stderr
    assert gone.returncode == 0, output[-4000:]
    asked = output.split("Ask the running cluster which nodes hold partition replicas and quorum votes]", 1)[1]
    outcome = re.search(r"^(ok|skipping|changed|fatal|failed):", asked, flags=re.MULTILINE)
    assert outcome and outcome[1] == "ok", asked[:500]
    assert "is no longer in the inventory" not in output
    assert all("changed=0" in line for line in recap(gone).values()), recap(gone)
