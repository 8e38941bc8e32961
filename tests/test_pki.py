"""The internal CA as code (role pki, playbooks/pki.yml), on this controller: a CA and a key and
certificate per inventory host, checked with openssl; a re-run changes nothing; a certificate near
its end is renewed; a CA brought along that is no CA, has expired, does not match its key or has a
key others may read is refused before anything is written, naming the fix."""

from __future__ import annotations

import datetime
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import local_inventory, run_concurrently, run_playbook

HOSTS = {"kafka": {"kafka01.example.internal": {"common_private_address": "127.0.10.11"}},
         "postgres": {"pg01.example.internal": {"common_private_address": "127.0.10.51"}}}  # fmt: skip
RECAP = re.compile(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", re.M)


def pki(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict[str, tuple[int, int]]]:
    inventory = local_inventory(tmp_path, HOSTS)
    run = run_playbook("playbooks/pki.yml", "-i", inventory, "-e", f"pki_dir={tmp_path / 'pki'}", *extra)
    return run, {h: (int(c), int(f)) for h, c, f in RECAP.findall(run.stdout)}


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def issued(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("pki")
    first, recap1 = pki(tmp)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    serials = {h: openssl("x509", "-noout", "-serial", "-in", str(tmp / "pki/hosts" / f"{h}.crt")) for h in recap1}
    second, recap2 = pki(tmp)
    renewed, recap3 = pki(tmp, "-e", "pki_renew_days=400")  # longer than the certificates' 397 days
    return {"dir": tmp / "pki", "recaps": (recap1, recap2, recap3), "serials": serials, "runs": (second, renewed)}


def test_every_host_gets_a_key_and_a_certificate_signed_by_the_ca(issued):
    pki_dir = issued["dir"]
    for host, address in (("kafka01.example.internal", "127.0.10.11"), ("pg01.example.internal", "127.0.10.51")):
        cert = pki_dir / "hosts" / f"{host}.crt"
        verified = openssl("verify", "-CAfile", str(pki_dir / "ca.crt"), str(cert)).strip()
        names = openssl("x509", "-noout", "-ext", "subjectAltName,extendedKeyUsage", "-in", str(cert))
        print(f"{verified}; {' '.join(names.split())}")
        assert verified.endswith(": OK")
        assert f"DNS:{host}" in names and f"DNS:{host.split('.')[0]}" in names and f"IP Address:{address}" in names
        assert "TLS Web Server Authentication" in names and "TLS Web Client Authentication" in names
        assert oct((pki_dir / "hosts" / f"{host}.key").stat().st_mode & 0o777) == "0o600"
    assert oct((pki_dir / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert oct(pki_dir.stat().st_mode & 0o777) == "0o700"
    ca = openssl("x509", "-noout", "-ext", "basicConstraints,keyUsage", "-in", str(pki_dir / "ca.crt"))
    assert "CA:TRUE" in ca and "Certificate Sign" in ca


def test_a_rerun_changes_nothing_and_a_certificate_near_its_end_is_renewed(issued):
    _, again, renewed = issued["recaps"]
    print(f"second run {again}; with a renewal window longer than the validity {renewed}")
    assert all(v == (0, 0) for v in again.values()), issued["runs"][0].stdout[-3000:]
    assert all(v == (1, 0) for v in renewed.values()), issued["runs"][1].stdout[-3000:]
    for host, serial in issued["serials"].items():
        assert openssl("x509", "-noout", "-serial", "-in", str(issued["dir"] / "hosts" / f"{host}.crt")) != serial


def write_ca(path: Path, *, ca: bool = True, days: int = 365, key_mode: int = 0o600, other_key: bool = False):
    """A CA certificate and key as an operator might bring them (or get them wrong)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "operator CA")])
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(days=10) if days > 0 else now - datetime.timedelta(days=40)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    (path / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    stored = ec.generate_private_key(ec.SECP256R1()) if other_key else key
    pem = stored.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (path / "ca.key").write_bytes(pem)
    (path / "ca.key").chmod(key_mode)
    return path / "ca.crt", path / "ca.key"


# name: (how the CA brought along is made, the fixes the refusal must name). The checks of the
# certificate report together, so one run shows all three; the key's mode is checked first.
CASES = {
    "brought_ca_signs": ({}, []),
    "loose_key_mode": ({"key_mode": 0o644}, ["has mode 0644: a CA key must be readable by its owner only — chmod 600"]),
    "no_ca_expired_other_key": (
        {"ca": False, "days": -5, "other_key": True},
        [
            "it is not a CA certificate (no basic constraint CA:TRUE)",
            "it expired on",
            "its public key is not the one of pki_ca_key",
        ],
    ),
}


@pytest.fixture(scope="module")
def brought(tmp_path_factory) -> dict:
    def case(name, kwargs):
        tmp = tmp_path_factory.mktemp(name)
        cert, key = write_ca(tmp / "operator", **kwargs)
        run, _ = pki(tmp, "-e", f"pki_ca_cert={cert}", "-e", f"pki_ca_key={key}")
        return run, tmp / "pki", cert

    return run_concurrently({n: (lambda n=n, kw=kw: case(n, kw)) for n, (kw, _) in CASES.items()})


@pytest.mark.parametrize("name", list(CASES))
def test_a_ca_brought_along_is_used_or_refused_before_anything_is_written(brought, name):
    run, pki_dir, cert = brought[name]
    fixes = CASES[name][1]
    out = " ".join((run.stdout + run.stderr).split())
    if not fixes:
        assert run.returncode == 0, out[-3000:]
        host = pki_dir / "hosts" / "pg01.example.internal.crt"
        assert openssl("verify", "-CAfile", str(cert), str(host)).strip().endswith(": OK")
        assert not (pki_dir / "ca.key").exists(), "the role made its own CA key next to the one brought along"
        return
    print(out[out.find("msg") :][:500])
    assert run.returncode != 0 and "nothing was changed" in out, out[-3000:]
    for fix in fixes:
        assert fix in out, fix
    assert not pki_dir.exists(), "something was written before the refusal"
