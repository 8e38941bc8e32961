"""Bad inventories and inputs are refused by the roles' assert tasks, before any change, with a
message naming the fix; good topologies pass (a one-node Keeper with a loud warning)."""

from __future__ import annotations

import pytest

from tests.clickhouse_helpers import FIXTURES, ISOLATED
from tests.conftest import run_playbook


def check(inventory: str, *extra: str):
    return run_playbook(FIXTURES / "assert.yml", "-i", str(FIXTURES / inventory), *extra, timeout=600, **ISOLATED)


@pytest.mark.parametrize(
    ("inventory", "extra", "message"),
    [
        ("bad_even_keepers.yml", [], "has 4 host(s): it needs an odd number"),
        ("bad_duplicate_replica.yml", [], "shard 1: replica replica01 is used by more than one host"),
        ("bad_empty_shard.yml", [], "shard(s) 2 have no replica"),
        ("bad_duplicate_id.yml", [], "id(s) 2 are used twice"),
        ("lab.yml", ["-e", "clickhouse_admin_password="], "Secret(s) clickhouse_admin_password are empty"),
        ("lab.yml", ["-e", "clickhouse_install_source=yum"], "set it to one of apt, artifacts, preinstalled"),
        ("lab.yml", ["-e", "clickhouse_install_source=artifacts"], "also set clickhouse_artifacts_dir"),
        ("lab.yml", ["-e", "clickhouse_keeper_install_source=snap"], "clickhouse_keeper_install_source is 'snap'"),
    ],
)
def test_bad_input_fails_with_its_fix(inventory, extra, message):
    proc = check(inventory, *extra)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, out[-2000:]
    assert message in out, out[-3000:]


@pytest.mark.parametrize("inventory", ["lab.yml", "two_by_two.yml", "five_keepers.yml"])
def test_good_topologies_pass(inventory):
    proc = check(inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "WARNING: the Keeper quorum has ONE node" not in proc.stdout


def test_single_keeper_passes_with_a_warning():
    proc = check("single.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "WARNING: the Keeper quorum has ONE node (solo)" in " ".join(proc.stdout.split())
