"""Superset from outside: service, health, API login, the imported objects, idempotent re-import."""

from __future__ import annotations

import json
import shlex
import urllib.parse

import pytest
import testinfra

from tests.lab_secrets import lab_secret

testinfra_hosts = ["superset01"]

URL = "http://127.0.0.1:8088"
CREDENTIALS = "/etc/superset/assets-credentials.json"
IMPORT = "/opt/superset/venv/bin/python /opt/superset/bin/superset-import-assets"
IMPORT_ARGS = "--url http://127.0.0.1:8088 --bundle /opt/superset/assets --stamp /data/superset/.assets-imported"


def login(host, password: str | None = None) -> dict:
    creds = json.loads(host.file(CREDENTIALS).content_string)
    body = json.dumps({"username": creds["username"], "password": password or creds["password"], "provider": "db"})
    out = host.check_output(
        f"curl -s -X POST -H 'Content-Type: application/json' -d {shlex.quote(body)} {URL}/api/v1/security/login"
    )
    return json.loads(out)


@pytest.fixture
def api(host):
    token = login(host)["access_token"]

    def get(path: str) -> dict:
        return json.loads(host.check_output(f"curl -sf -H 'Authorization: Bearer {token}' '{URL}{path}'"))

    return get


def counts(api) -> dict[str, int]:
    return {
        kind: api(f"/api/v1/{kind}/?q=(page_size:100)")["count"]
        for kind in ("database", "dataset", "chart", "dashboard")
    }


def test_service_running_and_enabled(host):
    service = host.service("superset")
    assert service.is_running
    assert service.is_enabled
    assert host.socket("tcp://0.0.0.0:8088").is_listening


def test_config_is_private(host):
    config = host.file("/etc/superset/superset_config.py")
    assert (config.user, config.group, config.mode) == ("root", "superset", 0o640)
    assert "WTF_CSRF_ENABLED = True" in config.content_string
    assert host.file(CREDENTIALS).mode == 0o600


def test_health_from_another_host():
    other = testinfra.get_host("docker://sspg01")
    assert other.check_output("curl -sf http://superset01:8088/health") == "OK"


def test_gunicorn_runs_as_superset(host):
    procs = [line.split(None, 1) for line in host.check_output("ps -eo user=,args=").splitlines() if "gunicorn" in line]
    assert len(procs) >= 3, procs  # master + 2 workers
    assert {user for user, _ in procs} == {"superset"}


def test_admin_login_returns_a_token(host):
    assert login(host)["access_token"]
    assert "access_token" not in login(host, password="not-the-password")  # noqa: S106  a wrong one on purpose


def test_metadata_lives_in_postgresql():
    pg = testinfra.get_host("docker://sspg01")
    out = pg.check_output("runuser -u postgres -- psql -tA -d superset -c 'SELECT count(*) FROM dashboards'")
    assert int(out) == 2


def test_clickhouse_connection_registered(api):
    result = api("/api/v1/database/?q=(page_size:100)")["result"]
    assert [d["database_name"] for d in result] == ["ClickHouse"]
    detail = api(f"/api/v1/database/{result[0]['id']}/connection")["result"]
    # HTTPS, the server verified against the platform's CA (Superset stores the query sorted).
    uri = urllib.parse.urlsplit(detail["sqlalchemy_uri"])
    assert f"{uri.scheme}://{uri.netloc}{uri.path}" == "clickhousedb://bi:XXXXXXXXXX@127.0.0.1:8443/datamart"
    assert dict(urllib.parse.parse_qsl(uri.query)) == {
        "secure": "true", "verify": "true", "ca_cert": "/etc/chplatform/tls/ca.crt"
    }  # fmt: skip
    assert detail["allow_dml"] is False


def stored_clickhouse_password(host) -> str:
    """The password Superset decrypts for the connection (read in the app, as the service user)."""
    code = (
        "from superset.app import create_app\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    from superset import db\n"
        "    from superset.models.core import Database\n"
        "    print('PW=' + db.session.query(Database).filter_by(database_name='ClickHouse').one().password)\n"
    )
    out = host.check_output(
        "cd /data/superset && runuser -u superset -- env SUPERSET_CONFIG_PATH=/etc/superset/superset_config.py "
        f"SUPERSET_HOME=/data/superset /opt/superset/venv/bin/python -c {shlex.quote(code)} 2>/dev/null"
    )
    return [line for line in out.splitlines() if line.startswith("PW=")][-1][3:]


def test_clickhouse_password_is_the_bi_secret(host):
    assert stored_clickhouse_password(host) == lab_secret("clickhouse_bi")


def test_datasets_charts_dashboards_exist(api):
    datasets = {d["table_name"] for d in api("/api/v1/dataset/?q=(page_size:100)")["result"]}
    assert {"trips", "trip_distance_buckets", "sensor_data", "sensor_latest"} <= datasets
    charts = api("/api/v1/chart/?q=(page_size:100)")
    assert charts["count"] == 14
    dashboards = {d["dashboard_title"]: d for d in api("/api/v1/dashboard/?q=(page_size:100)")["result"]}
    assert set(dashboards) == {"Trips", "Sensors"}
    trips = api("/api/v1/dashboard/trips/charts")["result"]
    assert len(trips) == 9
    sensors = api("/api/v1/dashboard/sensors/charts")["result"]
    assert len(sensors) == 5


def test_reimport_does_not_duplicate(host, api):
    before = counts(api)
    host.check_output("rm -f /data/superset/.assets-imported")
    out = json.loads(host.check_output(f"{IMPORT} {IMPORT_ARGS} --credentials {CREDENTIALS}"))
    assert out["changed"] is True
    assert counts(api) == before
    again = json.loads(host.check_output(f"{IMPORT} {IMPORT_ARGS} --credentials {CREDENTIALS}"))
    assert again["changed"] is False


def test_changed_password_updates_the_connection(host):
    creds = json.loads(host.file(CREDENTIALS).content_string)
    other = dict(creds, passwords={"databases/ClickHouse.yaml": "another-bi-password"})
    host.check_output(
        f"install -m 0600 /dev/null /root/other.json && echo {shlex.quote(json.dumps(other))} > /root/other.json"
    )
    try:
        out = json.loads(host.check_output(f"{IMPORT} {IMPORT_ARGS} --credentials /root/other.json"))
        assert out["changed"] is True
        assert stored_clickhouse_password(host) == "another-bi-password"
    finally:
        host.check_output(f"{IMPORT} {IMPORT_ARGS} --credentials {CREDENTIALS}; rm -f /root/other.json")
    assert stored_clickhouse_password(host) == lab_secret("clickhouse_bi")
