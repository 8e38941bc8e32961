"""Checks of the common role from outside: resolution across hosts, trust of an extra CA,
verified artifacts from the controller's bundle, locale/timezone and the data convention."""

import json
import os
import time

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

PKI = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "pki")
BUNDLE = os.path.join(os.environ.get("CHPLATFORM_CACHE", "/var/cache/chplatform"), "bundle")
PEER = {"node01": "node02", "node02": "node01"}


def test_hosts_resolve_each_other(host):
    me = host.check_output("hostname")
    peer = PEER[me]
    address = host.check_output(f"getent hosts {peer}").split()[0]
    # The name resolves to the address the peer really has.
    peer_host = testinfra.get_host(f"docker://{peer}")
    assert address in peer_host.check_output("hostname -I").split()
    assert f"{address} {peer}" in host.file("/etc/hosts").content_string


def test_base_packages(host):
    for pkg in ("curl", "ca-certificates", "jq", "locales", "acl", "python3-apt"):
        assert host.package(pkg).is_installed, pkg


def test_locale_and_timezone(host):
    assert "en_US.utf8" in host.check_output("locale -a")
    assert host.file("/etc/default/locale").contains("LANG=en_US.UTF-8")
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Etc/UTC"
    assert host.check_output("date +%Z") == "UTC"


def test_data_root_and_limits(host):
    data = host.file("/data")
    assert data.is_directory and data.user == "root" and data.mode == 0o755
    assert host.file("/etc/security/limits.d/90-chplatform.conf").contains("nofile 1048576")
    assert host.file("/etc/sysctl.d/90-chplatform.conf").contains("vm.max_map_count = 262144")


@pytest.fixture(scope="module")
def https_on_node02():
    """An HTTPS server on node02 with a certificate signed by the test CA."""
    server = testinfra.get_host("docker://node02")
    server.run("mkdir -p /srv/tls && echo trusted-hello > /srv/tls/index.html")
    for name in ("server.crt", "server.key"):
        with open(os.path.join(PKI, name)) as f:
            server.run(f"cat > /srv/tls/{name} <<'PEM'\n{f.read()}PEM")
    script = (
        "import http.server, ssl, functools;"
        "h=functools.partial(http.server.SimpleHTTPRequestHandler, directory='/srv/tls');"
        "s=http.server.ThreadingHTTPServer(('', 8443), h);"
        "c=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('/srv/tls/server.crt','/srv/tls/server.key');"
        "s.socket=c.wrap_socket(s.socket, server_side=True); s.serve_forever()"
    )
    server.run(f'systemd-run --unit=tls-test --collect python3 -c "{script}"')
    for _ in range(20):
        if server.run("ss -ltn | grep -q ':8443 '").rc == 0:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the test HTTPS server on node02 did not start listening on 8443 within 10 s")
    yield
    server.run("systemctl stop tls-test")


def test_extra_ca_trusted_by_curl_and_python(host, https_on_node02):
    assert host.file("/usr/local/share/ca-certificates/chplatform/molecule-test-ca.crt").exists
    # Trusted through the system store: curl and Python (urllib) both verify node02's certificate.
    assert host.check_output("curl -fsS https://node02:8443/index.html") == "trusted-hello"
    out = host.check_output(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('https://node02:8443/index.html').read().decode())\""
    )
    assert out == "trusted-hello"
    # Negative control: without the system store the same request is refused.
    refused = host.run("curl -fsS --cacert /dev/null --capath /nonexistent https://node02:8443/index.html")
    assert refused.rc != 0


def test_pip_uses_the_system_store(host):
    assert host.file("/etc/pip.conf").contains("cert = /etc/ssl/certs/ca-certificates.crt")


def test_artifacts_fetched_and_verified(host):
    with open(os.path.join(BUNDLE, "manifest.json")) as f:
        manifest = json.load(f)
    kafka = host.file("/opt/" + os.path.basename(manifest["kafka"]["path"]))
    assert kafka.exists and kafka.sha256sum == manifest["kafka"]["sha256"]
    minio = host.file("/opt/minio")
    assert minio.exists and minio.mode == 0o755 and minio.sha256sum == manifest["minio"]["sha256"]
    assert not host.file("/opt/minio.partial").exists
    # The MinIO binary runs on the host.
    assert "minio" in host.check_output("/opt/minio --version").lower()
