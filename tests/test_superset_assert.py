"""The superset role refuses missing secrets and hosts in assert.yml, before it changes anything.

Runs playbooks/superset.yml limited to the `superset:assert` tag against throw-away local inventories.
"""

import pytest

from tests.conftest import ROOT, assert_refused, local_inventory, run_concurrently, run_playbook

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


CASES = [
    # (id, override, start of the problem line, part of its fix)
    (
        "no-secret-key",
        {"superset_secret_key": ""},
        "superset_secret_key on ss1 is empty",
        "set vault_superset_secret_key in group_vars/all/vault.yml",
    ),
    (
        "short-secret-key",
        {"superset_secret_key": "short"},
        "superset_secret_key on ss1 is a secret of 5 characters",
        "use at least 32 characters (it signs sessions and encrypts passwords)",
    ),
    (
        "no-bi-password",
        {"superset_clickhouse_password": ""},
        "superset_clickhouse_password on ss1 is empty",
        "set vault_clickhouse_bi_password in group_vars/all/vault.yml",
    ),
    (
        "no-admin-password",
        {"superset_admin_password": ""},
        "superset_admin_password on ss1 is empty",
        "set vault_superset_admin_password",
    ),
    (
        "no-db-password",
        {"superset_db_password": ""},
        "superset_db_password on ss1 is empty",
        "set vault_postgresql_superset_password",
    ),
    (
        "no-clickhouse",
        {"superset_clickhouse_host": ""},
        "superset_clickhouse_host on ss1 is ''",
        "put a host in the inventory group clickhouse, or set superset_clickhouse_host",
    ),
    (
        "no-db-host",
        {"superset_db_host": ""},
        "superset_db_host on ss1 is ''",
        "put a host in the inventory group postgres, or set superset_db_host",
    ),
    ("no-workers", {"superset_workers": 0}, "superset_workers on ss1 is 0", "use a positive whole number"),
    (
        "no-assets-bundle",
        {"superset_assets_src": "/nonexistent/assets"},
        "superset_assets_src on ss1 is '/nonexistent/assets'",
        "an export bundle directory with metadata.yaml",
    ),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> dict:
    """Every case's run, two at a time (tests/conftest.py run_concurrently)."""
    return run_concurrently(
        {c[0]: (lambda c=c: run_assert(tmp_path_factory.mktemp(c[0]), **{**GOOD, **c[1]})) for c in CASES}
    )


@pytest.mark.parametrize(("case", "line", "fix"), [(c[0], *c[2:]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_naming_the_fix(refusals, case, line, fix):
    out = assert_refused(refusals[case], line, fix, count=1)
    # nothing past the checks ran
    assert "Install the packages the venv needs" not in out
    # no secret leaks into the output
    for secret in GOOD.values():
        assert secret not in out
