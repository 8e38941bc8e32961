"""The superset role refuses missing secrets and hosts in assert.yml, before it changes anything.

Runs playbooks/superset.yml limited to the `superset:assert` tag against throw-away local inventories.
"""

import pytest

from tests.conftest import ROOT, local_inventory, run_playbook

GOOD = {
    "superset_secret_key": "k" * 48,
    "superset_admin_password": "admin-password",
    "superset_db_password": "db-password",
    "superset_clickhouse_password": "bi-password",
}


def run_assert(tmp_path, **group_vars):
    groups = {"superset": {"ss1": {}}, "postgres": {"pg1": {}}, "clickhouse": {"ch1": {}}}
    inv = local_inventory(tmp_path, groups, **group_vars)
    return run_playbook(
        ROOT / "playbooks" / "superset.yml",
        "-i",
        inv,
        "--tags",
        "superset:assert",
        ANSIBLE_FACT_CACHING="memory",
        ANSIBLE_GATHERING="explicit",
    )


def test_complete_inventory_passes(tmp_path):
    result = run_assert(tmp_path, **GOOD)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"superset_secret_key": ""},
            "superset_secret_key is empty: set it from the vault secret vault_superset_secret_key",
        ),
        ({"superset_secret_key": "short"}, "superset_secret_key must be at least 32 characters"),
        (
            {"superset_clickhouse_password": ""},
            "superset_clickhouse_password is empty: set it from the vault secret vault_clickhouse_bi_password",
        ),
        ({"superset_admin_password": ""}, "superset_admin_password is empty"),
        ({"superset_db_password": ""}, "superset_db_password is empty"),
        ({"superset_clickhouse_host": ""}, "superset_clickhouse_host ('') a clickhouse group or an explicit host"),
    ],
    ids=["no-secret-key", "short-secret-key", "no-bi-password", "no-admin-password", "no-db-password", "no-clickhouse"],
)
def test_bad_input_fails_naming_the_fix(tmp_path, override, message):
    result = run_assert(tmp_path, **{**GOOD, **override})
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    # nothing past the assertions ran
    assert "Install the packages the venv needs" not in result.stdout
    # no secret leaks into the output
    for secret in GOOD.values():
        assert secret not in result.stdout
