"""playbooks/restore.yml: bad input is refused before anything is sent, and the admin password
never shows up in its output, even when the restore fails (no ClickHouse server runs here:
over plain HTTP the RESTORE request is refused at the connection, which the test expects).

Over HTTPS (the default) the request goes to a local HTTPS server standing in for ClickHouse's
HTTP interface, with a certificate of a test CA for the host's inventory name (localhost here, the
only name that resolves to 127.0.0.1 on this machine): with that CA as platform_tls_ca_file the
RESTORE statement and the admin's basic auth arrive over verified TLS; with another CA, or a
certificate for another name, the playbook fails at the certificate before sending anything.
What ClickHouse does with the statement is not tested (no server here)."""

import base64
import http.server
import ssl
import threading
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT, local_inventory, run_playbook
from tests.services import tls_pair

PASSWORD = "restore-test-password-7f3a"  # noqa: S105  (a test value, looked for in the output)


def run_restore(tmp_path, *extra: str, host: str = "ch1", **host_vars):
    inv = local_inventory(tmp_path, {"clickhouse": {host: {}}}, clickhouse_admin_password=PASSWORD, **host_vars)
    return run_playbook(
        ROOT / "playbooks" / "restore.yml",
        "-i",
        inv,
        "-v",
        *extra,
        ANSIBLE_FACT_CACHING="memory",
        ANSIBLE_GATHERING="explicit",
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-e", '{"restore_backup_name": "full_1\'); DROP TABLE x; --"}'],
        ["-e", "restore_backup_name=full_1", "-e", '{"restore_databases": ["ext; DROP DATABASE prod"]}'],
        ["-e", "restore_backup_name=full_1", "-e", '{"restore_databases": []}'],
    ],
    ids=["no-name", "bad-name", "bad-database", "no-database"],
)
def test_bad_input_is_refused_before_the_restore(tmp_path, args):
    result = run_restore(tmp_path, *args)
    assert result.returncode != 0
    assert "Pass the backup to restore: -e restore_backup_name=<name>" in result.stdout
    assert "Restore the backup" not in result.stdout


def test_password_stays_out_of_the_output_over_plain_http(tmp_path):
    result = run_restore(
        tmp_path,
        "-e",
        "restore_backup_name=full_20261122T0100",
        clickhouse_plaintext_ports=True,
        clickhouse_http_port=1,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0  # nothing listens on port 1
    assert "TASK [Restore the backup]" in out
    assert "http://127.0.0.1:1/" in out, out[-2000:]
    assert PASSWORD not in out


class FakeClickHouseHttps:
    """ClickHouse's HTTP interface as far as restore.yml sees it, over TLS on 127.0.0.1: records each
    POST (Authorization header, body) and answers a TSVWithNames status."""

    def __init__(self, cert, key):
        requests = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                requests.append({"auth": self.headers["Authorization"], "body": body})
                reply = b"id\tstatus\nrestore-1\tRESTORED\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    """Servers by the name their certificate carries, each with its own CA: localhost (a DNS name, with
    the platform's kind of address SAN, 127.0.10.10), 127.0.0.1 (an IP SAN only) and ch9."""
    base, servers = tmp_path_factory.mktemp("tls"), {}
    for name, address, dns in [("localhost", "127.0.10.10", ("localhost",)), ("127.0.0.1", "127.0.0.1", ()),
                               ("ch9", "127.0.10.10", ("ch9",))]:  # fmt: skip
        ca, cert, key = tls_pair(base / name, address, ca_name=f"CA of {name}", dns_names=dns)
        servers[name] = SimpleNamespace(ca=str(ca), server=FakeClickHouseHttps(cert, key))
    yield servers
    for s in servers.values():
        s.server.close()


# The URL names the inventory host: each name reaches only the server whose certificate carries it.
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_restore_over_verified_https(tmp_path, https, host):
    server = https[host].server
    before = len(server.requests)
    result = run_restore(
        tmp_path, "-e", "restore_backup_name=full_20261122T0100", "-e", '{"restore_databases": ["ext"]}',
        host=host, clickhouse_https_port=server.port, platform_tls_ca_file=https[host].ca,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert f"https://{host}:{server.port}/" in out
    assert "RESTORED" in out, out[-2000:]  # the server's answer, shown by the last task
    assert PASSWORD not in out
    assert len(server.requests) == before + 1
    request = server.requests[-1]
    assert request["body"].split() == ["RESTORE", "DATABASE", "ext", "FROM", "Disk('backups',", "'full_20261122T0100')"]
    assert request["auth"] == "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


@pytest.mark.parametrize("case", ["another CA", "another name"])
def test_restore_refuses_an_unverified_server(tmp_path, https, case):
    # another CA: the certificate names localhost but is not of the CA given; another name: the
    # certificate is of the CA given but names ch9, not the host's inventory name (localhost).
    server = https["ch9" if case == "another name" else "localhost"].server
    ca = https["ch9"].ca
    before = len(server.requests)
    result = run_restore(
        tmp_path, "-e", "restore_backup_name=full_20261122T0100",
        host="localhost", clickhouse_https_port=server.port, platform_tls_ca_file=ca,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in out or "certificate verify failed" in out, out[-2000:]
    if case == "another name":
        assert "Hostname mismatch" in out or "doesn't match" in out, out[-2000:]
    assert len(server.requests) == before  # nothing was sent
    assert PASSWORD not in out


def test_check_mode_previews_the_restore_and_sends_nothing(tmp_path, https):
    """restore.yml --check --diff (the operator's preview): exits 0, names the statement it would
    send and where, sends nothing, and the change summary says the restore would change the host."""
    server = https["localhost"].server
    before = len(server.requests)
    result = run_restore(
        tmp_path, "-e", "restore_backup_name=full_20261122T0100", "--check", "--diff",
        host="localhost", clickhouse_https_port=server.port, platform_tls_ca_file=https["localhost"].ca,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert len(server.requests) == before, "the preview sent a request"
    flat = " ".join(out.split())
    assert "Check mode: nothing is sent." in flat, out[-3000:]
    assert "RESTORE DATABASE prod, DATABASE ext, DATABASE datamart FROM Disk('backups', 'full_20261122T0100')" in flat
    assert f"https://localhost:{server.port}/" in flat
    assert "localhost: 1 task would change" in out, out[-2000:]
    assert PASSWORD not in out
