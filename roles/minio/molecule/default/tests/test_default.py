"""Checks of the minio role from outside: the service, its files, and a consumer (s3client) that
uses only the clickhouse/airflow users' keys over the S3 API (curl with AWS SigV4), over HTTPS with
the server verified against the platform's CA (minio_tls, the contract's default)."""

import datetime
import io
import json
import os
import tarfile
import time
import uuid

import docker
import pytest
import testinfra.utils.ansible_runner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.lab_secrets import lab_secret

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("minio")

BUNDLE = os.path.join(os.environ.get("CHPLATFORM_CACHE", "/var/cache/chplatform"), "bundle")
API = "https://minio01:9000"
CLIENT = "s3client"
# The platform CA's certificate (pki's install.yml on both hosts), what every client verifies MinIO against.
CA = "/etc/chplatform/tls/ca.crt"
CURL = f"curl --cacert {CA}"


@pytest.fixture(scope="module")
def client():
    """s3client, with one curl config file per identity (keys written by the Docker API, never on a command line)."""
    identities = {"clickhouse": "minio_clickhouse", "airflow": "minio_airflow", "root": "minio_root"}
    users = {"clickhouse": "clickhouse", "airflow": "airflow", "root": "minio-admin"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for ident, secret_file in identities.items():
            user = f'user = "{users[ident]}:{lab_secret(secret_file)}"\n'
            data = (f'aws-sigv4 = "aws:amz:us-east-1:s3"\n{user}cacert = "{CA}"\n').encode()
            info = tarfile.TarInfo(f"s3/{ident}.curl")
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    docker.from_env().containers.get(CLIENT).put_archive("/root", buf.getvalue())
    host = testinfra.get_host(f"docker://{CLIENT}")
    yield host
    host.run("rm -rf /root/s3")


def s3(client, ident: str, method: str, path: str, upload: str | None = None) -> tuple[int, str]:
    """One signed S3 request from s3client; returns the HTTP status and the body.
    curl 7.88 signs the query string as written: give every parameter a value and URL-encode it."""
    body = f"-T {upload}" if upload else f"-X {method}"
    out = client.run(f"curl -sS -K /root/s3/{ident}.curl {body} -o /tmp/s3-body -w '%{{http_code}}' '{API}{path}'")
    assert out.rc == 0, f"curl to {path} failed: {out.stderr}"
    return int(out.stdout), client.file("/tmp/s3-body").content_string


def put(client, ident: str, path: str, content: str) -> int:
    client.run(f"printf '%s' '{content}' > /tmp/s3-upload")
    return s3(client, ident, "PUT", path, upload="/tmp/s3-upload")[0]


# --- the service and its files -------------------------------------------------------------------


def test_binary_is_the_pinned_artifact(host):
    with open(os.path.join(BUNDLE, "manifest.json")) as f:
        minio = json.load(f)["minio"]
    link = host.file("/usr/local/bin/minio")
    assert link.is_symlink
    assert link.linked_to == f"/usr/local/lib/minio/minio-{minio['version']}"
    target = host.file(link.linked_to)
    assert target.sha256sum == minio["sha256"] and target.mode == 0o755 and target.user == "root"
    assert "minio version" in host.check_output("/usr/local/bin/minio --version").lower()


def test_service_runs_as_minio_user(host):
    service = host.service("minio")
    assert service.is_running and service.is_enabled
    pid = host.check_output("systemctl show -p MainPID --value minio")
    assert host.check_output(f"ps -o user= -p {pid}") == "minio-user"
    assert host.user("minio-user").shell == "/usr/sbin/nologin"
    data = host.file("/data/minio")
    assert data.is_directory and data.user == "minio-user" and data.mode == 0o750
    # The data really lives there (MinIO's own metadata).
    assert host.file("/data/minio/.minio.sys").is_directory


def test_env_file_is_root_only(host):
    env = host.file("/etc/default/minio")
    assert env.user == "root" and env.group == "root" and env.mode == 0o600
    assert env.contains('^MINIO_VOLUMES="/data/minio"$')
    assert env.contains("--address :9000 --console-address :9001")
    assert env.contains("^MINIO_ROOT_USER=")
    # Nobody else can read the root credentials.
    denied = host.run("runuser -u nobody -- cat /etc/default/minio")
    assert denied.rc != 0 and "Permission denied" in denied.stderr
    assert host.file("/etc/systemd/system/minio.service").contains("^EnvironmentFile=/etc/default/minio$")


def test_tls_files_are_the_hosts_pki_pair(host):
    certs = "/var/lib/minio-user/.minio/certs"
    links = {"public.crt": "/etc/chplatform/tls/minio/host.crt", "private.key": "/etc/chplatform/tls/minio/host.key",
             "CAs/platform-ca.crt": CA}  # fmt: skip
    for name, target in links.items():
        link = host.file(f"{certs}/{name}")
        assert link.is_symlink and link.linked_to == target, name
    key = host.file("/etc/chplatform/tls/minio/host.key")
    assert key.user == "minio-user" and key.mode == 0o600
    # The key is the certificate's, and the certificate chains to the platform's CA and names the host.
    check = host.run(f"openssl verify -CAfile {CA} -verify_hostname minio01 /etc/chplatform/tls/minio/host.crt")
    assert check.rc == 0, check.stdout + check.stderr
    env = host.file("/etc/default/minio")
    assert env.contains('^MINIO_SERVER_URL="https://minio01:9000"$')


def test_admin_venv(host):
    out = host.check_output("/opt/minio-admin-venv/bin/python -c 'import minio; print(minio.__version__)'")
    assert out == "7.2.20"


def test_ports_and_health_from_another_host(host, client):
    listening = [line.split()[3] for line in host.check_output("ss -ltnH").splitlines()]
    assert any(a.endswith(":9000") and not a.startswith("127.") for a in listening), listening
    assert any(a.endswith(":9001") and not a.startswith("127.") for a in listening), listening
    for probe in ("live", "ready"):
        code = client.check_output(f"{CURL} -s -o /dev/null -w '%{{http_code}}' {API}/minio/health/{probe}")
        assert code == "200", probe
    console = client.check_output(f"{CURL} -s -o /dev/null -w '%{{http_code}}' https://minio01:9001/")
    assert console == "200"


# --- TLS: HTTPS only, verified against the platform's CA -----------------------------------------


def test_plain_http_is_refused(client):
    for port in (9000, 9001):
        out = client.run(f"curl -s -o /tmp/plain-body -w '%{{http_code}}' http://minio01:{port}/minio/health/live")
        assert out.stdout != "200", f"port {port} answered plain HTTP: {out.stdout}"


def other_ca() -> bytes:
    """A CA's certificate that is not the platform's (same subject, another key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chplatform internal CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def test_a_client_trusting_another_ca_or_the_system_cas_is_refused(client):
    pem = other_ca()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("other-ca.crt")
        info.size = len(pem)
        tar.addfile(info, io.BytesIO(pem))
    # Not /tmp: a tmpfs is mounted there, which hides what docker cp writes.
    docker.from_env().containers.get(CLIENT).put_archive("/var/tmp", buf.getvalue())
    for trust in ("--cacert /var/tmp/other-ca.crt", ""):
        out = client.run(f"curl -sS -o /dev/null {trust} {API}/minio/health/live")
        # curl 60: the peer's certificate cannot be verified with the CAs given; 35 with "bad signature":
        # OpenSSL took the other CA (same subject) as the issuer and its key does not match.
        refused = out.rc == 60 or (out.rc == 35 and "bad signature" in out.stderr)
        assert refused, f"curl {trust or '(system CAs)'}: rc {out.rc} {out.stderr}"
    # The platform's CA, but a name the certificate does not carry: refused too (curl 60, or 51).
    address = client.check_output("getent ahostsv4 minio01 | awk 'NR==1 {print $1}'")
    out = client.run(
        f"{CURL} -sS -o /dev/null --resolve not-minio:9000:{address} https://not-minio:9000/minio/health/live"
    )
    assert out.rc in (51, 60), f"rc {out.rc} {out.stderr}"


# --- buckets -------------------------------------------------------------------------------------


def test_buckets_exist_with_versioning(client):
    status, body = s3(client, "root", "GET", "/")
    assert status == 200
    for name in ("clickhouse-backups", "clickhouse-cold", "datasets", "molecule-scratch"):
        assert f"<Name>{name}</Name>" in body
    status, body = s3(client, "root", "GET", "/clickhouse-backups?versioning=")
    assert status == 200 and "<Status>Enabled</Status>" in body
    status, body = s3(client, "root", "GET", "/clickhouse-cold?versioning=")
    assert status == 200 and "<Status>" not in body  # never versioned


# --- the consumer: only a service user's keys ----------------------------------------------------


def test_clickhouse_user_reads_and_writes_its_buckets(client):
    for bucket in ("clickhouse-backups", "clickhouse-cold"):
        key = f"verify/{uuid.uuid4().hex}.txt"
        assert put(client, "clickhouse", f"/{bucket}/{key}", "part-0001") == 200
        assert s3(client, "clickhouse", "GET", f"/{bucket}/{key}") == (200, "part-0001")
        status, listing = s3(client, "clickhouse", "GET", f"/{bucket}?list-type=2&prefix=verify%2F")
        assert status == 200 and f"<Key>{key}</Key>" in listing
        assert s3(client, "clickhouse", "DELETE", f"/{bucket}/{key}")[0] == 204


def test_clickhouse_user_only_reads_datasets(client):
    key = f"shared/{uuid.uuid4().hex}.csv"
    assert put(client, "airflow", f"/datasets/{key}", "a,b\n1,2") == 200
    assert s3(client, "clickhouse", "GET", f"/datasets/{key}") == (200, "a,b\n1,2")
    assert s3(client, "clickhouse", "GET", "/datasets?list-type=2")[0] == 200
    status, body = s3(client, "clickhouse", "PUT", f"/datasets/{key}", upload="/etc/hostname")
    assert status == 403 and "<Code>AccessDenied</Code>" in body
    status, body = s3(client, "clickhouse", "DELETE", f"/datasets/{key}")
    assert status == 403 and "<Code>AccessDenied</Code>" in body


def test_clickhouse_user_is_denied_elsewhere(client):
    status, body = s3(client, "clickhouse", "GET", "/molecule-scratch?list-type=2")
    assert status == 403 and "<Code>AccessDenied</Code>" in body
    assert put(client, "clickhouse", "/molecule-scratch/x.txt", "nope") == 403
    # No admin rights either.
    assert s3(client, "clickhouse", "GET", "/minio/admin/v3/list-users")[0] == 403


def test_airflow_user_reads_backups_but_does_not_write_them(client):
    """read_delete: Airflow reads the backups and deletes expired ones (the backup DAGs' retention),
    but cannot write or overwrite one."""
    key = f"verify/{uuid.uuid4().hex}.txt"
    assert put(client, "clickhouse", f"/clickhouse-backups/{key}", "backup") == 200
    assert s3(client, "airflow", "GET", f"/clickhouse-backups/{key}") == (200, "backup")
    assert put(client, "airflow", f"/clickhouse-backups/{key}", "overwrite") == 403
    assert put(client, "airflow", f"/clickhouse-backups/{key}.new", "new") == 403
    assert s3(client, "airflow", "GET", f"/clickhouse-backups/{key}") == (200, "backup")
    assert s3(client, "airflow", "DELETE", f"/clickhouse-backups/{key}")[0] == 204
    assert s3(client, "clickhouse", "GET", f"/clickhouse-backups/{key}")[0] == 404
    status, body = s3(client, "airflow", "GET", "/clickhouse-cold?list-type=2")
    assert status == 403 and "<Code>AccessDenied</Code>" in body


def test_wrong_secret_is_rejected(client):
    client.run('sed \'/^user/s/:[^:"]*"$/:wrong-secret-0000"/\' /root/s3/clickhouse.curl > /root/s3/bad.curl')
    status, body = s3(client, "bad", "GET", "/clickhouse-backups?list-type=2")
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in body


# --- durability ----------------------------------------------------------------------------------


def test_data_survives_a_restart(host, client):
    key = f"durable/{uuid.uuid4().hex}.txt"
    assert put(client, "clickhouse", f"/clickhouse-cold/{key}", "still-here") == 200
    before = host.check_output("systemctl show -p MainPID --value minio")
    host.run("systemctl restart minio")
    for _ in range(60):
        ready = client.run(f"{CURL} -s -o /dev/null -w '%{{http_code}}' {API}/minio/health/ready").stdout
        if ready == "200":
            break
        time.sleep(1)
    else:
        pytest.fail("MinIO was not ready 60 s after `systemctl restart minio`")
    assert host.check_output("systemctl show -p MainPID --value minio") != before
    assert s3(client, "clickhouse", "GET", f"/clickhouse-cold/{key}") == (200, "still-here")
