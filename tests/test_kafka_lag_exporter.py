"""The Kafka lag exporter of the monitoring host (roles/prometheus/files/kafka_lag_exporter.py),
run as the host runs it (Debian's python3 with python3-confluent-kafka and python3-prometheus-client)
against a real Kafka broker: the lag it reports is what the group has not read, and reading it
moves nothing."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.conftest import ROOT
from tests.services import create_topic, free_port, stop

EXPORTER = ROOT / "roles/prometheus/files/kafka_lag_exporter.py"
TOPIC, GROUP, IDLE = "lag_topic", "lag_readers", "lag_nobody"


def series(text: str, name: str) -> dict[str, float]:
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    }


@pytest.fixture(scope="module")
def lag_setup(kafka_service):
    create_topic(kafka_service, TOPIC, partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_service.bootstrap, acks="all")
    for i in range(10):
        producer.send(TOPIC, value=b"m%d" % i, partition=i % 2)
    producer.flush()
    producer.close()
    # The group reads 2 messages of partition 0 and 1 of partition 1, and commits.
    consumer = KafkaConsumer(bootstrap_servers=kafka_service.bootstrap, group_id=GROUP, enable_auto_commit=False)
    consumer.assign([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])
    consumer.commit({TopicPartition(TOPIC, 0): _meta(2), TopicPartition(TOPIC, 1): _meta(1)})
    consumer.close()
    port = free_port()
    proc = subprocess.Popen(
        [
            "/usr/bin/python3",
            str(EXPORTER),
            "--bootstrap-servers",
            kafka_service.bootstrap,
            "--watch",
            f"{GROUP}:{TOPIC}",
            "--watch",
            f"{IDLE}:{TOPIC}",
            "--listen-address",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield kafka_service, port, proc
    finally:
        stop(proc)


def _meta(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, "", -1)


def scrape(port: int, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=15) as resp:
                return resp.read().decode()
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.poll() is not None else ""
                pytest.fail(f"the lag exporter did not serve /metrics within 30 s (exit {proc.poll()}): {out}")
            time.sleep(0.5)


def test_the_lag_is_what_each_group_has_not_read(lag_setup):
    _, port, proc = lag_setup
    text = scrape(port, proc)
    lag = series(text, "kafka_consumergroup_lag")
    print({k: v for k, v in lag.items()})
    assert lag[f'kafka_consumergroup_lag{{consumergroup="{GROUP}",partition="0",topic="{TOPIC}"}}'] == 3
    assert lag[f'kafka_consumergroup_lag{{consumergroup="{GROUP}",partition="1",topic="{TOPIC}"}}'] == 4
    sums = series(text, "kafka_consumergroup_lag_sum")
    assert sums[f'kafka_consumergroup_lag_sum{{consumergroup="{GROUP}",topic="{TOPIC}"}}'] == 7
    # A group that never committed has everything retained still to read.
    assert sums[f'kafka_consumergroup_lag_sum{{consumergroup="{IDLE}",topic="{TOPIC}"}}'] == 10
    assert series(text, "kafka_lag_exporter_up") == {"kafka_lag_exporter_up": 1.0}


def test_reading_the_lag_moves_nothing(lag_setup):
    kafka, port, proc = lag_setup
    scrape(port, proc)
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=GROUP, enable_auto_commit=False)
    committed = {p: consumer.committed(TopicPartition(TOPIC, p)) for p in (0, 1)}
    idle = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=IDLE, enable_auto_commit=False)
    nothing = {p: idle.committed(TopicPartition(TOPIC, p)) for p in (0, 1)}
    consumer.close()
    idle.close()
    assert committed == {0: 2, 1: 1}
    assert nothing == {0: None, 1: None}


def test_a_watch_on_a_missing_topic_says_kafka_did_not_answer_for_it(kafka_service):
    port = free_port()
    cmd = ["/usr/bin/python3", str(EXPORTER), "--bootstrap-servers", kafka_service.bootstrap]
    cmd += ["--watch", "g:no_such_topic", "--port", str(port), "--listen-address", "127.0.0.1", "--timeout", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        text = scrape(port, proc)
    finally:
        stop(proc)
    assert series(text, "kafka_lag_exporter_up") == {"kafka_lag_exporter_up": 0.0}
    assert not series(text, "kafka_consumergroup_lag_sum")


def test_a_watch_without_a_topic_is_refused():
    out = subprocess.run(
        ["/usr/bin/python3", str(EXPORTER), "--bootstrap-servers", "127.0.0.1:1", "--watch", "just_a_group"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "write GROUP:TOPIC" in out.stderr


def test_client_settings_file_is_read_as_librdkafka_keys(tmp_path):
    """The settings file the unit hands over (a systemd credential): key=value lines, comments skipped,
    a line without "=" refused by name. Run with the host's python3, as the unit does."""
    probe = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('exporter', {str(EXPORTER)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(json.dumps(m.read_properties(sys.argv[1])))\n"
    )
    good = tmp_path / "kafka.properties"
    good.write_text("# managed\nsecurity.protocol=SASL_SSL\nsasl.password=a=b\n\n")
    run = subprocess.run(["/usr/bin/python3", "-c", probe, str(good)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"security.protocol": "SASL_SSL", "sasl.password": "a=b"}
    bad = tmp_path / "bad.properties"
    bad.write_text("security.protocol\n")
    run = subprocess.run(["/usr/bin/python3", "-c", probe, str(bad)], capture_output=True, text=True, check=False)
    assert run.returncode != 0 and "'security.protocol' is not key=value" in run.stderr
