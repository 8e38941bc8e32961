"""The airflow role refuses bad inputs in assert.yml, before it changes anything.

Runs playbooks/airflow.yml limited to the `airflow:assert` tag against throw-away local inventories.
"""

import pytest

from tests.conftest import ROOT, assert_refused, local_inventory, run_concurrently, run_playbook

GOOD = {
    "airflow_db_host": "pg01",
    "airflow_db_password": "db-password",
    "airflow_admin_password": "admin-password",
    "airflow_api_secret_key": "a" * 32,
    "airflow_jwt_secret": "b" * 32,
    "airflow_fernet_key": "c" * 43 + "=",
    "airflow_connections": [{"conn_id": "clickhouse_default", "conn_type": "clickhouse", "host": "ch1", "port": 8123}],
    "airflow_statsd_exporter_url": "http://127.0.0.1:1/statsd_exporter",
    "airflow_statsd_exporter_sha256": "d" * 64,
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


CASES = [
    # (id, overrides, start of the problem line, part of its fix)
    (
        "no-statsd-exporter-binary",
        {"airflow_statsd_exporter_url": ""},
        "airflow_statsd_exporter_url on af1 is ''",
        "go install github.com/prometheus/statsd_exporter@v0.31.0 (bin/bundle builds one)",
    ),
    (
        "no-db-password",
        {"airflow_db_password": ""},
        "airflow_db_password on af1 is empty",
        "set vault_postgresql_airflow_password in group_vars/all/vault.yml",
    ),
    (
        "short-jwt-secret",
        {"airflow_jwt_secret": "short"},
        "airflow_jwt_secret on af1 is a secret of 5 characters",
        "set vault_airflow_jwt_secret (at least 16 characters)",
    ),
    (
        "quote-in-api-secret",
        {"airflow_api_secret_key": "a" * 20 + "'"},
        "airflow_api_secret_key on af1 is a secret of 21 characters",
        "it must not contain a single quote",
    ),
    (
        "bad-fernet-key",
        {"airflow_fernet_key": "not-a-key"},
        "airflow_fernet_key on af1 is a secret of 9 characters",
        "url-safe base64 32-byte key",
    ),
    (
        "no-db-host",
        {"airflow_db_host": ""},
        "airflow_db_host on af1 is ''",
        "put a host in the inventory group postgres, or set airflow_db_host",
    ),
    (
        "bad-conn-id",
        {"airflow_connections": [{"conn_id": "bad id!", "conn_type": "postgres"}]},
        "airflow_connections[bad id!].conn_id on af1 is 'bad id!'",
        "use letters, digits, _ . -",
    ),
    (
        "extra-conn-without-type",
        {"airflow_connections_extra": [{"conn_id": "api_quotes", "host": "api.example.invalid"}]},
        "airflow_connections[api_quotes].conn_type on af1 is unset",
        "set the connection type",
    ),
    (
        "conn-extra-not-a-mapping",
        {"airflow_connections_extra": [{"conn_id": "s3", "conn_type": "aws", "extra": "endpoint_url=x"}]},
        "airflow_connections[s3].extra on af1 is 'endpoint_url=x'",
        "write extra as a mapping",
    ),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> dict:
    """Every case's run, two at a time (tests/conftest.py run_concurrently)."""
    return run_concurrently({c[0]: (lambda c=c: run_assert(tmp_path_factory.mktemp(c[0]), **c[1])) for c in CASES})


@pytest.mark.parametrize(("case", "overrides", "line", "fix"), CASES, ids=[c[0] for c in CASES])
def test_bad_inputs_fail_naming_the_fix(refusals, case, overrides, line, fix):
    out = assert_refused(refusals[case], line, fix, count=1)
    assert "changed=0" in out or "changed=" not in out
    # Secrets are shown by their length only.
    for name, value in {**GOOD, **overrides}.items():
        if any(word in name for word in ("password", "secret", "key")) and value:
            assert value not in out, name
