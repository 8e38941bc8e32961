"""The kafka role's Prometheus JMX exporter, for real: the role's own templates (the exporter rules and
the systemd unit) rendered by Ansible, then a single KRaft node from the bundle's Kafka tarball
started with the unit's -javaagent argument and the bundle's agent jar, and its /metrics read.
Every metric name the alert rules rely on must be there with a numeric value."""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_playbook
from tests.services import (
    BUNDLE_DIR,
    KAFKA_LOG4J,
    KAFKA_PROPERTIES,
    STARTUP_TIMEOUT,
    bundle_manifest,
    free_port,
    kafka_distribution,
    stop,
    tail,
)

ROLE = ROOT / "roles" / "kafka"
# The names other engineers write alert rules and consoles against (files/prometheus/rules/).
EXPECTED = {
    "kafka_server_replicamanager_underreplicatedpartitions": [{}],
    "kafka_controller_kafkacontroller_offlinepartitionscount": [{}],
    "kafka_controller_kafkacontroller_activecontrollercount": [{}],
    "kafka_network_requestmetrics_totaltimems": [
        {"request": request, "quantile": quantile}
        for request in ("Produce", "FetchConsumer", "FetchFollower")
        for quantile in ("0.50", "0.99")
    ],
    "kafka_log_log_size": [{"topic": "__cluster_metadata", "partition": "0"}],
    "kafka_server_brokertopicmetrics_messagesin_total": [{}],
    "kafka_server_raft_metrics_current_leader": [{}],
}
# Seconds to wait, once the agent answers, for every name (the controller elects itself in ~2 s).
SETTLE = 20
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def render(tmp_path: Path, port: int) -> tuple[Path, str]:
    """Render the role's exporter rules and unit with its defaults and vars; return (rules, unit text)."""
    out = tmp_path / "render"
    out.mkdir()
    install_root = tmp_path / "opt"
    install_root.mkdir()
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render the kafka role's JMX exporter rules and unit",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars_files": [
                        str(ROOT / "roles/platform/defaults/main.yml"),
                        str(ROLE / "defaults/main.yml"),
                        str(ROLE / "vars/main.yml"),
                    ],
                    "tasks": [
                        {
                            "name": "Render " + src,
                            "ansible.builtin.template": {
                                "src": str(ROLE / "templates" / src),
                                "dest": str(out / Path(src).name.removesuffix(".j2")),
                                "mode": "0644",
                            },
                        }
                        for src in ("etc/kafka/jmx_exporter.yml.j2", "etc/systemd/system/kafka.service.j2")
                    ],
                }
            ]
        )
    )
    # Extra vars: they win over the vars_files (which play vars would not).
    overrides = tmp_path / "overrides.json"
    overrides.write_text(
        json.dumps(
            {
                "ansible_python_interpreter": sys.executable,
                "kafka_node_id": 1,
                "kafka_conf_dir": str(out),
                "kafka_install_root": str(install_root),
                "kafka_jmx_exporter_port": port,
            }
        )
    )
    result = run_playbook(playbook, "-i", "localhost,", "-c", "local", "-e", f"@{overrides}", timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return out / "jmx_exporter.yml", (out / "kafka.service").read_text()


def javaagent_of(unit: str) -> str:
    """The -javaagent argument the unit gives java (through its environment, as systemd expands it)."""
    env = dict(re.findall(r'^Environment="([A-Z_]+)=(.*)"$', unit, re.M))
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    assert "$KAFKA_JMX_EXPORTER_OPTS" in exec_start.split(), "the unit does not pass the agent to java"
    agents = [arg for arg in shlex.split(env["KAFKA_JMX_EXPORTER_OPTS"]) if arg.startswith("-javaagent:")]
    assert len(agents) == 1, env
    return agents[0]


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        samples.setdefault(m["name"], []).append((dict(LABEL.findall(m["labels"] or "")), float(m["value"])))
    return samples


def scrape(url: str, proc: subprocess.Popen, log: Path) -> dict:
    """The metrics once every expected name is there (the node takes a few seconds to elect itself).

    Waits up to STARTUP_TIMEOUT for the agent to answer, then up to SETTLE seconds for the names:
    what is still missing then fails in the test of that name, not here."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    settled: float | None = None
    samples: dict = {}
    while time.monotonic() < (settled or deadline):
        if proc.poll() is not None:
            raise RuntimeError(f"Kafka exited with code {proc.returncode}; see {log}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  a fixed http://127.0.0.1 URL
                samples = parse(response.read().decode())
        except OSError:
            time.sleep(0.5)
            continue
        settled = settled or time.monotonic() + SETTLE
        leader = samples.get("kafka_server_raft_metrics_current_leader", [({}, -1.0)])[0][1]
        if set(EXPECTED) <= set(samples) and leader >= 0:
            return samples
        time.sleep(0.5)
    if not samples:
        raise RuntimeError(f"{url} did not answer within {STARTUP_TIMEOUT:.0f} s; see {log}:\n{tail(log)}")
    return samples


@pytest.fixture(scope="module")
def kafka_with_agent(tmp_path_factory) -> dict:
    manifest = bundle_manifest()
    if "jmx_exporter" not in manifest:
        pytest.skip("the bundle predates the JMX exporter agent: run bin/bundle build")
    jar = BUNDLE_DIR / manifest["jmx_exporter"]["path"]
    base = tmp_path_factory.mktemp("kafka-jmx")
    port, cport, metrics_port = free_port(), free_port(), free_port()
    rules, unit = render(base, metrics_port)
    agent = javaagent_of(unit)
    # The unit's agent path is the role's install location; here it is the bundle's (same jar, same name).
    target, _, options = agent.removeprefix("-javaagent:").partition("=")
    assert Path(target).name == jar.name, f"the unit loads {target}, the bundle has {jar.name}"
    assert options == f"{metrics_port}:{rules}", agent
    Path(target).symlink_to(jar)

    home = kafka_distribution(tmp_path_factory.mktemp("kafka-dist"))
    props, log = base / "server.properties", base / "kafka.log"
    props.write_text(KAFKA_PROPERTIES.format(port=port, cport=cport, logdir=base / "data"))
    (base / "log4j2.yaml").write_text(KAFKA_LOG4J.format(log=log))
    java = ["java", "-Xms256m", "-Xmx512m", f"-Dlog4j2.configurationFile={base / 'log4j2.yaml'}"]
    classpath = ["-cp", f"{home}/libs/*"]
    fmt = ["kafka.tools.StorageTool", "format", "-t", "chplatform-test-cluster0", "-c", str(props), "--standalone"]
    r = subprocess.run([*java, *classpath, *fmt], capture_output=True, text=True, check=False)
    if r.returncode:
        raise RuntimeError(f"Kafka storage format failed: {r.stdout}{r.stderr}")
    stdout = base / "stdout.log"
    with stdout.open("w") as out:
        proc = subprocess.Popen([*java, agent, *classpath, "kafka.Kafka", str(props)], stdout=out, stderr=out)
    try:
        yield {"samples": scrape(f"http://127.0.0.1:{metrics_port}/metrics", proc, stdout), "rules": rules}
    finally:
        stop(proc)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_agent_exports_the_named_metric(kafka_with_agent, name):
    samples = kafka_with_agent["samples"].get(name)
    assert samples, f"{name} is not exported"
    for wanted in EXPECTED[name]:
        matching = [value for labels, value in samples if wanted.items() <= labels.items()]
        assert matching, f"{name}{wanted} is not exported; got {[labels for labels, _ in samples]}"
        assert all(math.isfinite(value) for value in matching), f"{name}{wanted}: {matching}"


def test_only_the_chosen_kafka_metrics_are_exported(kafka_with_agent):
    """The rules keep what matters: no Kafka series beyond the contract's names (JVM ones aside)."""
    kafka = {name for name in kafka_with_agent["samples"] if name.startswith("kafka_")}
    assert kafka <= set(EXPECTED) | {"kafka_server_raft_metrics_current_epoch"}, sorted(kafka)
    latency = kafka_with_agent["samples"]["kafka_network_requestmetrics_totaltimems"]
    assert {labels["request"] for labels, _ in latency} == {"Produce", "FetchConsumer", "FetchFollower"}
    assert {labels["quantile"] for labels, _ in latency} == {"0.50", "0.99"}


def test_a_single_node_quorum_reports_itself_as_leader_and_controller(kafka_with_agent):
    samples = kafka_with_agent["samples"]
    assert samples["kafka_server_raft_metrics_current_leader"][0][1] == 1  # node.id of the test node
    assert samples["kafka_controller_kafkacontroller_activecontrollercount"][0][1] == 1
    assert samples["kafka_server_replicamanager_underreplicatedpartitions"][0][1] == 0


def test_the_rules_file_is_yaml_with_lowercase_names(kafka_with_agent):
    rules = yaml.safe_load(kafka_with_agent["rules"].read_text())
    assert rules["lowercaseOutputName"] is True
    assert all(rule["name"] == rule["name"].lower() for rule in rules["rules"])
