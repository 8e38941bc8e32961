"""Foundation checks: inventories, secrets, versions, the lab and artifacts (site.yml's refusal of bad
inventories is tested in tests/test_validate.py)."""

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import BUNDLE_DIR, ROOT, run_playbook

PLATFORM_GROUPS = {"clickhouse", "clickhouse_keeper", "postgres", "kafka", "minio", "airflow", "superset", "monitoring"}
# Run on the controller itself, with the interpreter that runs the tests.
LOCAL = ("-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}")
LAB_HOSTS = {
    "replica01",
    "replica02",
    "keeper03",
    "pg01",
    "kafka01",
    "minio01",
    "airflow01",
    "superset01",
    "monitor01",
}


def inventory(path):
    out = subprocess.run(
        ["ansible-inventory", "-i", str(path), "--list", "--vault-password-file", "/bin/false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    # The production example has a vault file; listing the structure must not need its password.
    if out.returncode != 0:
        out = subprocess.run(
            ["ansible-inventory", "-i", str(path), "--list"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    return json.loads(out.stdout)


def group_hosts(inv, group):
    return set(inv.get(group, {}).get("hosts", []))


def test_lab_inventory_has_every_host_and_group():
    inv = inventory(ROOT / "inventories/lab/hosts.yml")
    assert set(inv["_meta"]["hostvars"]) == LAB_HOSTS
    for group in PLATFORM_GROUPS:
        assert group_hosts(inv, group), f"lab group {group} is empty"
    assert group_hosts(inv, "clickhouse_keeper") == {"replica01", "replica02", "keeper03"}
    ids = [inv["_meta"]["hostvars"][h]["clickhouse_keeper_server_id"] for h in group_hosts(inv, "clickhouse_keeper")]
    assert sorted(ids) == [1, 2, 3]


def test_production_example_has_the_same_groups():
    text = (ROOT / "inventories/production.example/hosts.yml").read_text()
    data = yaml.safe_load(text)
    assert set(data["all"]["children"]) == PLATFORM_GROUPS
    vault = (ROOT / "inventories/production.example/group_vars/all/vault.yml").read_text()
    assert vault.startswith("$ANSIBLE_VAULT;"), "the production secrets example must be vault-encrypted"


def test_every_secret_of_the_contract_is_in_the_lab_and_in_production(tmp_path):
    """The contract's platform_secrets, the vault_* names it maps to role inputs, the lab's generated
    secrets and production's vault file name the same secrets."""
    contract = yaml.safe_load((ROOT / "roles/platform/defaults/main.yml").read_text())
    wanted = set(contract["platform_secrets"])
    assert len(wanted) == len(contract["platform_secrets"]), "platform_secrets lists a name twice"
    # Every vault_* name the contract maps is listed in platform_secrets, and every listed one is used.
    mapped = set(
        re.findall(
            r"\bvault_[a-z0-9_]+", yaml.safe_dump({k: v for k, v in contract.items() if k != "platform_secrets"})
        )
    )
    assert mapped == wanted, f"mapped but not listed: {mapped - wanted}, listed but never mapped: {wanted - mapped}"
    lab = yaml.safe_load((ROOT / "inventories/lab/group_vars/all/secrets.yml").read_text())
    lab_names = {k for k in lab if k.startswith("vault_")}
    assert lab_names == wanted, f"lab-only: {lab_names - wanted}, missing from the lab: {wanted - lab_names}"
    pw = tmp_path / "pw"
    pw.write_text("example\n")
    plain = subprocess.run(
        [
            "ansible-vault",
            "view",
            "--vault-password-file",
            str(pw),
            "inventories/production.example/group_vars/all/vault.yml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    prod_names = {k for k in yaml.safe_load(plain) if k.startswith("vault_")}
    assert prod_names == wanted, (
        f"production-only: {prod_names - wanted}, missing from production: {wanted - prod_names}"
    )


def test_role_defaults_pin_the_bundle_versions():
    versions = yaml.safe_load((ROOT / "files/bundle/versions.yml").read_text())
    checked = 0
    # The release before Kafka's pinned one is bundled for upgrades; no role pins it.
    versions.pop("kafka_previous_version")
    for key, value in versions.items():
        role = key.split("_")[0]
        defaults = ROOT / "roles" / role / "defaults/main.yml"
        if not defaults.exists():
            continue
        role_defaults = yaml.safe_load(defaults.read_text()) or {}
        if key in role_defaults:
            assert str(role_defaults[key]) == str(value), f"{defaults}: {key} differs from files/bundle/versions.yml"
            checked += 1
    # The Kafka pom must assemble the pinned version.
    pom = (ROOT / "files/bundle/kafka/pom.xml").read_text()
    assert f"<kafka.version>{versions['kafka_version']}</kafka.version>" in pom
    # Every bundled version is pinned by its role too (a version missing there was not compared).
    assert checked == len(versions), "a version of files/bundle/versions.yml is missing from its role's defaults"


@pytest.fixture
def artifact(tmp_path):
    data = os.urandom(4096)
    src = tmp_path / "thing-1.0.tgz"
    src.write_bytes(data)
    return src, hashlib.sha256(data).hexdigest()


def _artifact_playbook(tmp_path, src, sha, dest):
    pb = tmp_path / "artifact.yml"
    pb.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Fetch one artifact",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Fetch",
                            "ansible.builtin.include_role": {"name": "common", "tasks_from": "artifact.yml"},
                            "vars": {
                                "common_artifact_url": f"file://{src}",
                                "common_artifact_sha256": sha,
                                "common_artifact_dest": str(dest),
                            },
                        }
                    ],
                }
            ]
        )
    )
    return pb


def test_artifact_with_right_checksum_is_installed_once(tmp_path, artifact):
    src, sha = artifact
    dest = tmp_path / "installed.tgz"
    pb = _artifact_playbook(tmp_path, src, sha, dest)
    first = run_playbook(pb, *LOCAL)
    assert first.returncode == 0, first.stdout + first.stderr
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha
    second = run_playbook(pb, *LOCAL)
    assert second.returncode == 0
    assert re.search(r"changed=0\b", second.stdout), second.stdout


def test_artifact_with_wrong_checksum_fails_naming_file_and_both_hashes(tmp_path, artifact):
    src, sha = artifact
    wrong = "0" * 64
    dest = tmp_path / "installed.tgz"
    res = run_playbook(_artifact_playbook(tmp_path, src, wrong, dest), *LOCAL)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "Checksum mismatch for installed.tgz" in out
    assert wrong in out and sha in out
    assert not dest.exists(), "a file that failed verification must not be installed"
    assert not (tmp_path / "installed.tgz.partial").exists()


def test_lab_without_docker_engine_names_the_missing_piece():
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock", CHPLATFORM_INSTALL="never")
    res = subprocess.run(
        [str(ROOT / "bin/lab"), "create"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode != 0
    assert "Docker engine is not reachable" in res.stderr
    assert "docker" in res.stderr.lower() and "group" in res.stderr


def test_bundle_manifest_matches_its_files():
    manifest_path = BUNDLE_DIR / "manifest.json"
    if not manifest_path.exists():
        pytest.skip(f"no artifact bundle at {BUNDLE_DIR}: run bin/bundle build")
    manifest = json.loads(manifest_path.read_text())
    for name in ("kafka", "minio"):
        entry = manifest[name]
        digest = hashlib.sha256((BUNDLE_DIR / entry["path"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], name
    versions = yaml.safe_load((ROOT / "files/bundle/versions.yml").read_text())
    assert manifest["kafka"]["version"] == versions["kafka_version"]
    assert manifest["minio"]["version"] == versions["minio_version"]
    if not manifest["clickhouse"]["available"]:
        assert "NOT in the bundle" in manifest["clickhouse"]["reason"]
