"""The clickhouse_migrations module over TLS, against a local TLS server on 127.0.0.1.

No ClickHouse server can run here. The server of these tests presents, like a platform host, a
certificate signed by a test CA that names the host (ch1.platform.test, ch1) and its address
(127.0.10.10), not localhost or 127.0.0.1; after the handshake it reads the driver's Hello and answers
with a ClickHouse Exception packet (code 516, authentication failed), which the driver reads as a
ServerException. So a run that gets that answer went through the handshake with the certificate
verified, spoke the native protocol over TLS and failed only at the login; one that fails with a
certificate error never reached the protocol.

Proven here: both of the module's connections (the main one, through the ansible-run module and its
options, and password_works) verify the certificate against ca_certs and the name server_hostname;
another CA and a wrong name are refused; the module keeps verifying when the driver's own context
verifies nothing (clickhouse-driver 0.2.5 of Debian bookworm, simulated). Not proven: a login, a
query or a migration over TLS against a real ClickHouse server (the molecule scenario of the
clickhouse role and a production run do that).
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from types import SimpleNamespace

import pytest
from ansible_collections.chplatform.platform.plugins.modules import clickhouse_migrations as mod
from clickhouse_driver.connection import Connection
from clickhouse_driver.errors import NetworkError, ServerException

from tests.services import render_init_db, tls_pair
from tests.test_schema_runner_module import run_module

NAME, SHORT, ADDRESS = "ch1.platform.test", "ch1", "127.0.10.10"
PW = "s3cr3t-pw"  # a test value, which the fake server refuses and the output must not show)


def clickhouse_string(text: str) -> bytes:
    data, size, out = text.encode(), len(text.encode()), b""
    while True:  # LEB128 length, as ClickHouse writes it
        byte, size = size & 0x7F, size >> 7
        out += bytes([byte | (0x80 if size else 0)])
        if not size:
            return out + data


# Server packet Exception (2): code, name, message, stack trace, has_nested.
AUTH_FAILED = (
    b"\x02"
    + struct.pack("<i", 516)
    + clickhouse_string("DB::Exception")
    + clickhouse_string("tls-test: authentication failed")
    + clickhouse_string("")
    + b"\x00"
)


class FakeTlsServer:
    """A TLS server on 127.0.0.1 presenting ``cert``; it answers each Hello with AUTH_FAILED and records,
    per connection, the bytes received after the handshake or the handshake's error."""

    def __init__(self, cert, key):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hellos: list[bytes] = []
        self.handshake_errors: list[str] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    self.hellos.append(tls.recv(4096))
                    tls.sendall(AUTH_FAILED)
            except (ssl.SSLError, OSError) as exc:
                self.handshake_errors.append(str(exc))
                conn.close()

    def close(self):
        self.sock.close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    ca, cert, key = tls_pair(base / "platform", ADDRESS, ca_name="platform CA", dns_names=(NAME, SHORT))
    other_ca, _, _ = tls_pair(base / "other", ADDRESS, ca_name="another CA", dns_names=(NAME, SHORT))
    server = FakeTlsServer(cert, key)
    yield SimpleNamespace(ca=str(ca), other_ca=str(other_ca), server=server)
    server.close()


def params(pki, **overrides) -> dict:
    p = dict(
        login_host="localhost", login_port=pki.server.port, login_user="admin", login_password=PW,
        connect_timeout=5, secure=True, ca_certs=pki.ca, server_hostname=NAME,
    )  # fmt: skip
    p.update(overrides)
    return p


def password_works(p):
    return mod.password_works(SimpleNamespace(params=p), "etl", PW)


def test_client_args_plain_and_secure(pki):
    plain = mod.client_args(params(pki, secure=False, login_port=9000), "admin", PW)
    assert plain == dict(host="localhost", port=9000, user="admin", password=PW, connect_timeout=5)
    secure = mod.client_args(params(pki), "admin", PW)
    assert secure["secure"] is True and secure["verify"] is True
    assert (secure["ca_certs"], secure["server_hostname"]) == (pki.ca, NAME)
    # Without server_hostname the certificate must name login_host itself.
    assert mod.client_args(params(pki, server_hostname=None), "admin", PW)["server_hostname"] == "localhost"


@pytest.mark.parametrize("name", [NAME, SHORT])
def test_right_ca_and_name_get_through_the_handshake(pki, name):
    before = len(pki.server.hellos)
    # password_works: the server's "authentication failed" is a wrong password, over a verified connection.
    assert password_works(params(pki, server_hostname=name)) is False
    assert len(pki.server.hellos) == before + 1
    assert b"ClickHouse python-driver" in pki.server.hellos[-1]  # the driver's Hello, received over TLS


def test_another_ca_is_refused(pki):
    with pytest.raises(NetworkError, match="certificate verify failed: unable to get local issuer certificate"):
        password_works(params(pki, ca_certs=pki.other_ca))


@pytest.mark.parametrize("name", ["localhost", "ch2.platform.test"])
def test_a_name_the_certificate_does_not_carry_is_refused(pki, name):
    # localhost: connecting to the loopback address without server_hostname fails, which is why the role sets it.
    with pytest.raises(NetworkError, match="certificate verify failed: Hostname mismatch"):
        password_works(params(pki, server_hostname=None if name == "localhost" else name))


def test_the_module_verifies_when_the_driver_would_not(pki, monkeypatch):
    """clickhouse-driver 0.2.5 (python3-clickhouse-driver of Debian bookworm) builds SSLContext(PROTOCOL_TLS)
    and assigns CERT_REQUIRED to its options: a context that checks neither the chain nor the name."""

    def permissive(self, ssl_options):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return context

    monkeypatch.setattr(Connection, "_create_ssl_context", permissive)
    # The driver alone, so patched, accepts the other CA: the test's simulation is effective...
    client = mod.Client(**mod.client_args(params(pki, ca_certs=pki.other_ca), "etl", PW))
    with pytest.raises(ServerException):
        client.execute("SELECT 1")
    client.disconnect()
    # ...and the module's client still refuses it.
    with pytest.raises(NetworkError, match="certificate verify failed"):
        password_works(params(pki, ca_certs=pki.other_ca))


def test_tls_context_is_strict():
    context = mod.tls_context(None)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def module_args(pki, d, **overrides) -> str:
    args = dict(
        path=d, login_port=pki.server.port, login_user="admin", login_password=PW, connect_timeout=5,
        secure="true", ca_certs=pki.ca, server_hostname=NAME,
    )  # fmt: skip
    args.update(overrides)
    return " ".join(f"{k}={v}" for k, v in args.items())


def test_the_module_speaks_tls_with_its_options(pki, tmp_path):
    d = render_init_db(tmp_path / "sql", "single")
    res = run_module(module_args(pki, d))
    assert res.get("failed") is True
    where = f"admin@localhost:{pki.server.port} (TLS, certificate verified for {NAME} against {pki.ca})"
    assert res["msg"] == f"cannot connect to ClickHouse at {where}: Code: 516.", res["msg"]
    assert PW not in str(res)


@pytest.mark.parametrize(
    ("override", "error"),
    [("ca_certs", "unable to get local issuer certificate"), ("server_hostname", "Hostname mismatch")],
)
def test_the_module_refuses_a_wrong_ca_or_name(pki, tmp_path, override, error):
    d = render_init_db(tmp_path / "sql", "single")
    wrong = {"ca_certs": pki.other_ca, "server_hostname": "ch2.platform.test"}[override]
    res = run_module(module_args(pki, d, **{override: wrong}))
    assert res.get("failed") is True
    assert res["msg"].startswith(f"cannot connect to ClickHouse at admin@localhost:{pki.server.port} (TLS"), res["msg"]
    assert f"certificate verify failed: {error}" in res["msg"], res["msg"]


def test_the_module_names_a_missing_ca_file(pki, tmp_path):
    d = render_init_db(tmp_path / "sql", "single")
    res = run_module(module_args(pki, d, ca_certs=tmp_path / "nowhere.crt"))
    assert res.get("failed") is True
    missing = tmp_path / "nowhere.crt"
    assert res["msg"].startswith(f"cannot use the CA certificate ca_certs={missing} for ClickHouse"), res["msg"]
    assert "No such file or directory" in res["msg"], res["msg"]
