"""Defaults shared by every DAG: retries with back-off, no catch-up, one run at a time.

Every DAG of the platform reads or writes ClickHouse (tag ``clickhouse``). Where no ClickHouse
server runs (the role sets CHPLATFORM_CLICKHOUSE_AVAILABLE=false in the Airflow environment: its
packages were not in the bundle), the DAGs are created paused and say why in their description,
instead of filling the UI with failed runs; the airflow role pauses those that already run, and
unpauses them in the run that finds a server.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

START = datetime(2026, 1, 1, tzinfo=UTC)
CLICKHOUSE_TAG = "clickhouse"
CLICKHOUSE_AVAILABLE = os.environ.get("CHPLATFORM_CLICKHOUSE_AVAILABLE", "true").strip().lower() != "false"
NO_CLICKHOUSE = (
    "Paused by the platform: no ClickHouse server runs in this deployment (its packages were not in "
    "the bundle). Supply them (CHPLATFORM_CLICKHOUSE_PACKAGES=/dir bin/bundle build) and re-run site.yml."
)

DEFAULT_ARGS = {
    "owner": "platform",
    "retries": 3,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=2),
}

DAG_KWARGS = {
    "start_date": START,
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "tags": ["chplatform", CLICKHOUSE_TAG],
}
if not CLICKHOUSE_AVAILABLE:
    DAG_KWARGS.update(is_paused_upon_creation=True, description=NO_CLICKHOUSE)
