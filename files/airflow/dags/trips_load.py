"""The NYC taxi trips sample from the MinIO datasets bucket into datamart.trips.

ClickHouse reads the file through the s3_datasets named collection; trips already present
(by trip_id) are skipped, so a re-run inserts nothing twice.
"""

from __future__ import annotations

import logging

from airflow.exceptions import AirflowFailException
from airflow.sdk import Variable, dag, task
from chplatform_common.checks import require
from chplatform_common.clickhouse import ch_client, ch_command, ch_scalar
from chplatform_common.defaults import DAG_KWARGS
from chplatform_common.sql import rows_sql, s3_source, trips_bad_rows_sql, trips_load_sql

log = logging.getLogger(__name__)
FILE_VARIABLE = "chplatform_trips_file"


@dag(dag_id="trips_load", schedule="@daily", doc_md=__doc__, **DAG_KWARGS)
def trips_load() -> None:
    @task
    def check_prerequisites() -> None:
        require(connections=["clickhouse_default"], variables=[FILE_VARIABLE])

    @task
    def validate() -> str:
        key = Variable.get(FILE_VARIABLE)
        fmt = "Parquet" if key.endswith(".parquet") else "CSVWithNames"
        source = s3_source(key, fmt)
        client = ch_client()
        rows = int(ch_scalar(client, rows_sql(source)))
        bad = int(ch_scalar(client, trips_bad_rows_sql(source)))
        log.info("%s: %d rows, %d invalid", key, rows, bad)
        if rows == 0 or bad:
            raise AirflowFailException(f"{key}: {rows} rows, {bad} invalid (drop-off before pick-up, negative total)")
        return source

    @task
    def load(source: str) -> int:
        client = ch_client()
        before = int(ch_scalar(client, "SELECT count() FROM datamart.trips"))
        ch_command(client, trips_load_sql(source))
        after = int(ch_scalar(client, "SELECT count() FROM datamart.trips"))
        log.info("datamart.trips: %d -> %d rows (+%d)", before, after, after - before)
        return after - before

    data = validate()
    check_prerequisites() >> data
    load(data)


trips_load()
