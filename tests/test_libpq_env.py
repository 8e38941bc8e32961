"""The libpq environment filter (chplatform.platform.libpq_env) behind the airflow and superset roles'
dump and restore: every value a string, each TLS parameter as its PG* variable. The airflow role's
rendering of it is used for real against PostgreSQL with verify-full TLS in
tests/test_airflow_upgrade_restore.py."""

from __future__ import annotations

from ansible_collections.chplatform.platform.plugins.filter.postgresql import libpq_env

PASSWORD = "not-a-secret"  # noqa: S105  a value the filter copies, used nowhere


def test_the_connection_and_the_tls_parameters_become_libpq_variables() -> None:
    env = libpq_env(
        {"sslmode": "verify-full", "sslrootcert": "/etc/chplatform/tls/ca.crt"},
        host="pg01", port=5432, dbname="superset", user="superset", password=PASSWORD,
    )  # fmt: skip
    assert env == {
        "PGHOST": "pg01",
        "PGPORT": "5432",
        "PGDATABASE": "superset",
        "PGUSER": "superset",
        "PGPASSWORD": PASSWORD,
        "PGCONNECT_TIMEOUT": "10",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/etc/chplatform/tls/ca.crt",
    }


def test_without_tls_parameters_only_the_connection() -> None:
    env = libpq_env({}, host="127.0.0.1", port="5433", dbname="d", user="u", password=PASSWORD, connect_timeout=3)
    assert env["PGPORT"] == "5433" and env["PGCONNECT_TIMEOUT"] == "3"
    assert not [k for k in env if k.startswith("PGSSL")]
    assert libpq_env(None, host="h", port=1, dbname="d", user="u", password=PASSWORD)["PGHOST"] == "h"
