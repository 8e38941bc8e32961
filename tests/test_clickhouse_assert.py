"""Bad inventories and inputs are refused by the roles' assert tasks, before any change, one line
per problem naming the variable, the host or group, the value and the fix (the checks of
chplatform.platform.validate_inventory); good topologies pass (a one-node Keeper with a loud
warning). The fixtures' secrets are in tests/fixtures/clickhouse/group_vars/all.yml."""

from __future__ import annotations

import pytest

from tests.clickhouse_helpers import FIXTURES, ISOLATED
from tests.conftest import assert_refused, run_playbook


def check(inventory: str, *extra: str):
    return run_playbook(FIXTURES / "assert.yml", "-i", str(FIXTURES / inventory), *extra, timeout=600, **ISOLATED)


@pytest.mark.parametrize(
    ("inventory", "extra", "line", "fix", "count"),
    [
        (
            "bad_even_keepers.yml",
            [],
            "group clickhouse_keeper on the inventory is 4 hosts (replica01, replica02, keeper03, keeper04)",
            "the Keeper quorum needs an odd number of hosts",
            1,
        ),
        (
            "bad_no_keepers.yml",
            [],
            "group clickhouse_keeper on the inventory is missing",
            "ClickHouse needs a Keeper quorum",
            1,
        ),
        (
            "bad_duplicate_replica.yml",
            [],
            "clickhouse_replica on replica01, replica02 is 'replica01'",
            "these hosts of shard 1 share it — give each replica of a shard its own name",
            1,
        ),
        (
            "bad_empty_shard.yml",
            [],
            "shard 2 on group clickhouse is empty",
            "add a host with clickhouse_shard: 2",
            1,
        ),
        (
            "bad_duplicate_id.yml",
            [],
            "clickhouse_keeper_server_id on replica01, replica02 is 2",
            "give each Keeper node its own id",
            1,
        ),
        (
            "lab.yml",
            ["-e", "clickhouse_admin_password="],
            "clickhouse_admin_password on replica01 is empty",
            "set vault_clickhouse_admin_password in group_vars/all/vault.yml",
            2,
        ),
        (
            "lab.yml",
            ["-e", "clickhouse_install_source=yum"],
            "clickhouse_install_source on replica01 is 'yum'",
            "use one of apt, artifacts, preinstalled",
            2,
        ),
        (
            "lab.yml",
            ["-e", "clickhouse_install_source=artifacts"],
            "clickhouse_artifacts_url on replica01 is ''",
            "set clickhouse_artifacts_dir (.deb files on the controller) or clickhouse_artifacts_url",
            2,
        ),
        (
            "lab.yml",
            ["-e", "clickhouse_packages_available=maybe"],
            "clickhouse_packages_available on replica01 is 'maybe'",
            "use true or false",
            2,
        ),
        (
            "lab.yml",
            ["-e", "clickhouse_keeper_install_source=snap"],
            "clickhouse_keeper_install_source on keeper03 is 'snap'",
            "use one of apt, artifacts, preinstalled",
            1,
        ),
    ],
    ids=[
        "even-keepers",
        "no-keepers",
        "duplicate-replica",
        "empty-shard",
        "duplicate-keeper-id",
        "empty-secret",
        "unknown-install-source",
        "artifacts-without-source",
        "packages-available-not-boolean",
        "unknown-keeper-install-source",
    ],
)
def test_bad_input_fails_with_its_fix(inventory, extra, line, fix, count):
    # Every problem at once, one line each (per host where the value is per host).
    assert_refused(check(inventory, *extra), line, fix, count=count)


@pytest.mark.parametrize("inventory", ["lab.yml", "two_by_two.yml", "five_keepers.yml"])
def test_good_topologies_pass(inventory):
    proc = check(inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "WARNING: the Keeper quorum has ONE node" not in proc.stdout


def test_single_keeper_passes_with_a_warning():
    proc = check("single.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "WARNING: the Keeper quorum has ONE node (solo)" in " ".join(proc.stdout.split())
