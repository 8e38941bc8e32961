"""Airflow's StatsD metrics through the bundle's statsd_exporter with the airflow role's mapping:
the series the alert rules (files/prometheus/rules/airflow.yml) and the console pages read exist
under exactly those names and labels."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import ROOT
from tests.services import BUNDLE_DIR, bundle_manifest, free_port, stop

MAPPING = ROOT / "roles/airflow/templates/etc/statsd_exporter/mapping.yml.j2"
# What Airflow sends (statsd_prefix = airflow): a heartbeat counter, a DAG run's duration, a task's end.
LINES = [
    "airflow.scheduler_heartbeat:1|c",
    "airflow.scheduler_heartbeat:1|c",
    "airflow.dagrun.duration.success.clickhouse_backup_incremental:1500|ms",
    "airflow.dagrun.duration.failed.pg_to_ch:900|ms",
    "airflow.ti.finish.pg_to_ch.load.failed:1|c",
]


@pytest.fixture(scope="module")
def metrics(tmp_path_factory) -> str:
    binary = BUNDLE_DIR / bundle_manifest()["statsd_exporter"]["path"]
    mapping = tmp_path_factory.mktemp("statsd") / "mapping.yml"
    # The template's only Jinja is its ansible_managed header.
    mapping.write_text("\n".join(line for line in MAPPING.read_text().splitlines() if "ansible_managed" not in line))
    udp, web = free_port(), free_port()
    proc = subprocess.Popen(
        [
            str(binary),
            f"--statsd.listen-udp=127.0.0.1:{udp}",
            "--statsd.listen-tcp=",
            f"--web.listen-address=127.0.0.1:{web}",
            f"--statsd.mapping-config={mapping}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for line in LINES:
                    s.sendto(line.encode(), ("127.0.0.1", udp))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics", timeout=5) as resp:
                    text = resp.read().decode()
                if "airflow_ti_finish" in text:
                    return text
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"statsd_exporter served no Airflow series within 20 s (exit {proc.poll()})")
            time.sleep(0.3)
    finally:
        stop(proc)


@pytest.mark.parametrize(
    "series",
    [
        "airflow_scheduler_heartbeat_total ",
        'airflow_dagrun_duration_success_count{dag_id="clickhouse_backup_incremental"} ',
        'airflow_dagrun_duration_failed_count{dag_id="pg_to_ch"} ',
        'airflow_ti_finish{dag_id="pg_to_ch",state="failed",task_id="load"} ',
    ],
)
def test_the_mapping_names_the_series_the_rules_read(metrics, series):
    values = [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(series)]
    assert values and values[0] >= 1, [line for line in metrics.splitlines() if line.startswith("airflow_")]


def test_the_rules_read_the_mapped_names():
    rules = (ROOT / "files/prometheus/rules/airflow.yml").read_text()
    assert "airflow_scheduler_heartbeat_total" in rules
    assert "airflow_dagrun_duration_success_count" in rules
