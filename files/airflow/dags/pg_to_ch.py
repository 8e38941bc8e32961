"""Incremental copy of the PostgreSQL prod tables into ClickHouse prod (updated_at watermark).

ClickHouse reads PostgreSQL itself through its pg_prod named collection; Airflow decides what to
copy (rows with updated_at >= the highest one already loaded) and checks the result. Re-running
is safe: the prod.* tables are ReplacingMergeTree(updated_at), one version per key survives.
"""

from __future__ import annotations

import logging

from airflow.exceptions import AirflowFailException
from airflow.sdk import dag, task
from chplatform_common.checks import require
from chplatform_common.clickhouse import ch_client, ch_command, ch_scalar
from chplatform_common.defaults import DAG_KWARGS
from chplatform_common.sql import count_sql, incremental_copy_sql, source_count_sql, watermark_sql

log = logging.getLogger(__name__)

# Table -> columns copied (the ClickHouse prod.* schema, files/clickhouse/init_db/003_prod.sql.j2).
TABLES: dict[str, list[str]] = {
    "boroughs": ["borough_id", "name", "created_at", "updated_at"],
    "zones": ["zone_id", "borough_id", "name", "service_zone", "created_at", "updated_at"],
    "vendors": ["vendor_id", "name", "active", "created_at", "updated_at"],
    "payment_types": ["payment_type_id", "name", "created_at", "updated_at"],
    "rate_codes": ["rate_code_id", "name", "created_at", "updated_at"],
    "drivers": [
        "driver_id",
        "license_number",
        "first_name",
        "last_name",
        "home_zone_id",
        "vendor_id",
        "hired_on",
        "active",
        "created_at",
        "updated_at",
    ],
    "vehicles": [
        "vehicle_id",
        "medallion",
        "plate",
        "make",
        "model",
        "model_year",
        "fuel",
        "wheelchair_accessible",
        "vendor_id",
        "driver_id",
        "created_at",
        "updated_at",
    ],
}


@dag(dag_id="pg_to_ch", schedule="@hourly", doc_md=__doc__, **DAG_KWARGS)
def pg_to_ch() -> None:
    @task
    def check_prerequisites() -> None:
        require(connections=["clickhouse_default"])

    @task(max_active_tis_per_dagrun=2)
    def copy_table(table: str) -> dict[str, int]:
        client = ch_client()
        watermark = ch_scalar(client, watermark_sql(table)) or "1970-01-01 00:00:00"
        before = int(ch_scalar(client, count_sql(table)))
        ch_command(client, incremental_copy_sql(table, TABLES[table], watermark))
        after = int(ch_scalar(client, count_sql(table)))
        source = int(ch_scalar(client, source_count_sql(table)))
        log.info(
            "prod.%s: watermark %s, %d rows before, %d after, %d in PostgreSQL",
            table, watermark, before, after, source,
        )  # fmt: skip
        if after < source:
            raise AirflowFailException(
                f"prod.{table} has {after} rows after the copy but PostgreSQL has {source}: "
                "rows were missed (updated_at not maintained?)"
            )
        return {"before": before, "after": after, "source": source}

    check_prerequisites() >> copy_table.expand(table=sorted(TABLES))


pg_to_ch()
