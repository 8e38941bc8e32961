"""The prometheus role's configuration, generated from an inventory and checked by Prometheus' and
Alertmanager's own tools; the scrape-config and MinIO-token filters it uses.

The role's templates are rendered for the production example (monitor01.example.internal) by a
play that loads the role's variables the way the role does (its assert.yml, with the role public).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.chplatform.platform.plugins.filter.minio import minio_prometheus_token
from ansible_collections.chplatform.platform.plugins.filter.prometheus import prometheus_scrape_configs

from tests.conftest import ROOT, run_playbook
from tests.prometheus_tools import amtool, promtool

EXAMPLE = ROOT / "inventories/production.example"
MONITOR = "monitor01.example.internal"

RENDER = """
- name: Render the prometheus role's configuration for one host
  hosts: {host}
  connection: local
  gather_facts: false
  tasks:
    - name: Load the role's variables (and run its input checks)
      ansible.builtin.include_role:
        name: prometheus
        tasks_from: assert.yml
        public: true
    - name: Render the templates
      ansible.builtin.template:
        src: "{root}/roles/prometheus/templates/{{{{ item }}}}.j2"
        dest: "{out}/{{{{ item }}}}"
        mode: "0600"
      loop: [prometheus.yml, alertmanager.yml, blackbox.yml, prometheus.default]
"""


def render(tmp_path: Path, *extra: str, inventory: Path = EXAMPLE) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    playbook = tmp_path / "render.yml"
    playbook.write_text(RENDER.format(host=MONITOR, root=ROOT, out=out))
    pw = tmp_path / "pw"
    pw.write_text("example\n")
    result = run_playbook(
        playbook,
        "-i",
        str(inventory),
        "--vault-password-file",
        str(pw),
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        *extra,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("prometheus"))


@pytest.fixture(scope="module")
def rendered_without_clickhouse(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("prometheus_no_ch"), "-e", "platform_clickhouse_available=false")


def jobs(path: Path) -> dict[str, dict]:
    return {c["job_name"]: c for c in yaml.safe_load((path / "prometheus.yml").read_text())["scrape_configs"]}


def hosts_of(config: dict) -> dict[str, str]:
    return {s["labels"]["host"]: s["targets"][0] for s in config["static_configs"]}


def test_promtool_accepts_the_generated_configuration(rendered):
    out = subprocess.run(
        [str(promtool()), "check", "config", "--syntax-only", str(rendered / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    print(out.stdout + out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_component_of_the_inventory_is_a_job_on_the_contract_ports(rendered):
    got = jobs(rendered)
    ch = [f"ch-replica0{i}.example.internal" for i in (1, 2)]
    assert hosts_of(got["clickhouse"]) == {h: f"{h}:9363" for h in ch}
    assert hosts_of(got["clickhouse_keeper"]) == {"ch-keeper03.example.internal": "ch-keeper03.example.internal:9363"}
    assert hosts_of(got["kafka"]) == {"kafka01.example.internal": "kafka01.example.internal:9404"}
    assert hosts_of(got["postgresql"]) == {"pg01.example.internal": "pg01.example.internal:9187"}
    assert hosts_of(got["airflow"]) == {"airflow01.example.internal": "airflow01.example.internal:9102"}
    assert hosts_of(got["minio"]) == {"minio01.example.internal": "minio01.example.internal:9000"}
    assert got["minio"]["metrics_path"] == "/minio/v2/metrics/cluster"
    assert got["minio"]["authorization"]["credentials_file"] == "/etc/prometheus/minio.token"
    # MinIO speaks HTTPS (minio_tls): scraped over it, its certificate verified against the platform's CA.
    assert got["minio"]["scheme"] == "https"
    assert got["minio"]["tls_config"] == {"ca_file": "/etc/chplatform/tls/ca.crt"}
    assert "scheme" not in got["node"] and "tls_config" not in got["node"]
    assert len(hosts_of(got["node"])) == 9
    assert all(t.endswith(":9100") for t in hosts_of(got["node"]).values())
    probes = {s["labels"]["component"]: s["targets"][0] for s in got["blackbox_http"]["static_configs"]}
    assert probes == {
        # The UIs through nginx over HTTPS (platform_web_tls), verified against the CA like MinIO's console.
        "airflow": "https://airflow01.example.internal:443/api/v2/monitor/health",
        "superset": "https://superset01.example.internal:443/health",
        "minio_console": "https://minio01.example.internal:9001/",
    }


def test_without_a_clickhouse_server_its_jobs_are_left_out_and_named(rendered_without_clickhouse):
    text = (rendered_without_clickhouse / "prometheus.yml").read_text()
    got = jobs(rendered_without_clickhouse)
    assert "clickhouse" not in got and "clickhouse_keeper" not in got
    for job in ("clickhouse", "clickhouse_keeper"):
        assert f"# Not scraped: {job} (no ClickHouse server runs on these hosts" in text


def test_minio_over_plain_http_is_scraped_and_probed_over_http(tmp_path):
    got = jobs(render(tmp_path, "-e", "minio_tls=false"))
    assert "scheme" not in got["minio"] and "tls_config" not in got["minio"]
    probes = {s["labels"]["component"]: s["targets"][0] for s in got["blackbox_http"]["static_configs"]}
    assert probes["minio_console"] == "http://minio01.example.internal:9001/"


def test_without_the_tls_proxy_the_uis_are_probed_on_their_own_ports(tmp_path):
    got = jobs(render(tmp_path, "-e", "platform_web_tls=false"))
    probes = {s["labels"]["component"]: s["targets"][0] for s in got["blackbox_http"]["static_configs"]}
    assert probes["airflow"] == "http://airflow01.example.internal:8080/api/v2/monitor/health"
    assert probes["superset"] == "http://superset01.example.internal:8088/health"


def test_the_blackbox_prober_verifies_https_targets_against_the_platform_ca(rendered):
    module = yaml.safe_load((rendered / "blackbox.yml").read_text())["modules"]["http_2xx"]
    assert module["http"]["tls_config"] == {"ca_file": "/etc/chplatform/tls/ca.crt"}


def test_a_host_added_to_a_group_is_a_target_on_the_next_run(tmp_path):
    inventory = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inventory)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["children"]["kafka"]["hosts"]["kafka02.example.internal"] = {"kafka_node_id": 2}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    got = jobs(render(tmp_path, inventory=inventory))
    assert set(hosts_of(got["kafka"])) == {"kafka01.example.internal", "kafka02.example.internal"}
    assert "kafka02.example.internal" in hosts_of(got["node"])


def test_alertmanager_routes_by_severity_to_the_inventory_receivers(rendered):
    path = rendered / "alertmanager.yml"
    out = subprocess.run([str(amtool()), "check-config", str(path)], capture_output=True, text=True, check=False)
    print(out.stdout + out.stderr)
    assert out.returncode == 0, out.stdout + out.stderr
    config = yaml.safe_load(path.read_text())
    routes = {r["matchers"][0]: r["receiver"] for r in config["route"]["routes"]}
    assert routes == {'severity="critical"': "ops-webhook", 'severity="warning"': "ops-mail"}
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["ops-webhook"]["webhook_configs"][0]["send_resolved"] is True
    assert receivers["ops-mail"]["email_configs"][0]["to"] == "platform-ops@example.internal"
    assert config["global"]["smtp_smarthost"] == "mail.example.internal:587"


def test_storage_and_retention_on_the_data_disk(rendered):
    args = (rendered / "prometheus.default").read_text()
    assert "--storage.tsdb.path=/data/prometheus" in args
    assert "--storage.tsdb.retention.time=30d" in args
    assert "--web.external-url=http://monitor01.example.internal:9090/" in args


def test_the_scrape_filter_leaves_out_empty_and_skipped_jobs():
    configs = prometheus_scrape_configs(
        [
            {"job": "a", "hosts": ["h1", "h2"], "port": "9100"},
            {"job": "b", "hosts": [], "port": 1},
            {"job": "c", "hosts": ["h3"], "port": 1, "skip": "no server"},
            {"job": "d", "hosts": ["h4"], "port": 2, "path": "/m", "bearer_token_file": "/t"}
            | {"scheme": "https", "ca_file": "/ca"},
        ],
        [{"component": "ui", "hosts": ["h5", "h6"], "url": "http://{host}:80/health"}, {"component": "x", "hosts": []}],
        "127.0.0.1:9115",
    )
    assert [c["job_name"] for c in configs] == ["a", "d", "blackbox_http"]
    assert configs[2]["static_configs"] == [
        {"targets": ["http://h5:80/health"], "labels": {"host": "h5", "component": "ui"}},
        {"targets": ["http://h6:80/health"], "labels": {"host": "h6", "component": "ui"}},
    ]
    assert configs[2]["relabel_configs"][-1] == {"target_label": "__address__", "replacement": "127.0.0.1:9115"}
    assert configs[0]["static_configs"] == [
        {"targets": ["h1:9100"], "labels": {"host": "h1"}},
        {"targets": ["h2:9100"], "labels": {"host": "h2"}},
    ]
    assert configs[1]["metrics_path"] == "/m"
    assert configs[1]["authorization"] == {"type": "Bearer", "credentials_file": "/t"}
    assert configs[1]["scheme"] == "https" and configs[1]["tls_config"] == {"ca_file": "/ca"}
    assert "scheme" not in configs[0] and "tls_config" not in configs[0]


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_the_minio_token_is_an_hs512_jwt_signed_with_the_users_key():
    token = minio_prometheus_token("prometheus", "s3cret-key-of-40")
    header, payload, signature = token.split(".")
    assert json.loads(b64decode(header)) == {"alg": "HS512", "typ": "JWT"}
    assert json.loads(b64decode(payload)) == {"exp": 4102444800, "iss": "prometheus", "sub": "prometheus"}
    expected = hmac.new(b"s3cret-key-of-40", f"{header}.{payload}".encode(), hashlib.sha512).digest()
    assert b64decode(signature) == expected
    # The same key gives the same token (a re-run changes nothing); another key another one.
    assert token == minio_prometheus_token("prometheus", "s3cret-key-of-40")
    assert token != minio_prometheus_token("prometheus", "another-key-of-40")
