"""The certificate rotation drill, over the production path: playbooks/rotate_certificates.yml gives
kafka01 and pg01 new keys and certificates while the sensor producer sends with acks=all from the
controller and monitor01 probes Airflow's and Superset's health every second through their TLS
front ends. Afterwards: every acknowledged message is in the topic exactly once (acknowledged =
consumed), no probe failed, and both servers present their new certificate, verified against the CA.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # platform_data, beside this file

import platform_data as data

CA = data.LAB_CA
RATE = 200
# monitor01 probes the UIs as the blackbox exporter does (through the firewall, verified against the
# CA), once a second until the controller closes its stdin; one line per probe.
UI_PROBES = {host: f"https://{host}{path}" for host, path, *_ in data.UIS}
PROBE_LOOP = r"""
probe() {
  out=$(curl -sS --max-time 3 --cacert /etc/chplatform/tls/ca.crt -w '\n%%{http_code}' "$2" 2>&1) || true
  echo "$(date +%%s.%%N) $1 ${out##*$'\n'} $(printf '%%s' "${out%%$'\n'*}" | tr -d '\n' | head -c 400)"
}
while true; do
  %s
  if read -r -t 1 _; then :; else rc=$?; [ "$rc" -gt 128 ] || break; fi
done
"""
RECAP = re.compile(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def served_serial(host: str, connect: str, starttls: str = "") -> str:
    """The serial of the certificate a server presents, read on a lab host that may reach it, and
    whether it verifies against the platform CA."""
    option = f"-starttls {starttls}" if starttls else ""
    out = data.remote(
        host,
        # The handshake goes to a file first: openssl x509 stops reading after the certificate, and a
        # pipe into it would end tee with SIGPIPE (exit 141) whenever s_client wrote more after it.
        f"openssl s_client {option} -connect {connect} -CAfile /etc/chplatform/tls/ca.crt </dev/null"
        " >/tmp/rotation-probe 2>/dev/null; openssl x509 -noout -serial -in /tmp/rotation-probe;"
        " grep -m1 'Verify return code' /tmp/rotation-probe",
    )
    serial, _, verify = out.partition("\n")
    assert "Verify return code: 0 (ok)" in verify, f"{connect} seen from {host}: {verify}"
    return serial.strip()


def healthy(host: str, code: str, body: str) -> bool:
    if code != "200":
        return False
    if host == "superset01":
        return body.strip() == "OK"
    doc = json.loads(body)
    return all(doc.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler"))


def test_the_rotation_preview_says_what_it_would_change_and_changes_nothing():
    """The operator's preview, rotate_certificates.yml --check --diff: it exits 0, says per host what
    the run would change (the change summary), and both servers still present the certificate they
    presented before."""

    def serials() -> dict[str, str]:
        return {
            "kafka01": served_serial("kafka01", "kafka01:9092"),
            "pg01": served_serial("airflow01", "pg01:5432", "postgres"),
        }

    before = serials()
    began = time.monotonic()
    preview = data.run(
        ["ansible-playbook", "-i", str(data.INVENTORY), "playbooks/rotate_certificates.yml",
         "--limit", "kafka,postgres", "--check", "--diff"],
        timeout=900,
    )  # fmt: skip
    recap = {h: (int(c), int(u), int(f)) for h, c, u, f in RECAP.findall(preview.stdout)}
    summary = preview.stdout[preview.stdout.find("CHANGE SUMMARY") :]
    print(f"rotate_certificates.yml --check --diff: {time.monotonic() - began:.0f} s, recap {recap}")
    print("\n".join(line for line in summary.splitlines() if "would change" in line))
    assert preview.returncode == 0, preview.stdout[-4000:] + preview.stderr[-2000:]
    assert {"kafka01", "pg01"} <= set(recap) and all(u == 0 and f == 0 for _, u, f in recap.values()), recap
    assert "check mode" in summary.splitlines()[0], summary[:500]
    for host in ("kafka01", "pg01"):
        assert recap[host][0] > 0 and re.search(rf"^{host}: \d+ tasks? would change", summary, re.M), (
            f"the preview does not say what the rotation would change on {host}"
        )
    assert serials() == before, "the preview changed a served certificate"


def test_rotating_kafka_and_postgresql_loses_no_acknowledged_message_and_keeps_the_uis_healthy():
    from kafka import KafkaConsumer, TopicPartition

    before = {
        "kafka01": served_serial("kafka01", "kafka01:9092"),
        "pg01": served_serial("airflow01", "pg01:5432", "postgres"),
    }
    consumer = KafkaConsumer(
        enable_auto_commit=False, consumer_timeout_ms=10000,
        **data.kafka_sasl("clickhouse", data.secret("kafka_clickhouse")),
    )  # fmt: skip
    parts = [TopicPartition("sensor_data", p) for p in consumer.partitions_for_topic("sensor_data")]
    start = consumer.end_offsets(parts)

    calls = "\n  ".join(f"probe {name} {url} &" for name, url in UI_PROBES.items()) + "\n  wait"
    ssh = ["ssh", "-F", str(data.SSH_CONFIG), "monitor01", "bash -c " + shlex.quote(PROBE_LOOP % calls)]
    prober = subprocess.Popen(ssh, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    producer_cmd = shutil.which("sensor-producer") or str(Path(sys.executable).parent / "sensor-producer")
    producer = subprocess.Popen(
        [producer_cmd, "--bootstrap-servers", "localhost:29092", "--topic", "sensor_data", "--forever",
         "--rate", str(RATE), "--quiet", "--security-protocol", "SASL_SSL", "--sasl-username", "producer",
         "--ssl-cafile", str(CA)],
        env={**os.environ, "KAFKA_SASL_PASSWORD": data.secret("kafka_producer")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(5)
        began = time.monotonic()
        rotation = data.run(
            ["ansible-playbook", "-i", str(data.INVENTORY), "playbooks/rotate_certificates.yml",
             "--limit", "kafka,postgres"],
            timeout=900,
        )  # fmt: skip
        took = time.monotonic() - began
        time.sleep(5)
    finally:
        if producer.poll() is None:
            producer.send_signal(signal.SIGINT)
        produced, producer_err = producer.communicate(timeout=180)
        probes, probe_err = prober.communicate(input="", timeout=30)
    recap = {h: (int(c), int(u), int(f)) for h, c, u, f in RECAP.findall(rotation.stdout)}
    print(f"rotate_certificates.yml --limit kafka,postgres: {took:.0f} s, recap (changed, unreachable, failed) {recap}")
    assert rotation.returncode == 0, rotation.stdout[-4000:] + rotation.stderr[-2000:]
    assert {"kafka01", "pg01"} <= set(recap) and all(u == 0 and f == 0 for _, u, f in recap.values()), recap

    after = {
        "kafka01": served_serial("kafka01", "kafka01:9092"),
        "pg01": served_serial("airflow01", "pg01:5432", "postgres"),
    }
    print(f"served certificates before {before}, after {after}")
    assert all(before[h] != after[h] for h in before), "a server still presents its old certificate"

    print(f"producer (acks=all, {RATE} msg/s): {produced.strip()} (exit {producer.returncode})")
    assert producer.returncode == 0, producer_err[-2000:]
    acked = re.search(r"acknowledged (\d+), failed (\d+)", produced)
    assert acked, produced
    acknowledged, failed = int(acked[1]), int(acked[2])
    assert failed == 0 and acknowledged >= RATE * 10, produced

    consumed, end = data.count_since(consumer, parts, start)
    print(f"acknowledged {acknowledged}, consumed {consumed} (offsets {start} -> {end})")
    assert consumed == acknowledged, "acknowledged and consumed messages differ"

    lines = [line.split(" ", 3) for line in probes.splitlines() if line.count(" ") >= 2]
    results: dict[str, list[bool]] = {name: [] for name in UI_PROBES}
    failures = []
    for when, name, code, *body in lines:
        ok = healthy(name, code, body[0] if body else "")
        results[name].append(ok)
        if not ok:
            failures.append(f"{when} {name} {code} {(body or [''])[0][:200]}")
    for name, oks in results.items():
        print(f"{name}: {len(oks)} health probes from monitor01 during the rotation, {oks.count(False)} failed")
    assert all(len(oks) >= took * 0.5 for oks in results.values()), probe_err[-2000:] or probes[-2000:]
    assert not failures, "\n".join(failures[:20])
