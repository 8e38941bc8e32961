"""ClickHouse access through the clickhouse_default connection (HTTPS, clickhouse-connect)."""

from __future__ import annotations

import logging
from typing import Any

CLICKHOUSE_CONN_ID = "clickhouse_default"
log = logging.getLogger(__name__)


def ch_client(conn_id: str = CLICKHOUSE_CONN_ID) -> Any:
    """A clickhouse-connect client built from an Airflow connection."""
    import clickhouse_connect
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson or {}
    secure = str(extra.get("secure", False)).lower() == "true"
    return clickhouse_connect.get_client(
        host=conn.host,
        port=int(conn.port or (8443 if secure else 8123)),
        username=conn.login or "default",
        password=conn.password or "",
        database=conn.schema or "default",
        secure=secure,
        # HTTPS: the server's certificate verified against the platform's CA (platform_clickhouse_tls).
        verify=str(extra.get("verify", True)).lower() == "true",
        ca_cert=extra.get("ca_cert"),
    )


def ch_scalar(client: Any, sql: str) -> Any:
    """First column of the first row (None for no row)."""
    log.info("ClickHouse: %s", sql)
    rows = client.query(sql).result_rows
    return rows[0][0] if rows else None


def ch_command(client: Any, sql: str) -> Any:
    """Run a statement and return its summary."""
    log.info("ClickHouse: %s", sql)
    return client.command(sql)
