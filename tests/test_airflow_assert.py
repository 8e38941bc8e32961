"""The airflow role refuses bad inputs in assert.yml, before it changes anything.

Runs playbooks/airflow.yml limited to the `airflow:assert` tag against throw-away local inventories.
"""

import pytest

from tests.conftest import ROOT, local_inventory, run_playbook

GOOD = {
    "airflow_db_host": "pg01",
    "airflow_db_password": "db-password",
    "airflow_admin_password": "admin-password",
    "airflow_api_secret_key": "a" * 32,
    "airflow_jwt_secret": "b" * 32,
    "airflow_fernet_key": "c" * 43 + "=",
    "airflow_connections": [{"conn_id": "clickhouse_default", "conn_type": "clickhouse", "host": "ch1", "port": 8123}],
}


def run_assert(tmp_path, **overrides):
    inv = local_inventory(tmp_path, {"airflow": {"af1": {}}}, **{**GOOD, **overrides})
    return run_playbook(
        ROOT / "playbooks" / "airflow.yml",
        "-i",
        inv,
        "--tags",
        "airflow:assert",
        ANSIBLE_FACT_CACHING="memory",
        ANSIBLE_GATHERING="explicit",
    )


def test_valid_inputs_pass(tmp_path):
    result = run_assert(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"airflow_db_password": ""}, "vault_postgresql_airflow_password"),
        ({"airflow_jwt_secret": "short"}, "at least"),
        ({"airflow_fernet_key": "not-a-key"}, "url-safe base64 32-byte key"),
        ({"airflow_db_host": ""}, "put a host in the postgres inventory group"),
        ({"airflow_connections": [{"conn_id": "bad id!", "conn_type": "postgres"}]}, "needs conn_id"),
    ],
)
def test_bad_inputs_fail_naming_the_fix(tmp_path, overrides, message):
    result = run_assert(tmp_path, **overrides)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert "changed=0" in result.stdout or "changed=" not in result.stdout
