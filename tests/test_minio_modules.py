"""The minio_bucket and minio_user modules against a real MinIO server (the bundle's binary, started
on 127.0.0.1 for this module), run through ansible-playbook: idempotence, check mode, truthful
`changed`, semantic policy comparison, secret verification, and no secret in the output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml
from ansible_collections.chplatform.platform.plugins.module_utils import minio_common as common

from tests.conftest import BUNDLE_DIR, run_playbook

ROOT_USER = "molecule-root"
ROOT_PASSWORD = "test-only-root-pw-0001"  # noqa: S105  throw-away server on 127.0.0.1
SECRET = "svc-secret-value-7777"  # noqa: S105  throw-away server on 127.0.0.1


# --- pure functions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("datasets", None),
        ("clickhouse-backups", None),
        ("a.b-c", None),
        ("ab", "3 to 63"),
        ("x" * 64, "3 to 63"),
        ("Datasets", "lowercase"),
        ("my_bucket", "no underscores"),
        ("-start", "begin and end"),
        ("a..b", "adjacent dots"),
        ("a.-b", "dot next to a hyphen"),
        ("192.168.1.10", "IP address"),
        ("xn--abc", "xn--"),
    ],
)
def test_bucket_name_rules(name, rule):
    problem = common.bucket_name_problem(name)
    if rule is None:
        assert problem is None
    else:
        assert problem is not None and rule in problem


def test_policies_compare_by_meaning():
    a = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": ["arn:aws:s3:::b/*", "arn:aws:s3:::a/*"],
            },
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": "arn:aws:s3:::a"},
        ],
    }
    b = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::a"],
                },
                {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::a/*", "arn:aws:s3:::b/*"]},
            ],
        }
    )
    assert common.policies_equal(a, b)
    c = json.loads(b)
    c["Statement"][1]["Action"].append("s3:PutObject")
    assert not common.policies_equal(a, c)
    d = json.loads(b)
    d["Statement"][0]["Effect"] = "Deny"
    assert not common.policies_equal(a, d)


# --- against a real server -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    manifest = BUNDLE_DIR / "manifest.json"
    if not manifest.exists():
        pytest.skip(f"no artifact bundle at {BUNDLE_DIR} (run bin/bundle build)")
    binary = BUNDLE_DIR / json.loads(manifest.read_text())["minio"]["path"]
    if not binary.exists():
        pytest.skip(f"the bundle has no MinIO binary at {binary}")
    work = tmp_path_factory.mktemp("minio")
    port, console = _free_port(), _free_port()
    log = work / "minio.log"
    env = dict(os.environ, MINIO_ROOT_USER=ROOT_USER, MINIO_ROOT_PASSWORD=ROOT_PASSWORD, HOME=str(work))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "server", "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}",
             str(work / "data")],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    import urllib.error
    import urllib.request

    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/minio/health/ready", timeout=2) as r:  # noqa: S310  the test's own MinIO on 127.0.0.1
                if r.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"MinIO did not become ready on {endpoint} within 60 s; see {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)
    yield {"endpoint": endpoint, "work": work}
    proc.terminate()
    proc.wait(timeout=30)


def play(server, tasks: list[dict], *args: str) -> tuple[list[dict], str]:
    """Run tasks on localhost with the controller's interpreter (it has the minio package);
    returns each task's result (a failed task ends the play and is the last one) and the whole output."""
    conn = {"endpoint": server["endpoint"], "login_access_key": ROOT_USER, "login_secret_key": ROOT_PASSWORD}
    for task in tasks:
        module = next(k for k in task if k.startswith("minio_"))
        # The modules live in the project's collection and are called by FQCN, as the roles call them.
        task[f"chplatform.platform.{module}"] = {**conn, **task.pop(module)}
    book = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": tasks,
        }
    ]
    path = server["work"] / f"play-{time.monotonic_ns()}.yml"
    path.write_text(yaml.safe_dump(book))
    proc = run_playbook(
        path, "-i", "localhost,", "-c", "local", *args, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", timeout=180
    )
    try:
        # The JSON document comes first; a callback enabled in ansible.cfg may print a recap after it.
        data, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        pytest.fail(
            f"ansible-playbook output is not JSON (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr}"
        )
    results = [t["hosts"]["localhost"] for t in data["plays"][0]["tasks"]]
    return results, proc.stdout + proc.stderr


def admin(server):
    from minio import MinioAdmin
    from minio.credentials import StaticProvider

    return MinioAdmin(
        endpoint=server["endpoint"].removeprefix("http://"),
        credentials=StaticProvider(ROOT_USER, ROOT_PASSWORD),
        secure=False,
    )


def s3_as(server, user: str, secret: str):
    from minio import Minio

    return Minio(server["endpoint"].removeprefix("http://"), access_key=user, secret_key=secret, secure=False)


def test_bucket_lifecycle(server):
    results, _ = play(
        server,
        [
            {"minio_bucket": {"name": "mod-backups", "versioning": True}},
            {"minio_bucket": {"name": "mod-backups", "versioning": True}},
            {"minio_bucket": {"name": "mod-backups"}},
            {"minio_bucket": {"name": "mod-backups", "versioning": False}},
            {"minio_bucket": {"name": "mod-backups", "versioning": False}},
            {"minio_bucket": {"name": "mod-plain", "versioning": False}},
        ],
    )
    assert [r["changed"] for r in results] == [True, False, False, True, False, True]
    assert results[0]["versioning"] == "Enabled" and results[3]["versioning"] == "Suspended"
    # A never-versioned bucket counts as "versioning off": no change, no suspension.
    assert results[5]["versioning"] == "Off"
    assert s3_as(server, ROOT_USER, ROOT_PASSWORD).get_bucket_versioning("mod-backups").status == "Suspended"


def test_bucket_check_mode_changes_nothing(server):
    results, out = play(server, [{"minio_bucket": {"name": "mod-check-only", "versioning": True}}], "--check", "--diff")
    assert results[0]["changed"] is True
    assert "versioning: Enabled" in out or '"versioning": "Enabled"' in out
    assert not s3_as(server, ROOT_USER, ROOT_PASSWORD).bucket_exists("mod-check-only")


def test_bucket_absent_refuses_to_lose_data(server):
    client = s3_as(server, ROOT_USER, ROOT_PASSWORD)
    results, _ = play(server, [{"minio_bucket": {"name": "mod-full"}}])
    import io

    client.put_object("mod-full", "keep.txt", io.BytesIO(b"keep"), 4)
    results, _ = play(server, [{"minio_bucket": {"name": "mod-full", "state": "absent"}}])
    assert results[0]["failed"] and "is not empty" in results[0]["msg"]
    assert client.bucket_exists("mod-full")
    client.remove_object("mod-full", "keep.txt")
    results, _ = play(
        server,
        [
            {"minio_bucket": {"name": "mod-full", "state": "absent"}},
            {"minio_bucket": {"name": "mod-full", "state": "absent"}},
        ],
    )
    assert [r["changed"] for r in results] == [True, False]
    assert not client.bucket_exists("mod-full")


def test_bad_bucket_name_fails_naming_the_rule(server):
    results, _ = play(server, [{"minio_bucket": {"name": "Bad_Name"}}])
    assert results[0]["failed"] and "Bad_Name" in results[0]["msg"] and "lowercase" in results[0]["msg"]


POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": ["arn:aws:s3:::mod-backups"],
        },
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["arn:aws:s3:::mod-backups/*"]},
    ],
}
# The same meaning, written differently.
POLICY_REORDERED = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": "arn:aws:s3:::mod-backups/*"},
        {
            "Sid": "",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
            "Resource": "arn:aws:s3:::mod-backups",
        },
    ],
}


def user_task(**kw):
    return {"minio_user": {"name": "svc-ch", "secret_key": SECRET, "policy": POLICY, **kw}}


def test_user_lifecycle(server):
    play(server, [{"minio_bucket": {"name": "mod-backups"}}])
    # Check mode on a missing user: a change is predicted, nothing is created.
    results, _ = play(server, [user_task()], "--check")
    assert results[0]["changed"] and results[0]["created"]
    assert "svc-ch" not in json.loads(admin(server).user_list())

    results, out = play(server, [user_task(), user_task(), user_task(policy=POLICY_REORDERED)], "--diff")
    assert [r["changed"] for r in results] == [True, False, False]
    assert results[0]["created"] and results[0]["policies"] == ["svc-ch-policy"]
    assert SECRET not in out, "the secret key appeared in ansible's output"
    # The user can use what the policy grants, and nothing else.
    client = s3_as(server, "svc-ch", SECRET)
    assert client.bucket_exists("mod-backups")
    from minio.error import S3Error

    with pytest.raises(S3Error, match="AccessDenied"):
        client.make_bucket("mod-not-granted")


def test_changed_secret_is_detected_and_restored(server):
    play(server, [{"minio_bucket": {"name": "mod-backups"}}, user_task()])
    admin(server).user_add("svc-ch", "changed-out-of-band-1")
    results, _ = play(server, [user_task()], "--check")
    assert results[0]["changed"] and results[0]["secret_updated"]
    results, out = play(server, [user_task(), user_task()])
    assert [r["changed"] for r in results] == [True, False]
    assert results[0]["secret_updated"] and not results[1]["secret_updated"]
    assert SECRET not in out
    assert s3_as(server, "svc-ch", SECRET).bucket_exists("mod-backups")


def test_policy_change_and_extra_policies(server):
    play(server, [{"minio_bucket": {"name": "mod-backups"}}, user_task()])
    wider = json.loads(json.dumps(POLICY))
    wider["Statement"][1]["Action"].append("s3:DeleteObject")
    results, _ = play(server, [user_task(policy=wider), user_task(policy=wider, policies=["readonly"])], "--diff")
    assert [r["changed"] for r in results] == [True, True]
    assert results[0]["policy_updated"] and not results[1]["policy_updated"]
    assert results[1]["policies"] == ["readonly", "svc-ch-policy"]
    info = json.loads(admin(server).user_info("svc-ch"))
    assert sorted(info["policyName"].split(",")) == ["readonly", "svc-ch-policy"]
    results, _ = play(server, [user_task(policy=wider)])
    assert results[0]["changed"] and results[0]["policies"] == ["svc-ch-policy"]


def test_disable_and_remove_user(server):
    play(server, [{"minio_bucket": {"name": "mod-backups"}}, user_task()])
    results, _ = play(server, [user_task(enabled=False), user_task(enabled=False), user_task()])
    assert [r["changed"] for r in results] == [True, False, True]
    results, _ = play(
        server,
        [
            {"minio_user": {"name": "svc-ch", "state": "absent"}},
            {"minio_user": {"name": "svc-ch", "state": "absent"}},
        ],
    )
    assert [r["changed"] for r in results] == [True, False]
    assert "svc-ch" not in json.loads(admin(server).user_list())
    assert "svc-ch-policy" not in json.loads(admin(server).policy_list())


def test_unreachable_server_fails_clearly(server):
    results, _ = play(
        server,
        [{"minio_bucket": {"name": "mod-x", "endpoint": "http://127.0.0.1:1"}}],
    )
    assert results[0]["failed"] and "Cannot reach MinIO at http://127.0.0.1:1" in results[0]["msg"]


def _self_signed(directory):
    """A key and a self-signed certificate for 127.0.0.1 / localhost, as MinIO wants them in its certs dir."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True)
    (directory / "public.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "private.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return directory / "public.crt"


def test_modules_over_tls(tmp_path_factory):
    """With public.crt/private.key in its certs dir MinIO serves HTTPS; the modules verify its
    certificate against a given CA file and refuse it otherwise. The two files are symlinks to a
    pair kept elsewhere, as the role links the pki role's pair (platform_tls_dir/minio/host.*)."""
    manifest = BUNDLE_DIR / "manifest.json"
    if not manifest.exists():
        pytest.skip(f"no artifact bundle at {BUNDLE_DIR} (run bin/bundle build)")
    binary = BUNDLE_DIR / json.loads(manifest.read_text())["minio"]["path"]
    work = tmp_path_factory.mktemp("minio-tls")
    ca = _self_signed(work / "pki")
    (work / "certs").mkdir()
    for name in ("public.crt", "private.key"):
        (work / "certs" / name).symlink_to(work / "pki" / name)
    port, console = _free_port(), _free_port()
    env = dict(os.environ, MINIO_ROOT_USER=ROOT_USER, MINIO_ROOT_PASSWORD=ROOT_PASSWORD, HOME=str(work))
    log = work / "minio.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "server", "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}",
             "--certs-dir", str(work / "certs"), str(work / "data")],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        endpoint = f"https://127.0.0.1:{port}"
        server = {"endpoint": endpoint, "work": work}
        deadline = time.monotonic() + 60
        while subprocess.run(
            ["curl", "-fsS", "--cacert", str(ca), f"{endpoint}/minio/health/ready"], capture_output=True, check=False
        ).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"MinIO with TLS did not become ready on {endpoint}; see {log}:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        results, _ = play(server, [{"minio_bucket": {"name": "tls-bucket", "ca_file": str(ca)}}])
        assert results[0]["changed"] is True
        results, _ = play(server, [{"minio_bucket": {"name": "tls-bucket"}}])
        assert results[0]["failed"] and "Cannot reach MinIO" in results[0]["msg"]
        assert "CERTIFICATE_VERIFY_FAILED" in results[0]["msg"] or "certificate" in results[0]["msg"].lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
