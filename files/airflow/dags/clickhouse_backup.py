"""ClickHouse backups: a weekly full BACKUP and hourly incremental ones to Disk('backups', name).

Incrementals use base_backup = the newest successful backup (a chain back to the last full);
after a server restart (system.backups is in memory) the next run falls back to a full one.
Each backup is verified through system.backups (status BACKUP_CREATED, files > 0). The full
DAG also applies retention: it keeps the newest chplatform_backup_keep_full full backups and
the incrementals after the oldest kept one, deleting older ones from the backups bucket
(connection minio_s3). Restore: playbooks/restore.yml.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from airflow.exceptions import AirflowFailException
from airflow.sdk import Variable, dag, task
from chplatform_common.backups import backup_name, expired_backups, names_from_prefixes
from chplatform_common.checks import require
from chplatform_common.clickhouse import ch_client, ch_scalar
from chplatform_common.defaults import DAG_KWARGS
from chplatform_common.sql import backup_sql, backup_status_sql, last_backup_sql

log = logging.getLogger(__name__)
DATABASES = ["prod", "ext", "datamart"]
BUCKET_VARIABLE = "chplatform_backups_bucket"
PREFIX_VARIABLE = "chplatform_backups_prefix"
KEEP_VARIABLE = "chplatform_backup_keep_full"
POLL_SECONDS = 10


def run_backup(kind: str) -> dict[str, object]:
    client = ch_client()
    base = None
    if kind == "incr":
        base = ch_scalar(client, last_backup_sql()) or None
        if base is None:
            log.info("no earlier backup known to this server: taking a full backup instead")
            kind = "full"
    name = backup_name(kind, datetime.now(UTC))
    result = client.query(backup_sql(DATABASES, name, base=base)).result_rows
    backup_id = result[0][0]
    log.info("backup %s started (id %s, base %s)", name, backup_id, base)
    while True:
        rows = client.query(backup_status_sql(backup_id)).result_rows
        status, error, files, size = rows[0] if rows else ("UNKNOWN", "not in system.backups", 0, 0)
        if status == "BACKUP_CREATED":
            break
        if status != "CREATING_BACKUP":
            raise AirflowFailException(f"backup {name} ended in {status}: {error}")
        time.sleep(POLL_SECONDS)
    if int(files) == 0:
        raise AirflowFailException(f"backup {name} contains no files")
    log.info("backup %s created: %s files, %s bytes", name, files, size)
    return {"name": name, "base": base, "files": int(files), "bytes": int(size)}


def make_dag(dag_id: str, kind: str, schedule: str) -> None:
    @dag(dag_id=dag_id, schedule=schedule, doc_md=__doc__, **DAG_KWARGS)
    def backup_dag() -> None:
        @task
        def check_prerequisites() -> None:
            conns = ["clickhouse_default"] + (["minio_s3"] if kind == "full" else [])
            variables = [BUCKET_VARIABLE, PREFIX_VARIABLE, KEEP_VARIABLE] if kind == "full" else []
            require(connections=conns, variables=variables)

        @task(retries=1)
        def backup() -> dict[str, object]:
            return run_backup(kind)

        @task
        def apply_retention(done: dict[str, object]) -> list[str]:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            keep = int(Variable.get(KEEP_VARIABLE))
            bucket, prefix = Variable.get(BUCKET_VARIABLE), Variable.get(PREFIX_VARIABLE)
            hook = S3Hook(aws_conn_id="minio_s3")
            names = names_from_prefixes(hook.list_prefixes(bucket, prefix, "/") or [], prefix)
            if done["name"] not in names:
                raise AirflowFailException(f"backup {done['name']} is not in s3://{bucket}/{prefix}")
            expired = expired_backups(names, keep)
            for name in expired:
                keys = hook.list_keys(bucket, prefix=f"{prefix}{name}/")
                log.info("deleting backup %s (%d objects)", name, len(keys))
                if keys:
                    hook.delete_objects(bucket, keys)
            log.info("%d backups kept, %d deleted", len(names) - len(expired), len(expired))
            return expired

        done = backup()
        check_prerequisites() >> done
        if kind == "full":
            apply_retention(done)

    backup_dag()


make_dag("clickhouse_backup_full", "full", "0 1 * * 0")
make_dag("clickhouse_backup_incremental", "incr", "15 * * * *")
