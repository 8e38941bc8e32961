"""A file dataset (the Netflix titles CSV) from the MinIO datasets bucket into ext.netflix_titles.

Airflow checks the object exists (connection minio_s3), ClickHouse reads it through its
s3_datasets named collection. Reloading replaces rows (ReplacingMergeTree by show_id).
"""

from __future__ import annotations

import logging

from airflow.exceptions import AirflowFailException
from airflow.sdk import Variable, dag, task
from chplatform_common.checks import require
from chplatform_common.clickhouse import ch_client, ch_command, ch_scalar
from chplatform_common.defaults import DAG_KWARGS
from chplatform_common.sql import bad_rows_sql, netflix_load_sql, optimize_final_sql, s3_source

log = logging.getLogger(__name__)
BUCKET_VARIABLE = "chplatform_datasets_bucket"
FILE_VARIABLE = "chplatform_netflix_titles_file"


@dag(dag_id="file_to_ext", schedule="@daily", doc_md=__doc__, **DAG_KWARGS)
def file_to_ext() -> None:
    @task
    def check_prerequisites() -> None:
        require(connections=["clickhouse_default", "minio_s3"], variables=[BUCKET_VARIABLE, FILE_VARIABLE])

    @task
    def check_object() -> str:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket, key = Variable.get(BUCKET_VARIABLE), Variable.get(FILE_VARIABLE)
        if not S3Hook(aws_conn_id="minio_s3").check_for_key(key, bucket_name=bucket):
            raise AirflowFailException(f"s3://{bucket}/{key} does not exist")
        return key

    @task
    def load(key: str) -> int:
        fmt = "Parquet" if key.endswith(".parquet") else "CSVWithNames"
        source = s3_source(key, fmt)
        client = ch_client()
        bad = int(ch_scalar(client, bad_rows_sql(source)))
        if bad:
            raise AirflowFailException(f"{key}: {bad} rows without show_id or with an impossible release_year")
        before = int(ch_scalar(client, "SELECT count() FROM ext.netflix_titles FINAL"))
        ch_command(client, netflix_load_sql(source))
        ch_command(client, optimize_final_sql("ext.netflix_titles"))
        after = int(ch_scalar(client, "SELECT count() FROM ext.netflix_titles FINAL"))
        log.info("%s: ext.netflix_titles %d -> %d rows", key, before, after)
        if after == 0:
            raise AirflowFailException(f"{key} loaded no rows")
        return after

    data = check_object()
    check_prerequisites() >> data
    load(data)


file_to_ext()
