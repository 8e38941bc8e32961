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


def issue_twice_then_renew(tmp: Path) -> dict:
    first, recap1 = pki(tmp)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    serials = {h: openssl("x509", "-noout", "-serial", "-in", str(tmp / "pki/hosts" / f"{h}.crt")) for h in recap1}
    second, recap2 = pki(tmp)
    renewed, recap3 = pki(tmp, "-e", "pki_renew_days=400")  # longer than the certificates' 397 days
    return {"dir": tmp / "pki", "recaps": (recap1, recap2, recap3), "serials": serials, "runs": (second, renewed)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Every playbook run of this module, two at a time (the longest sequences first)."""

    def brought_ca(name, kwargs):
        tmp = tmp_path_factory.mktemp(name)
        cert, key = write_ca(tmp / "operator", **kwargs)
        run, _ = pki(tmp, "-e", f"pki_ca_cert={cert}", "-e", f"pki_ca_key={key}")
        return run, tmp / "pki", cert

    jobs = {
        "issued": lambda: issue_twice_then_renew(tmp_path_factory.mktemp("pki")),
        "rotation": lambda: damaged_then_rotated(tmp_path_factory.mktemp("rotation")),
        "ca_rotation": lambda: rotate_the_ca(tmp_path_factory.mktemp("ca_rotation")),
        "brought_hosts": lambda: brought_hosts(tmp_path_factory.mktemp("brought_hosts"), wrong=False),
        "brought_hosts_wrong": lambda: brought_hosts(tmp_path_factory.mktemp("brought_wrong"), wrong=True),
    }
    jobs.update({n: (lambda n=n, kw=kw: brought_ca(n, kw)) for n, (kw, _) in CASES.items()})
    return run_concurrently(jobs)


@pytest.fixture(scope="module")
def issued(runs) -> dict:
    return runs["issued"]


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
def brought(runs) -> dict:
    return {n: runs[n] for n in CASES}


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


def write_host(path: Path, ca: tuple[Path, Path], host: str, *, days: int = 365, key_mode: int = 0o600,
               other_key: bool = False, names: list[str] | None = None) -> dict[str, str]:  # fmt: skip
    """A host's key and certificate signed by the CA ``ca`` (its files), as an operator might bring them."""
    ca_cert = x509.load_pem_x509_certificate(ca[0].read_bytes())
    ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(days=10) if days > 0 else now - datetime.timedelta(days=40)
    sans = [x509.DNSName(n) for n in (names if names is not None else [host])]
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=days))
    )  # fmt: skip
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{host}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    stored = ec.generate_private_key(ec.SECP256R1()) if other_key else key
    pem = stored.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (path / f"{host}.key").write_bytes(pem)
    (path / f"{host}.key").chmod(key_mode)
    return {"pki_host_cert": str(path / f"{host}.crt"), "pki_host_key": str(path / f"{host}.key")}


KAFKA, PG = "kafka01.example.internal", "pg01.example.internal"


def brought_hosts(tmp: Path, wrong: bool) -> tuple[subprocess.CompletedProcess, Path]:
    """Both hosts bring their pairs: right ones, or wrong in every way the role must refuse."""
    ca = write_ca(tmp / "operator")
    other_ca = write_ca(tmp / "other")
    if wrong:
        pairs = {
            KAFKA: write_host(tmp / "hosts", ca, KAFKA, days=-5, other_key=True, names=["kafka.example.org"]),
            PG: write_host(tmp / "hosts", other_ca, PG, key_mode=0o640),
        }
    else:
        pairs = {h: write_host(tmp / "hosts", ca, h) for h in (KAFKA, PG)}
    hosts = {group: {h: {**v, **pairs[h]} for h, v in members.items()} for group, members in HOSTS.items()}
    inventory = local_inventory(tmp, hosts)
    extra = ["-e", f"pki_ca_cert={ca[0]}", "-e", f"pki_ca_key={ca[1]}"]
    run = run_playbook("playbooks/pki.yml", "-i", inventory, "-e", f"pki_dir={tmp / 'pki'}", *extra)
    return run, tmp / "pki"


def damaged_then_rotated(tmp: Path) -> dict:
    """Pairs the role made, then one key made readable and one certificate swapped: refused; then a
    rotation replaces every pair."""
    first, _ = pki(tmp)
    assert first.returncode == 0, first.stdout[-3000:]
    hosts = tmp / "pki" / "hosts"
    before = {h: ((hosts / f"{h}.key").read_bytes(), (hosts / f"{h}.crt").read_bytes()) for h in (KAFKA, PG)}
    (hosts / f"{KAFKA}.key").chmod(0o644)
    (hosts / f"{PG}.crt").write_bytes(before[KAFKA][1])
    refused, _ = pki(tmp)
    untouched = (
        all((hosts / f"{h}.key").read_bytes() == before[h][0] for h in (KAFKA, PG))
        and (hosts / f"{PG}.crt").read_bytes() == before[KAFKA][1]
    )
    rotated, recap = pki(tmp, "-e", "pki_rotate=true")
    return {"dir": tmp / "pki", "before": before, "refused": refused, "untouched": untouched,
            "rotated": rotated, "recap": recap}  # fmt: skip


@pytest.fixture(scope="module")
def host_pairs(runs) -> dict:
    return {
        "brought": runs["brought_hosts"],
        "brought_wrong": runs["brought_hosts_wrong"],
        "rotation": runs["rotation"],
    }


def test_hosts_pairs_brought_along_are_installed_as_they_are(host_pairs):
    run, pki_dir = host_pairs["brought"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    made = sorted(p.name for p in (pki_dir / "hosts").glob("*")) if (pki_dir / "hosts").exists() else []
    print(f"brought pairs accepted; the role made no pair of its own: {made}")
    assert made == []


def test_hosts_pairs_brought_along_that_are_wrong_are_refused_before_anything_is_written(host_pairs):
    run, pki_dir = host_pairs["brought_wrong"]
    out = " ".join((run.stdout + run.stderr).split())
    print(out[out.find("msg") :][:1500])
    assert run.returncode != 0 and "Nothing was changed" in out, out[-3000:]
    for fix in (
        f"{KAFKA}: pki_host_cert",
        "expired on",
        "is not the one of pki_host_key — give the key this certificate was made for",
        f"does not name DNS:{KAFKA}",
        f"{PG}: pki_host_key",
        "has mode 0640: a key must be readable by its owner only — chmod 600",
        "is not signed by pki_ca_cert",
    ):
        assert fix in out, fix
    assert not pki_dir.exists(), "something was written before the refusal"


def test_a_readable_or_swapped_pair_is_refused_naming_the_rotation_which_replaces_every_pair(host_pairs):
    r = host_pairs["rotation"]
    out = " ".join((r["refused"].stdout + r["refused"].stderr).split())
    print(out[out.find("msg") :][:1200])
    assert r["refused"].returncode != 0 and r["untouched"], out[-3000:]
    assert "has mode 0644: a key must be readable by its owner only" in out
    assert f"playbooks/rotate_certificates.yml --limit {KAFKA}" in out
    assert "is not the one of its key" in out and f"--limit {PG}" in out
    assert r["rotated"].returncode == 0, r["rotated"].stdout[-3000:]
    hosts = r["dir"] / "hosts"
    for host, (key, cert) in r["before"].items():
        assert (hosts / f"{host}.key").read_bytes() != key, f"{host}: the rotation kept the old key"
        assert (hosts / f"{host}.crt").read_bytes() != cert, f"{host}: the rotation kept the old certificate"
        assert oct((hosts / f"{host}.key").stat().st_mode & 0o777) == "0o600"
        new_key = serialization.load_pem_private_key((hosts / f"{host}.key").read_bytes(), None)
        new_cert = x509.load_pem_x509_certificate((hosts / f"{host}.crt").read_bytes())
        assert new_cert.public_key() == new_key.public_key(), f"{host}: the new certificate is not the new key's"
        verified = openssl("verify", "-CAfile", str(r["dir"] / "ca.crt"), str(hosts / f"{host}.crt"))
        assert verified.strip().endswith(": OK")
    print(f"rotation recap (changed, failed): {r['recap']}")


def rotate_the_ca(tmp: Path) -> dict:
    """The three steps of a CA rotation on the controller, with a step out of order refused between them."""
    pki_dir, hosts = tmp / "pki", tmp / "pki" / "hosts"

    def step(name: str = "") -> dict:
        run, recap = pki(tmp, *(["-e", f"pki_ca_rotation={name}"] if name else []))
        trust = (pki_dir / "trust.crt").read_text() if (pki_dir / "trust.crt").exists() else ""
        files = sorted(p.name for p in pki_dir.glob("ca*"))
        chains = {
            ca: {h: subprocess.run(["openssl", "verify", "-CAfile", str(pki_dir / ca), str(hosts / f"{h}.crt")],
                                   capture_output=True, check=False).returncode == 0 for h in (KAFKA, PG)}
            for ca in files if ca.endswith(".crt")
        }  # fmt: skip
        return {"run": run, "recap": recap, "trusted": trust.count("BEGIN CERTIFICATE"), "files": files,
                "chains": chains, "ca": (pki_dir / "ca.crt").read_bytes()}  # fmt: skip

    steps = {"issued": step()}
    steps["trust"] = step("trust")
    steps["drop_before_switch"] = step("drop")
    steps["switch"] = step("switch")
    steps["trust_before_drop"] = step("trust")
    steps["drop"] = step("drop")
    steps["again"] = step()
    return steps


def test_the_ca_is_rotated_in_three_steps_each_refused_out_of_order(runs):
    s = runs["ca_rotation"]
    for name, st in s.items():
        print(f"{name}: rc {st['run'].returncode}, files {st['files']}, trusted {st['trusted']}, recap {st['recap']}")
    assert s["issued"]["run"].returncode == 0 and s["issued"]["trusted"] == 1
    # trust: a next CA beside the CA; the hosts' certificates still the old CA's
    t = s["trust"]
    assert t["run"].returncode == 0 and t["trusted"] == 2 and "ca-next.crt" in t["files"], t["run"].stdout[-3000:]
    assert t["ca"] == s["issued"]["ca"] and all(t["chains"]["ca.crt"].values())
    # drop before switch: refused, nothing changed
    d = s["drop_before_switch"]
    out = " ".join(d["run"].stdout.split())
    assert d["run"].returncode != 0 and "run pki_ca_rotation=switch before drop" in out and "nothing was changed" in out
    assert d["files"] == t["files"] and d["trusted"] == 2
    # switch: the next CA is the CA, every host's certificate signed by it, the old one still trusted
    w = s["switch"]
    assert w["run"].returncode == 0 and w["ca"] != s["issued"]["ca"], w["run"].stdout[-3000:]
    assert "ca-previous.crt" in w["files"] and "ca-next.crt" not in w["files"] and w["trusted"] == 2
    assert all(w["chains"]["ca.crt"].values()) and not any(w["chains"]["ca-previous.crt"].values())
    assert all(changed >= 1 for changed, _ in w["recap"].values()), w["recap"]
    # a new rotation before the last one dropped its previous CA: refused
    tb = s["trust_before_drop"]
    assert tb["run"].returncode != 0 and "finish the last rotation first" in " ".join(tb["run"].stdout.split())
    # drop: the new CA only; a run after it changes nothing
    dr = s["drop"]
    assert dr["run"].returncode == 0 and dr["trusted"] == 1 and dr["files"] == ["ca.crt", "ca.key"]
    assert dr["ca"] == w["ca"] and all(dr["chains"]["ca.crt"].values())
    assert all(v == (0, 0) for v in s["again"]["recap"].values()), s["again"]["run"].stdout[-3000:]
