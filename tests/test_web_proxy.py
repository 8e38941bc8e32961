"""The web_proxy role's nginx site, rendered on the controller for a couple of inputs: port 80 only
redirects, TLS 1.2/1.3 with the pki role's pair, the proxy to the app on loopback with the forwarded
headers, the timeouts; and, where nginx is installed here, the rendered site passes nginx -t."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, render_role_templates

ROLE = ROOT / "roles" / "web_proxy"
TEMPLATES = [
    {"src": "etc/nginx/sites-available/site.conf.j2", "dest": "site.conf"},
    {"src": "usr/local/sbin/chplatform-nginx-check-site.j2", "dest": "check-site"},
]


def render(tmp_path: Path, **extra) -> str:
    out, _ = render_role_templates(tmp_path, "web_proxy", TEMPLATES, "localhost,", "localhost", extra)
    return (out / "site.conf").read_text()


def server_blocks(site: str) -> list[str]:
    return [block for block in re.split(r"\n(?=server \{)", site) if block.startswith("server {")]


@pytest.fixture(scope="module")
def airflow_site(tmp_path_factory) -> str:
    return render(tmp_path_factory.mktemp("airflow"), web_proxy_name="airflow", web_proxy_upstream_port=8080)


def test_port_80_serves_nothing_but_a_permanent_redirect_to_https(airflow_site):
    http, https = server_blocks(airflow_site)
    assert "listen 80 default_server;" in http
    assert re.findall(r"^\s*((?:return|proxy_pass|root)\b.*)$", http, re.M) == ["return 301 https://$host$request_uri;"]
    assert "listen 443 ssl default_server;" in https and "return 301" not in https


def test_tls_1_2_and_1_3_only_with_the_pki_pair_and_hsts(airflow_site):
    https = server_blocks(airflow_site)[1]
    assert "    ssl_protocols TLSv1.2 TLSv1.3;" in https.splitlines()
    assert "ssl_certificate /etc/chplatform/tls/nginx/host.crt;" in https
    assert "ssl_certificate_key /etc/chplatform/tls/nginx/host.key;" in https
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in https
    assert "TLSv1.1" not in airflow_site and "TLSv1 " not in airflow_site


def test_the_app_on_loopback_gets_the_forwarded_headers_and_websockets(airflow_site):
    https = server_blocks(airflow_site)[1]
    assert "proxy_pass http://127.0.0.1:8080;" in https
    for header in (
        "Host $http_host",
        "X-Forwarded-Host $http_host",
        "X-Forwarded-Proto $scheme",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        'X-Forwarded-Port ""',
        "Upgrade $http_upgrade",
        "Connection $chplatform_airflow_connection",
    ):
        assert f"proxy_set_header {header};" in https, header
    assert "map $http_upgrade $chplatform_airflow_connection {" in airflow_site
    assert "proxy_read_timeout 300s;" in https and "client_max_body_size 100m;" in https
    assert "server_name localhost;" in https  # the inventory name (here the controller's)


def test_other_ports_and_superset_s_timeout(tmp_path):
    site = render(
        tmp_path,
        web_proxy_name="superset",
        web_proxy_upstream_port=8088,
        web_proxy_read_timeout=120,
        web_https_port=8443,
        web_http_port=8081,
        web_proxy_ipv6=True,
    )
    http, https = server_blocks(site)
    assert "listen 8081 default_server;" in http and "listen [::]:8081 default_server;" in http
    assert "return 301 https://$host:8443$request_uri;" in http
    assert "listen 8443 ssl default_server;" in https and "listen [::]:8443 ssl default_server;" in https
    assert "proxy_pass http://127.0.0.1:8088;" in https
    assert "proxy_read_timeout 120s;" in https and "proxy_send_timeout 120s;" in https
    assert "ssl_session_cache shared:chplatform_superset:10m;" in https


# Debian's nginx here (or one unpacked elsewhere: CHPLATFORM_NGINX=/path/to/nginx).
NGINX = os.environ.get("CHPLATFORM_NGINX") or shutil.which("nginx")


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed on this controller (or named by CHPLATFORM_NGINX)")
def test_nginx_accepts_the_rendered_site(airflow_site, tmp_path):
    """nginx -t on a minimal configuration that includes the site, with a throw-away key pair."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(tmp_path / "host.key"), "-out", str(tmp_path / "host.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    site = airflow_site.replace("/etc/chplatform/tls/nginx", str(tmp_path)).replace("/var/log/nginx", str(tmp_path))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n"
        # Temporary directories here, not Debian's /var/lib/nginx (an unpacked nginx has none).
        + "".join(
            f"  {kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  include {tmp_path}/site.conf;\n}}\n"
    )
    out = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
