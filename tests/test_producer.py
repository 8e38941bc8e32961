# ruff: noqa: S311  (seeded test data, not cryptography)
"""The sensor producer: message contents, CLI errors, and real sends to a real Kafka broker."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sensor_producer import make_message, valid_message
from sensor_producer.cli import parse_args
from tests import services
from tests.services import create_topic

ROOT = Path(__file__).resolve().parent.parent

kafka_service = services.kafka_service  # the real broker (session fixture)
CLI = [sys.executable, "-m", "sensor_producer"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def test_valid_messages_have_the_seed_schema():
    rng = random.Random(1)
    for _ in range(200):
        m = valid_message(rng, sensors=10)
        assert set(m) == {"sensor_id", "temperature", "humidity", "timestamp"}
        assert type(m["sensor_id"]) is int and 1 <= m["sensor_id"] <= 10
        assert isinstance(m["temperature"], float) and 0 <= m["humidity"] <= 100
        assert type(m["timestamp"]) is int and abs(m["timestamp"] - time.time()) < 5


def test_malformed_fraction_and_seed_are_honoured():
    def run(seed):
        rng = random.Random(seed)
        return [make_message(rng, 0.2) for _ in range(5000)]

    a = run(3)
    bad = [v for v, is_bad in a if is_bad]
    assert 0.17 < len(bad) / len(a) < 0.23
    for v in bad:
        try:
            doc = json.loads(v)
        except ValueError:
            continue
        assert not (
            isinstance(doc, dict)
            and {"sensor_id", "temperature", "humidity", "timestamp"} <= set(doc)
            and isinstance(doc["temperature"], float)
        ), f"a message marked malformed is valid: {v!r}"
    assert [bad for _, bad in run(3)] == [bad for _, bad in a]
    assert all(not b for _, b in (make_message(random.Random(), 0.0) for _ in range(500)))


def test_cli_needs_count_or_forever_and_checks_ranges(capsys):
    with pytest.raises(SystemExit):
        parse_args([])
    with pytest.raises(SystemExit):
        parse_args(["--count", "1", "--malformed-fraction", "1.5"])
    assert parse_args(["--forever", "--rate", "0"]).forever


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_broker_fails_fast_with_one_line():
    port = closed_port()
    t0 = time.monotonic()
    r = subprocess.run(
        [*CLI, "--bootstrap-servers", f"127.0.0.1:{port}", "--count", "5", "--connect-timeout", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=ENV,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert f"no Kafka broker answered at 127.0.0.1:{port} within 2 s" in r.stderr
    assert time.monotonic() - t0 < 20


def count_messages(kafka, topic: str, expect: int, timeout: float = 30) -> int:
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest", group_id=None)
    n, deadline = 0, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            n += sum(len(b) for b in c.poll(timeout_ms=500).values())
            if n >= expect:
                # one more poll: there must be nothing beyond what was announced
                n += sum(len(b) for b in c.poll(timeout_ms=1000).values())
                break
    finally:
        c.close()
    return n


def test_cli_sends_count_messages_at_rate(kafka_service):
    create_topic(kafka_service, "producer_count")
    t0 = time.monotonic()
    r = subprocess.run(
        [*CLI, "--bootstrap-servers", kafka_service.bootstrap, "--topic", "producer_count", "--count", "300",
         "--rate", "200", "--malformed-fraction", "0.1", "--seed", "4"],
        capture_output=True, text=True, timeout=120, check=False, env=ENV,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sent 300 messages (")
    assert "acknowledged 300, failed 0" in r.stdout, r.stdout
    assert "msg/s" in r.stderr, "no progress line"
    assert elapsed >= 1.4, f"300 messages at 200 msg/s took only {elapsed:.1f} s"
    assert count_messages(kafka_service, "producer_count", 300) == 300


@contextlib.contextmanager
def producer_process(*args: str):
    """The CLI as a child process; killed on the way out if a failed assertion left it running."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def interrupt(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=60)


def test_ctrl_c_flushes_and_prints_a_summary(kafka_service):
    create_topic(kafka_service, "producer_forever")
    args = ["--bootstrap-servers", kafka_service.bootstrap, "--topic", "producer_forever", "--forever", "--quiet"]
    with producer_process(*args, "--rate", "500") as proc:
        # Interrupt once messages are flowing, not after a fixed delay: a slow start must not turn into a
        # Ctrl-C during the connection (that case has its own test below).
        flowing = count_messages(kafka_service, "producer_forever", 100, timeout=60)
        assert flowing >= 100, f"the producer sent {flowing} messages in 60 s"
        out, err = interrupt(proc)
    assert proc.returncode == 0, err
    assert out.startswith("interrupted: sent "), out
    sent = int(out.split()[2])
    assert sent > 100
    assert count_messages(kafka_service, "producer_forever", sent) == sent


def test_ctrl_c_while_connecting_exits_with_one_line():
    """A broker address that accepts the connection but never answers: Ctrl-C during the wait is a
    clean exit with one line, not a traceback."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(60)
        port = silent.getsockname()[1]
        with producer_process(
            "--bootstrap-servers", f"127.0.0.1:{port}", "--count", "5", "--connect-timeout", "120"
        ) as proc:
            conn, _ = silent.accept()  # the producer is connecting now
            with conn:
                out, err = interrupt(proc)
    assert proc.returncode == 130, err
    assert err.strip() == "sensor-producer: interrupted before a broker answered; nothing was sent", err
    assert out == ""
