"""The UIs behind TLS on the lab (roles/web_proxy, platform_web_tls): Airflow and Superset served by
nginx on 443 with certificates from the lab's CA, port 80 only redirecting, the apps' own ports
(8080, 8088) on loopback only, and the controller's published URLs verified with the lab's CA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # platform_data, beside this file

import platform_data as data

CA = "/etc/chplatform/tls/ca.crt"
LAB_CA = data.LAB_CA
UIS = data.UIS
ids = [ui[0] for ui in UIS]


@pytest.mark.parametrize(("host", "path", "mark", "app_port", "published"), UIS, ids=ids)
def test_https_from_the_monitoring_host_verifies_with_the_platform_ca(host, path, mark, app_port, published):
    out = data.remote(
        "monitor01",
        f"curl -sS --cacert {CA} -w '\\n%{{http_code}} %{{ssl_verify_result}}' https://{host}{path}",
    )
    body, status = out.rsplit("\n", 1)
    print(f"https://{host}{path} from monitor01: {status}: {body[:160]}")
    assert status == "200 0" and mark in body


@pytest.mark.parametrize(("host", "path", "mark", "app_port", "published"), UIS, ids=ids)
def test_plain_http_only_redirects_to_https(host, path, mark, app_port, published):
    # On the host itself (port 80 is open to the admin sources only, not to the other lab hosts).
    out = data.remote(host, f"curl -sS -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{host}{path}")
    print(f"http://{host}{path}: {out}")
    assert out == f"301 https://{host}{path}"


@pytest.mark.parametrize(("host", "path", "mark", "app_port", "published"), UIS, ids=ids)
def test_the_apps_own_port_is_not_reachable_from_another_host(host, path, mark, app_port, published):
    # monitor01 is among the port's firewall clients (the probes without platform_web_tls): what keeps
    # it out is the app listening on 127.0.0.1 only, so the connection is refused, not dropped.
    probe = f"timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{app_port}' 2>/dev/null && echo open || echo closed"
    seen = data.remote("monitor01", probe)
    local = data.remote(host, f"ss -Hltn 'sport = :{app_port}' | awk '{{print $4}}'").split()
    print(f"{host}:{app_port} from monitor01: {seen}; listening on {local}")
    assert seen == "closed"
    assert local and all(addr.startswith("127.0.0.1:") for addr in local), local


@pytest.mark.parametrize(("host", "path", "mark", "app_port", "published"), UIS, ids=ids)
def test_tls_1_1_is_refused(host, path, mark, app_port, published):
    # SECLEVEL=0: the client offers TLS 1.1 at all (Debian's OpenSSL would not), so a refusal is the server's.
    out = data.remote(
        "monitor01",
        f"openssl s_client -connect {host}:443 -servername {host} -CAfile {CA} -tls1_1 "
        "-cipher 'DEFAULT:@SECLEVEL=0' </dev/null >/tmp/tls11.out 2>&1 && echo accepted || echo refused; "
        "grep -q 'alert protocol version' /tmp/tls11.out && echo alert || echo no-alert",
    )
    print(f"{host}: TLS 1.1 {out.splitlines()}")
    assert out.splitlines() == ["refused", "alert"]


@pytest.mark.parametrize(("host", "path", "mark", "app_port", "published"), UIS, ids=ids)
def test_the_controller_reaches_the_published_ui_verified_by_the_lab_ca(host, path, mark, app_port, published):
    """What bin/lab prints: https://localhost:<published>/, its certificate naming localhost."""
    url = f"https://localhost:{published}{path}"
    out = subprocess.run(
        ["curl", "-sS", "--cacert", str(LAB_CA), "-w", "\n%{http_code} %{ssl_verify_result}", url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    body, status = out.stdout.rsplit("\n", 1)
    print(f"{url}: {status}")
    assert status == "200 0" and mark in body
