"""ClickHouse's PostgreSQL connections over TLS, in ClickHouse's own engine (chdb) against a real
PostgreSQL 15 that takes TLS connections only (pg_service: hostssl, as the postgresql role's pg_hba).

ClickHouse 26.3 (the pinned server) has no TLS keys in its PostgreSQL named collections; its libpq
reads them from the environment, which the clickhouse role sets in the server's unit
(PGSSLMODE=verify-full, PGSSLROOTCERT=the platform's CA). Each case runs chdb in a fresh process
with that environment: the right CA connects, another CA and plain text are refused. That the unit
carries this environment is checked with the rendered roles (tests/test_clickhouse_render.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.services import tls_pair

QUERY = "SELECT count() FROM postgresql('127.0.0.1:{port}', 'prod', 'zones', '{user}', '{password}')"
SCRIPT = "import chdb, sys; print(chdb.query(sys.argv[1], 'CSV').bytes().decode().strip())"


def chdb_query(sql: str, **env: str) -> subprocess.CompletedProcess:
    """One chdb query in a child process (fresh connection pools) with the given libpq environment."""
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, sql],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def query(pg_service) -> str:
    return QUERY.format(port=pg_service.port, user=pg_service.user, password=pg_service.password)


def test_clickhouse_reads_postgresql_verifying_its_certificate(pg_service, query):
    run = chdb_query(query, PGSSLMODE="verify-full", PGSSLROOTCERT=pg_service.ca_file)
    assert run.returncode == 0, run.stderr[-2000:]
    expected = pg_service.psql("prod", "SELECT count(*) FROM zones").strip()
    print(f"chdb -> PostgreSQL (verify-full, the CA of the server): {run.stdout.strip()} zones")
    assert run.stdout.strip() == expected and int(expected) > 0


def test_a_server_certificate_from_another_ca_is_refused(pg_service, query, tmp_path):
    other_ca, _, _ = tls_pair(tmp_path, "127.0.0.1", ca_name="another CA")
    run = chdb_query(query, PGSSLMODE="verify-full", PGSSLROOTCERT=str(other_ca))
    print(f"chdb -> PostgreSQL trusting another CA: exit {run.returncode}")
    assert run.returncode != 0
    assert "certificate verify failed" in run.stderr, run.stderr[-2000:]


def test_plain_text_is_refused_by_the_server(pg_service, query):
    run = chdb_query(query, PGSSLMODE="disable")
    print(f"chdb -> PostgreSQL without TLS: exit {run.returncode}")
    assert run.returncode != 0
    assert "no pg_hba.conf entry" in run.stderr and "no encryption" in run.stderr, run.stderr[-2000:]
