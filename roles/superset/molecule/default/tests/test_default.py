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
CA = "/etc/chplatform/tls/ca.crt"
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
    # Behind nginx (platform_web_tls): gunicorn on loopback only.
    assert host.socket("tcp://127.0.0.1:8088").is_listening
    assert not host.socket("tcp://0.0.0.0:8088").is_listening


def test_config_is_private(host):
    config = host.file("/etc/superset/superset_config.py")
    assert (config.user, config.group, config.mode) == ("root", "superset", 0o640)
    assert "WTF_CSRF_ENABLED = True" in config.content_string
    assert host.file(CREDENTIALS).mode == 0o600


def test_health_from_another_host_over_https_verified_by_the_ca():
    other = testinfra.get_host("docker://sspg01")
    out = other.check_output(
        f"curl -sf --cacert {CA} -w ' %{{http_code}} %{{ssl_verify_result}}' https://superset01/health"
    )
    print(f"https://superset01/health from sspg01: {out}")
    assert out == "OK 200 0"
    headers = other.check_output(f"curl -sf --cacert {CA} -o /dev/null -D - https://superset01/health").lower()
    assert "strict-transport-security: max-age=" in headers


def test_plain_http_is_a_permanent_redirect_to_https():
    other = testinfra.get_host("docker://sspg01")
    out = other.check_output("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' http://superset01/login/")
    assert out == "301 https://superset01/login/"


def test_tls_1_1_is_refused_and_1_2_and_1_3_are_served():
    other = testinfra.get_host("docker://sspg01")
    # SECLEVEL=0: the client offers TLS 1.1 at all (Debian's OpenSSL would not), so a refusal is the server's.
    old = other.run(
        f"openssl s_client -connect superset01:443 -servername superset01 -CAfile {CA} -tls1_1 "
        "-cipher 'DEFAULT:@SECLEVEL=0' </dev/null"
    )
    # (s_client prints "Protocol : TLSv1.1" for the attempt even when it failed: the alert is the answer.)
    assert old.rc != 0 and "alert protocol version" in old.stdout + old.stderr
    for version in ("tls1_2", "tls1_3"):
        new = other.run(
            f"openssl s_client -connect superset01:443 -servername superset01 -CAfile {CA} -{version} </dev/null"
        )
        assert new.rc == 0 and "Verify return code: 0 (ok)" in new.stdout, (version, new.stdout[-500:])


def test_gunicorn_is_not_reachable_from_another_host():
    other = testinfra.get_host("docker://sspg01")
    assert other.run("curl -sS -m 5 -o /dev/null http://superset01:8088/health").rc != 0


def test_nginx_holds_the_hosts_key_for_root_only_and_superset_knows_its_proxy(host):
    key = host.file("/etc/chplatform/tls/nginx/host.key")
    assert key.mode == 0o600 and key.user == "root"
    assert host.service("nginx").is_running and host.service("nginx").is_enabled
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    config = host.file("/etc/superset/superset_config.py").content_string
    assert "ENABLE_PROXY_FIX = True" in config and 'PREFERRED_URL_SCHEME = "https"' in config
    assert "SESSION_COOKIE_SECURE = True" in config
    site = host.file("/etc/nginx/sites-available/superset.conf").content_string
    assert "proxy_read_timeout 120s;" in site  # superset_web_timeout


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
