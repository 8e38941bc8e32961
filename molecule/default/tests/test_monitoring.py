"""Monitoring of the whole platform (issue 14), checked on the lab after converge and idempotence.

Prometheus on monitor01 (published on the controller's 127.0.0.1:9090) scrapes every component of
the inventory; Alertmanager sends to a webhook receiver that this module runs on the controller,
on the lab network's gateway address (the address the inventory's lab receiver names).
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import ClassVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # platform_data, beside this file

import platform_data as data

PROMETHEUS = "http://127.0.0.1:9090"
WEBHOOK_PORT = 8766
# The jobs Prometheus scrapes in the lab, and the hosts of each (the inventory's groups).
EXPECTED_JOBS = {
    "node": set(data.HOSTS),
    "kafka": {"kafka01"},
    "kafka_lag": {"monitor01"},
    "postgresql": {"pg01"},
    "minio": {"minio01"},
    "airflow": {"airflow01"},
    "blackbox_http": {"airflow01", "superset01", "minio01"},
    "prometheus": {"monitor01"},
    "alertmanager": {"monitor01"},
}
CLICKHOUSE_JOBS = {"clickhouse": {"replica01", "replica02"}, "clickhouse_keeper": {"keeper03"}}


def api(path: str, **params: str) -> dict:
    url = f"{PROMETHEUS}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310  the lab's own Prometheus on 127.0.0.1
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


def query(expr: str) -> list[dict]:
    return api("/api/v1/query", query=expr)["result"]


def wait_for(what: str, check, timeout: float, interval: float = 2.0):
    """Poll check() until it returns something truthy; fail naming what did not happen in time."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def targets_by_job() -> dict[str, dict[str, str]]:
    """{job: {host: health}} of the active targets."""
    out: dict[str, dict[str, str]] = {}
    for t in api("/api/v1/targets", state="active")["activeTargets"]:
        out.setdefault(t["labels"]["job"], {})[t["labels"]["host"]] = t["health"]
    return out


def test_every_lab_target_is_up_and_the_clickhouse_ones_are_named_as_skipped():
    def all_up():
        jobs = targets_by_job()
        ok = all(
            jobs.get(job, {}).keys() == hosts and set(jobs[job].values()) == {"up"}
            for job, hosts in EXPECTED_JOBS.items()
        )
        return jobs if ok else None

    jobs = wait_for("every lab target up in Prometheus", all_up, timeout=90) or targets_by_job()
    for job in sorted(jobs):
        print(f"job {job}: " + ", ".join(f"{h} {s}" for h, s in sorted(jobs[job].items())))
    config = data.remote("monitor01", "cat /etc/prometheus/prometheus.yml")
    if data.clickhouse_available():
        for job, hosts in CLICKHOUSE_JOBS.items():
            assert set(jobs.get(job, {})) == hosts, job
    else:
        for job, hosts in CLICKHOUSE_JOBS.items():
            assert job not in jobs, f"{job} is scraped although no ClickHouse server runs"
            assert f"# Not scraped: {job} (no ClickHouse server" in config, config[:800]
            print(f"SKIPPED job {job} ({', '.join(sorted(hosts))}): {data.NO_CLICKHOUSE}")


@pytest.mark.parametrize(
    "expr",
    [
        'kafka_server_replicamanager_underreplicatedpartitions{job="kafka"}',
        'kafka_controller_kafkacontroller_activecontrollercount{job="kafka"}',
        'kafka_controller_kafkacontroller_offlinepartitionscount{job="kafka"}',
        'kafka_network_requestmetrics_totaltimems{job="kafka",request="Produce"}',
        'kafka_log_log_size{job="kafka",topic="sensor_data"}',
        'kafka_server_raft_metrics_current_leader{job="kafka"}',
        'pg_up{job="postgresql"}',
        'pg_stat_activity_count{job="postgresql"}',
        'pg_settings_max_connections{job="postgresql"}',
        'minio_cluster_capacity_usable_total_bytes{job="minio"}',
        'node_filesystem_avail_bytes{job="node",host="pg01"}',
        'probe_success{job="blackbox_http"}',
        'airflow_scheduler_heartbeat_total{job="airflow"}',
        'kafka_consumergroup_lag_sum{job="kafka_lag",consumergroup="clickhouse_sensor_data",topic="sensor_data"}',
    ],
)
def test_the_exporters_return_the_named_metrics(expr):
    result = wait_for(f"{expr} in Prometheus", lambda: query(expr), timeout=60)
    values = {r["metric"].get("host", "?"): float(r["value"][1]) for r in result}
    print(f"{expr}: {values}")
    assert values


def test_postgresql_is_up_and_every_ui_probe_succeeds():
    assert {r["metric"]["host"]: r["value"][1] for r in query('pg_up{job="postgresql"}')} == {"pg01": "1"}
    probes = {r["metric"]["component"]: r["value"][1] for r in query('probe_success{job="blackbox_http"}')}
    print(f"UI probes: {probes}")
    assert probes == {"airflow": "1", "superset": "1", "minio_console": "1"}


def test_minio_metrics_need_the_bearer_token():
    script = (
        "code() { curl -s -o /dev/null -w '%{http_code}' --cacert /etc/chplatform/tls/ca.crt \"$@\" "
        "https://minio01:9000/minio/v2/metrics/cluster; }; "
        'echo "$(code) $(code -H "Authorization: Bearer $(cat /etc/prometheus/minio.token)")"'
    )
    anonymous, authorized = data.remote("monitor01", script).split()
    print(f"MinIO metrics: without the token HTTP {anonymous}, with it HTTP {authorized}")
    assert anonymous in ("401", "403")
    assert authorized == "200"
    mode = data.remote("monitor01", "stat -c '%a %U:%G' /etc/prometheus/minio.token")
    assert mode == "640 root:prometheus", mode


def test_prometheus_keeps_its_data_on_the_data_disk():
    args = data.remote("monitor01", "cat /etc/default/prometheus")
    assert "--storage.tsdb.path=/data/prometheus" in args
    assert data.remote("monitor01", "ls /data/prometheus | grep -c -E '^(wal|chunks_head)$'") == "2"


# --------------------------------------------------------------------------- the alert drill


class Receiver(http.server.BaseHTTPRequestHandler):
    notifications: ClassVar[list[tuple[float, dict]]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Receiver.notifications.append((time.monotonic(), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def lab_gateway() -> str:
    out = subprocess.run(
        ["docker", "network", "inspect", "chplatform-lab", "-f", "{{(index .IPAM.Config 0).Gateway}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture()
def webhook():
    server = http.server.ThreadingHTTPServer((lab_gateway(), WEBHOOK_PORT), Receiver)
    Receiver.notifications = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver
    server.shutdown()
    server.server_close()


def kafka_alerts(receiver, status: str, since: float) -> list[str]:
    return [
        f"{a['labels']['alertname']}"
        for t, n in receiver.notifications
        if t >= since
        for a in n["alerts"]
        if a["status"] == status and a["labels"].get("job") == "kafka" and a["labels"]["alertname"] == "TargetDown"
    ]


def rule_for(alert: str) -> float:
    for group in api("/api/v1/rules")["groups"]:
        for rule in group["rules"]:
            if rule.get("name") == alert:
                return float(rule["duration"])
    pytest.fail(f"no rule {alert} loaded in Prometheus")


def test_stopping_kafka_fires_target_down_at_the_webhook_and_starting_it_resolves_it(webhook):
    scrape = 5.0  # inventories/lab/group_vars/monitoring: prometheus_scrape_interval
    hold = rule_for("TargetDown")
    stopped = time.monotonic()
    data.remote("kafka01", "systemctl stop kafka")
    try:
        # Firing: the first failed scrape, the rule's `for`, one evaluation, Alertmanager's group_wait.
        wait_for(
            "TargetDown for kafka at the webhook",
            lambda: kafka_alerts(webhook, "firing", stopped),
            timeout=hold + 4 * scrape + 20,
            interval=0.5,
        )
        fired = time.monotonic() - stopped
        print(
            f"TargetDown (job kafka) reached the webhook {fired:.1f} s after Kafka stopped (for: {hold:.0f} s, scrape interval {scrape:.0f} s)"
        )
    finally:
        data.remote("kafka01", "systemctl start kafka")
    started = time.monotonic()
    wait_for(
        "the resolved TargetDown for kafka at the webhook",
        lambda: kafka_alerts(webhook, "resolved", started),
        timeout=120,
        interval=0.5,
    )
    print(f"resolved notification {time.monotonic() - started:.1f} s after Kafka started")
    assert fired <= hold + 4 * scrape + 20


# --------------------------------------------------------------------------- the console pages


@pytest.mark.parametrize("page", ["kafka", "hosts"])
def test_the_console_page_in_the_browser(page):
    from tests.browser import chromium_page, screenshot, wait_for_texts

    with chromium_page() as browser:
        browser.goto(f"{PROMETHEUS}/consoles/{page}.html", wait_until="domcontentloaded")
        body = wait_for_texts(browser, ["kafka01"] if page == "kafka" else ["pg01", "monitor01"], f"console-{page}")
        shot = screenshot(browser, f"prometheus-console-{page}")
    assert "error executing template" not in body
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
