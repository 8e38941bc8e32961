# ruff: noqa: S608, S311  (SQL built from test constants; seeded test data)
"""The single-node init_db rendering, end to end, in the real ClickHouse engine (chdb 26.9),
against real PostgreSQL 15, Kafka 4.3 and MinIO started on this machine (tests/services.py).

The migrations are applied by the module's own Runner (plugins/module_utils/clickhouse_migrations.py of the collection)
through a chdb executor. Two kinds of statement cannot run in chdb and are rewritten, by name:

- the Kafka engine table (chdb has no message-broker schedule pool): replaced by a Null-engine
  stand-in with the engine's virtual columns (tests.services.kafka_standin); the materialized
  views are the migration's own. Messages are produced to and consumed from the real broker
  with their real topic/partition/offset/timestamp and inserted into the stand-in, which is
  what the Kafka engine does with each consumed batch;
- RBAC statements (chdb has no writable access storage): passed through ClickHouse's parser
  (formatQuery) instead of executed. Their semantics are listed below as skipped tests.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ansible_collections.chplatform.platform.plugins.module_utils.clickhouse_migrations import (
    Runner,
    load_migrations,
    quote,
)
from chplatform_common import sql as dag_sql
from chplatform_common.backups import backup_name, expired_backups, names_from_prefixes

from tests import services
from tests.services import ChdbExecutor, chdb_connect, create_topic, is_rbac, kafka_standin, render_init_db

ROOT = Path(__file__).resolve().parent.parent

# The real services (session fixtures of tests/services.py; kafka_service and pg_service are shared
# through conftest.py).
minio_service = services.minio_service

NEEDS_SERVER = "needs a ClickHouse server (chdb has no writable access storage)"
TOPIC = "sensor_data"
N_MESSAGES = 400
MALFORMED_FRACTION = 0.1


def chdb_rewrite(sql: str) -> str:
    if is_rbac(sql):
        return "SELECT formatQuery(" + quote(sql) + ")"
    return kafka_standin(sql)


# The role's layout: the 'backups' disk is s3_plain at <bucket>/<cluster>/ (see roles/clickhouse).
BACKUPS_PREFIX = "main/"


def engine_config(work: Path, pg, minio) -> str:
    s3_auth = (
        f"<access_key_id>{minio.access_key}</access_key_id><secret_access_key>{minio.secret_key}</secret_access_key>"
    )
    pg_auth = f"<host>127.0.0.1</host><port>{pg.port}</port><user>{pg.user}</user><password>{pg.password}</password>"
    return f"""<clickhouse>
  <macros><shard>01</shard><replica>replica01</replica><cluster>main</cluster></macros>
  <named_collections>
    <pg_prod>{pg_auth}<database>prod</database><schema>public</schema></pg_prod>
    <pg_airflow>{pg_auth}<database>airflow</database><schema>public</schema></pg_airflow>
    <s3_datasets><url>{minio.endpoint}/datasets/</url>{s3_auth}</s3_datasets>
  </named_collections>
  <storage_configuration>
    <disks>
      <cold><type>s3</type><endpoint>{minio.endpoint}/clickhouse-cold/data/</endpoint>{s3_auth}
        <metadata_path>{work}/disks/cold/</metadata_path></cold>
      <backups><type>s3_plain</type><endpoint>{minio.endpoint}/clickhouse-backups/{BACKUPS_PREFIX}</endpoint>{s3_auth}
      </backups>
    </disks>
    <policies><tiered><volumes>
      <hot><disk>default</disk></hot>
      <cold><disk>cold</disk></cold>
    </volumes></tiered></policies>
  </storage_configuration>
  <backups><allowed_disk>backups</allowed_disk></backups>
</clickhouse>"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory, pg_service, kafka_service, minio_service):
    work = tmp_path_factory.mktemp("chdb-engine")
    sql_dir = render_init_db(work / "init_db", "single")
    conn = chdb_connect(work, engine_config(work, pg_service, minio_service))
    ex = ChdbExecutor(conn, rewrite=chdb_rewrite)
    applied = Runner(ex).apply(load_migrations(str(sql_dir)), "pytest")
    try:
        yield {"ex": ex, "dir": sql_dir, "applied": applied}
    finally:
        conn.close()


def test_all_migrations_apply_then_a_second_run_changes_nothing(engine):
    ex = engine["ex"]
    names = [m.name for m in load_migrations(str(engine["dir"]))]
    assert engine["applied"] == names
    databases = {r[0] for r in ex.execute("SELECT name FROM system.databases")}
    assert {"streams", "raw", "parsed", "dict", "airflow_metadata", "ext", "prod", "datamart", "dashboard"} <= databases
    comments = dict(ex.execute("SELECT name, comment FROM system.databases WHERE name IN ('raw', 'datamart')"))
    assert all(comments.values()), comments
    before = ex.execute("SELECT database, name, metadata_modification_time FROM system.tables ORDER BY 1, 2")
    assert Runner(ex).apply(load_migrations(str(engine["dir"])), "pytest") == []
    assert ex.execute("SELECT database, name, metadata_modification_time FROM system.tables ORDER BY 1, 2") == before
    assert ex.scalar("SELECT count() FROM default.schema_migrations") == len(names)


def produce(kafka, n: int, fraction: float, seed: int):
    from kafka import KafkaProducer

    from sensor_producer import send_messages

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=10)
    try:
        stats = send_messages(producer, TOPIC, n, rate=0, malformed_fraction=fraction, rng=random.Random(seed))
        producer.flush(30)
    finally:
        producer.close(5)
    return stats


def consume_into_queue(kafka, ex: ChdbExecutor, group: str, expect: int) -> list:
    """Read the topic from the beginning as consumer group ``group`` and insert each message into
    the Kafka table stand-in with its real Kafka coordinates (what the Kafka engine does)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        TOPIC, bootstrap_servers=kafka.bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=True
    )
    got, deadline = [], time.monotonic() + 60
    try:
        while len(got) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                got.extend(batch)
    finally:
        consumer.close()
    assert len(got) == expect, f"consumed {len(got)} of {expect} messages from {TOPIC}"
    rows = ",".join(
        f"({quote(m.value.decode('utf-8', 'replace'))}, {quote(m.topic)}, {m.offset}, {m.partition}, "
        f"fromUnixTimestamp64Milli(toInt64({m.timestamp})), '', '')"
        for m in got
    )
    ex.execute(
        "INSERT INTO streams.sensor_data_queue (message, _topic, _offset, _partition, _timestamp_ms, _error, "
        f"_raw_message) VALUES {rows}"
    )
    return got


def is_valid_reading(raw: bytes) -> bool:
    """Independent (Python) statement of what a valid message is."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return False
    num = (int, float)
    return (
        isinstance(doc, dict)
        and type(doc.get("sensor_id")) is int
        and all(isinstance(doc.get(k), num) and not isinstance(doc.get(k), bool) for k in ("temperature", "humidity"))
        and isinstance(doc.get("timestamp"), num)
        and doc["timestamp"] >= 1
    )


def test_kafka_messages_flow_to_raw_parsed_and_errors_without_duplicates(engine, kafka_service):
    ex = engine["ex"]
    create_topic(kafka_service, TOPIC)
    stats = produce(kafka_service, N_MESSAGES, MALFORMED_FRACTION, seed=20261127)
    k = stats.malformed
    assert stats.sent == N_MESSAGES and 0 < k < N_MESSAGES

    got = consume_into_queue(kafka_service, ex, "clickhouse_sensor_data", N_MESSAGES)
    valid = {(m.partition, m.offset) for m in got if is_valid_reading(m.value)}
    assert len(valid) == N_MESSAGES - k, "the producer's malformed count disagrees with the Python check"

    assert ex.scalar("SELECT count() FROM raw.sensor_data") == N_MESSAGES
    assert ex.scalar("SELECT count() FROM parsed.sensor_data") == N_MESSAGES - k
    assert ex.scalar("SELECT count() FROM parsed.sensor_data_errors") == k
    parsed = {tuple(r) for r in ex.execute("SELECT partition, offset FROM parsed.sensor_data")}
    assert parsed == valid
    reasons = dict(ex.execute("SELECT error, count() FROM parsed.sensor_data_errors GROUP BY error"))
    assert sum(reasons.values()) == k and "not valid JSON" in reasons, reasons
    assert ex.scalar(f"SELECT countIf(_topic != {quote(TOPIC)} OR _timestamp_ms IS NULL) FROM raw.sensor_data") == 0

    # Re-delivery: a second consumer group reads the same offsets again (as after an offset
    # reset or a consumer crash before commit). raw keeps every delivery; parsed does not
    # double after merges, and neither do the errors.
    consume_into_queue(kafka_service, ex, "clickhouse_sensor_data_replay", N_MESSAGES)
    assert ex.scalar("SELECT count() FROM raw.sensor_data") == 2 * N_MESSAGES
    assert ex.scalar("SELECT count() FROM parsed.sensor_data FINAL") == N_MESSAGES - k
    ex.execute("OPTIMIZE TABLE parsed.sensor_data FINAL")
    ex.execute("OPTIMIZE TABLE parsed.sensor_data_errors FINAL")
    assert ex.scalar("SELECT count() FROM parsed.sensor_data") == N_MESSAGES - k
    assert ex.scalar("SELECT count() FROM parsed.sensor_data_errors") == k
    # The dashboard charts run against the parsed data.
    for title, query in ex.execute("SELECT title, query FROM dashboard.dashboards FINAL ORDER BY title"):
        q = query.replace("{rounding:UInt32}", "60").replace("{seconds:UInt32}", "86400000")
        assert ex.execute(q), f"dashboard chart {title!r} returned nothing"


def test_dictionaries_return_live_postgresql_values(engine, pg_service):
    ex = engine["ex"]
    pg_service.psql(
        "prod",
        "INSERT INTO boroughs (borough_id, name) VALUES (99, 'Testborough') ON CONFLICT (borough_id) DO NOTHING;"
        "INSERT INTO zones (zone_id, borough_id, name, service_zone) VALUES (9999, 99, 'Test Zone', 'Boro Zone')"
        " ON CONFLICT (zone_id) DO UPDATE SET name = 'Test Zone';",
    )
    ex.execute("SYSTEM RELOAD DICTIONARY dict.zones")
    assert ex.scalar("SELECT dictGet('dict.zones', 'name', toUInt64(9999))") == "Test Zone"
    assert ex.scalar(
        "SELECT dictGet('dict.boroughs', 'name', toUInt64(dictGet('dict.zones', 'borough_id', 9999)))"
    ) == ("Testborough")
    pg_service.psql("prod", "UPDATE zones SET name = 'Renamed Zone' WHERE zone_id = 9999")
    ex.execute("SYSTEM RELOAD DICTIONARY dict.zones")
    assert ex.scalar("SELECT dictGet('dict.zones', 'name', toUInt64(9999))") == "Renamed Zone"
    # Every dictionary of the migration loads from PostgreSQL.
    for (name,) in ex.execute("SELECT name FROM system.dictionaries WHERE database = 'dict'"):
        ex.execute(f"SYSTEM RELOAD DICTIONARY dict.{name}")
    states = dict(ex.execute("SELECT name, status FROM system.dictionaries WHERE database = 'dict'"))
    assert len(states) >= 7 and set(states.values()) == {"LOADED"}, states


def test_airflow_metadata_tables_read_live_rows(engine, pg_service):
    ex = engine["ex"]
    before = ex.scalar("SELECT count() FROM airflow_metadata.dag_run")
    assert before == int(pg_service.psql("airflow", "SELECT count(*) FROM dag_run"))
    pg_service.psql(
        "airflow",
        "INSERT INTO dag_run (dag_id, run_id, state, run_type, run_after)"
        " VALUES ('clickhouse_backup', 'manual__live', 'running', 'manual', now())",
    )
    assert ex.scalar("SELECT count() FROM airflow_metadata.dag_run") == before + 1
    assert ex.scalar("SELECT state FROM airflow_metadata.dag_run WHERE run_id = 'manual__live'") == "running"
    for table in ("dag", "task_instance", "import_error"):
        ex.execute(f"SELECT * FROM airflow_metadata.{table} LIMIT 1")


def test_prod_tables_match_the_postgresql_prod_schema(engine, pg_service):
    """Column for column, in order: a DAG can copy with INSERT ... SELECT * FROM postgresql(...)."""
    ex = engine["ex"]
    tables = [r[0] for r in ex.execute("SELECT name FROM system.tables WHERE database = 'prod' AND name != 'dag_run'")]
    assert sorted(tables) == sorted(pg_service.prod_tables), "prod tables differ from PostgreSQL's prod schema"
    for t in tables:
        pg_cols = pg_service.psql(
            "prod",
            "SELECT column_name FROM information_schema.columns"
            f" WHERE table_schema = 'public' AND table_name = '{t}' ORDER BY ordinal_position",
        ).split()
        ch_cols = [
            r[0] for r in ex.execute(f"SELECT name FROM system.columns WHERE database = 'prod' AND table = '{t}'")
        ]
        assert ch_cols == pg_cols, f"prod.{t}: ClickHouse {ch_cols} != PostgreSQL {pg_cols}"
        ex.execute(f"INSERT INTO prod.{t} SELECT * FROM postgresql(pg_prod, table = '{t}')")
        assert ex.scalar(f"SELECT count() FROM prod.{t} FINAL") == int(
            pg_service.psql("prod", f"SELECT count(*) FROM {t}")
        )


TRIP_COLUMNS = [
    "trip_id", "pickup_datetime", "dropoff_datetime", "pickup_longitude", "pickup_latitude", "dropoff_longitude",
    "dropoff_latitude", "passenger_count", "trip_distance", "fare_amount", "extra", "tip_amount", "tolls_amount",
    "total_amount", "payment_type", "pickup_ntaname", "dropoff_ntaname",
]  # fmt: skip


def trips_csv(n_old: int, n_recent: int, first_id: int = 1) -> tuple[bytes, str, str]:
    rng = random.Random(5)
    now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    old_day, recent_day = now - timedelta(days=90), now - timedelta(hours=1)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(TRIP_COLUMNS)
    for i in range(n_old + n_recent):
        start = (old_day if i < n_old else recent_day) - timedelta(minutes=rng.randrange(0, 30))
        fare = round(rng.uniform(3, 60), 2)
        w.writerow([
            first_id + i, start, start + timedelta(minutes=rng.randrange(2, 50)), -73.98, 40.75, -73.95, 40.78,
            rng.randrange(1, 5), round(rng.uniform(0.3, 20), 2), fare, 0.5, 2.0, 0.0, fare + 2.5,
            rng.choice(["CSH", "CRE", "NOC", "DIS", "UNK"]), "Midtown-Midtown South", "Upper West Side",
        ])  # fmt: skip
    return buf.getvalue().encode(), old_day.strftime("%Y%m"), recent_day.strftime("%Y%m")


def test_trips_load_from_minio_tier_to_cold_and_back_up(engine, minio_service):
    ex = engine["ex"]
    data, old_part, recent_part = trips_csv(150, 50)
    minio_service.client().put_object("datasets", "trips/sample.csv", io.BytesIO(data), len(data))
    cols = ", ".join(TRIP_COLUMNS)
    ex.execute(
        f"INSERT INTO datamart.trips ({cols}) SELECT {cols} FROM "
        "s3(s3_datasets, filename = 'trips/sample.csv', format = 'CSVWithNames')"
    )
    assert ex.scalar("SELECT count() FROM datamart.trips") == 200
    assert (
        ex.scalar("SELECT storage_policy FROM system.tables WHERE database = 'datamart' AND name = 'trips'") == "tiered"
    )

    def disks() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for pid, disk in ex.execute(
            "SELECT partition_id, disk_name FROM system.parts"
            " WHERE database = 'datamart' AND table = 'trips' AND active"
        ):
            out.setdefault(pid, set()).add(disk)
        return out

    # TTL pickup_date + 30 days TO VOLUME 'cold' places the 90-day-old partition on the S3 disk at insert.
    assert disks()[old_part] == {"cold"}, disks()
    assert disks()[recent_part] == {"default"}, disks()
    ex.execute(f"ALTER TABLE datamart.trips MOVE PARTITION ID '{recent_part}' TO VOLUME 'cold'")
    assert disks()[recent_part] == {"cold"}, disks()
    cold_objects = list(minio_service.client().list_objects("clickhouse-cold", recursive=True))
    assert cold_objects, "the cold disk wrote nothing to the MinIO bucket clickhouse-cold"
    assert (
        ex.scalar("SELECT count() FROM datamart.trips WHERE payment_type IN ('CSH', 'CRE', 'NOC', 'DIS', 'UNK')") == 200
    )

    # BACKUP to the MinIO-backed backups disk, RESTORE under another name (never a DROP).
    name = f"pytest-{uuid.uuid4().hex[:8]}"
    status = ex.execute(f"BACKUP TABLE datamart.trips, TABLE parsed.sensor_data TO Disk('backups', '{name}')")
    assert status[0][1] == "BACKUP_CREATED", status
    # s3_plain: the backup is the directory <prefix><name>/, with its own metadata.
    keys = [o.object_name for o in minio_service.client().list_objects("clickhouse-backups", recursive=True)]
    assert f"{BACKUPS_PREFIX}{name}/.backup" in keys, keys[:20]
    ex.execute("CREATE DATABASE IF NOT EXISTS restore_check")
    status = ex.execute(
        f"RESTORE TABLE datamart.trips AS restore_check.trips, TABLE parsed.sensor_data AS restore_check.sensor_data "
        f"FROM Disk('backups', '{name}')"
    )
    assert status[0][1] == "RESTORED", status
    assert ex.scalar("SELECT count() FROM restore_check.trips") == ex.scalar("SELECT count() FROM datamart.trips")
    assert ex.scalar("SELECT count() FROM restore_check.sensor_data") == ex.scalar(
        "SELECT count() FROM parsed.sensor_data"
    )


def test_ext_tables_accept_their_loads(engine):
    ex = engine["ex"]
    for _ in range(2):  # the DAG may load the same quote twice
        ex.execute(
            "INSERT INTO ext.api_quotes (quote_id, quote, author, tags, source) VALUES (1, 'q', 'a', ['t'], 'api')"
        )
    ex.execute("OPTIMIZE TABLE ext.api_quotes FINAL")
    assert ex.scalar("SELECT count() FROM ext.api_quotes") == 1


# --------------------------------------------------------------------------- the DAGs' SQL on these services
# The statements the DAGs send (files/airflow/dags/chplatform_common/sql.py), run here against the
# real PostgreSQL and MinIO through the same named collections the servers get (pg_prod, s3_datasets).


def test_pg_to_ch_copies_incrementally_from_postgresql(engine, pg_service):
    """pg_to_ch's watermark → incremental copy → counts, twice, then a change made in PostgreSQL."""
    ex, sql, table = engine["ex"], dag_sql, "vendors"
    ex.execute(f"TRUNCATE TABLE prod.{table}")
    cols = [
        r[0]
        for r in ex.execute(
            f"SELECT name FROM system.columns WHERE database = 'prod' AND table = '{table}' ORDER BY position"
        )
    ]

    def run() -> tuple[int, int]:
        watermark = ex.scalar(sql.watermark_sql(table)) or "1970-01-01 00:00:00"
        ex.execute(sql.incremental_copy_sql(table, cols, watermark))
        return ex.scalar(sql.count_sql(table)), ex.scalar(sql.source_count_sql(table))

    copied, source = run()
    assert copied == source == int(pg_service.psql("prod", f"SELECT count(*) FROM {table}")) > 0
    assert run() == (source, source), "a second run for the same interval must not add rows"
    pg_service.psql(
        "prod",
        f"UPDATE {table} SET name = name || ' (renamed)', updated_at = now() "
        f"WHERE vendor_id = (SELECT min(vendor_id) FROM {table})",
    )
    assert run() == (source, source)
    assert ex.scalar(f"SELECT countIf(name LIKE '% (renamed)') FROM prod.{table} FINAL") == 1


def test_trips_load_reads_parquet_from_minio_once(engine, minio_service):
    """trips_load over a Parquet file written by pyarrow into the datasets bucket: checks, load, re-load."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    ex, sql = engine["ex"], dag_sql
    data, _, _ = trips_csv(60, 40, first_id=500_001)
    table = pa_csv.read_csv(io.BytesIO(data))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    minio_service.client().put_object("datasets", "trips/trips_sample.parquet", io.BytesIO(buf.getvalue()), buf.tell())
    source = sql.s3_source("trips/trips_sample.parquet", "Parquet")
    assert ex.scalar(sql.rows_sql(source)) == 100
    assert ex.scalar(sql.trips_bad_rows_sql(source)) == 0
    before = ex.scalar("SELECT count() FROM datamart.trips")
    for _ in range(2):
        ex.execute(sql.trips_load_sql(source))
    assert ex.scalar("SELECT count() FROM datamart.trips") == before + 100
    assert ex.scalar("SELECT count() FROM datamart.trips WHERE trip_id BETWEEN 500001 AND 500100") == 100


NETFLIX_CSV = "\n".join([
    "show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description",
    's1,Movie,Dick Johnson Is Dead,Kirsten Johnson,,United States,"September 25, 2021",2020,PG-13,90 min,Docs,A film.',
    's2,TV Show,Blood & Water,,"Ama Qamata, Khosi Ngema",South Africa,"September 24, 2021",2021,TV-MA,2 Seasons,'
    '"International TV Shows, TV Dramas",A series.',
    's3,TV Show,Ganglands,Julien Leclercq,Sami Bouajila,,"September 24, 2021",2021,TV-MA,1 Season,Crime TV,Another.',
]) + "\n"  # fmt: skip


def test_file_to_ext_loads_the_csv_from_minio(engine, minio_service):
    """file_to_ext over a CSV in the datasets bucket: bad-row check, load twice, deduplicate."""
    ex, sql = engine["ex"], dag_sql
    client = minio_service.client()
    data = NETFLIX_CSV.encode()
    client.put_object("datasets", "netflix_titles.csv", io.BytesIO(data), len(data))
    source = sql.s3_source("netflix_titles.csv", "CSVWithNames")
    assert ex.scalar(sql.bad_rows_sql(source)) == 0
    for _ in range(2):
        ex.execute(sql.netflix_load_sql(source))
    ex.execute(sql.optimize_final_sql("ext.netflix_titles"))
    assert ex.scalar("SELECT count() FROM ext.netflix_titles") == 3
    assert ex.execute("SELECT show_id, director IS NULL, toString(date_added) FROM ext.netflix_titles ORDER BY 1") == [
        ("s1", 0, "2021-09-25"),
        ("s2", 1, "2021-09-24"),
        ("s3", 0, "2021-09-24"),
    ]
    # A file with an impossible year is caught by the check the DAG runs before loading.
    bad = (NETFLIX_CSV.splitlines()[0] + "\ns9,Movie,Old,,,,,1800,,,Dramas,x\n").encode()
    client.put_object("datasets", "netflix_bad.csv", io.BytesIO(bad), len(bad))
    assert ex.scalar(sql.bad_rows_sql(sql.s3_source("netflix_bad.csv", "CSVWithNames"))) == 1


def test_clickhouse_backup_chain_retention_and_restore(engine, minio_service):
    """clickhouse_backup's statements and retention on the MinIO-backed 'backups' disk: a full backup,
    an incremental one on it (its base found the way the DAG finds it), the restore.yml statement,
    a second full backup, then retention (keep 1 full) deleting the first chain from the bucket the
    way the DAG does, and a restore from what is left."""
    ex, sql, client = engine["ex"], dag_sql, minio_service.client()
    databases = ["prod", "ext", "datamart"]
    insert = "INSERT INTO ext.api_quotes (quote_id, quote, author, tags, source) VALUES ({}, 'q', 'a', [], 'api')"
    day = datetime(2026, 3, 1, 1, 0)

    def backup(name: str, base: str | None = None) -> None:
        backup_id = ex.execute(sql.backup_sql(databases, name, base=base))[0][0]
        deadline = time.monotonic() + 120
        while True:
            status, error, files, _size = ex.execute(sql.backup_status_sql(backup_id))[0]
            if status != "CREATING_BACKUP" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert (status, error) == ("BACKUP_CREATED", ""), f"backup {name}: {status} {error}"
        assert int(files) > 0

    def listed() -> list[str]:
        objects = client.list_objects("clickhouse-backups", prefix=BACKUPS_PREFIX, recursive=False)
        return names_from_prefixes([o.object_name for o in objects], BACKUPS_PREFIX)

    def restore_and_compare(name: str) -> None:
        # RESTORE never overwrites data: as restore.yml says, rename (or drop) the database first.
        with pytest.raises(Exception, match="already contains some data"):
            ex.execute(sql.restore_sql(["ext"], name))
        ex.execute("DROP DATABASE IF EXISTS ext_before_restore SYNC")
        ex.execute("RENAME DATABASE ext TO ext_before_restore")
        assert ex.execute(sql.restore_sql(["ext"], name))[0][1] == "RESTORED"
        for (table,) in ex.execute("SELECT name FROM system.tables WHERE database = 'ext_before_restore'"):
            assert ex.scalar(f"SELECT count() FROM ext.{table}") == ex.scalar(
                f"SELECT count() FROM ext_before_restore.{table}"
            ), f"ext.{table} differs after restoring {name}"

    full1, incr1 = backup_name("full", day), backup_name("incr", day.replace(hour=2))
    ex.execute(insert.format(901))
    backup(full1)
    assert ex.scalar(sql.last_backup_sql(prefix="full_")) == full1
    ex.execute(insert.format(902))
    backup(incr1, base=ex.scalar(sql.last_backup_sql()))
    assert ex.scalar(sql.last_backup_sql()) == incr1
    restore_and_compare(incr1)  # the chain full1 → incr1
    assert ex.execute("SELECT quote_id FROM ext.api_quotes WHERE quote_id > 900 ORDER BY 1") == [(901,), (902,)]

    full2 = backup_name("full", day.replace(day=8))
    backup(full2)
    assert {full1, incr1, full2} <= set(listed())
    expired = expired_backups(listed(), keep_full=1)
    assert expired == [full1, incr1]
    for name in expired:  # what the DAG's retention task does with S3Hook.delete_objects
        for obj in client.list_objects("clickhouse-backups", prefix=f"{BACKUPS_PREFIX}{name}/", recursive=True):
            client.remove_object("clickhouse-backups", obj.object_name)
    assert full2 in listed() and not set(expired) & set(listed())
    restore_and_compare(full2)  # the kept backup does not need the deleted chain


def test_retention_keeps_chains_and_ignores_foreign_names():
    names = names_from_prefixes(
        ["main/full_20260101T0100/", "main/incr_20260101T0200/", "main/full_20260108T0100/",
         "main/incr_20260108T0200/", "main/full_20260115T0100/", "main/manual-copy/", "main/"],
        "main/",
    )  # fmt: skip
    assert "manual-copy" in names and "" not in names
    assert expired_backups(names, keep_full=2) == ["full_20260101T0100", "incr_20260101T0200"]
    assert expired_backups(names, keep_full=3) == []
    assert expired_backups(names, keep_full=0) == [], "keep_full < 1 must never delete everything"


# --------------------------------------------------------------------------- named, not faked


def test_kafka_engine_consumes_from_the_broker():
    pytest.skip(
        "needs a ClickHouse server: chdb has no message-broker schedule pool (background_message_broker_"
        "schedule_pool_size is 0 and not configurable; CREATE TABLE ... ENGINE = Kafka raises 'Shutdown was "
        "called'). The views behind it are tested above with messages consumed from the real broker."
    )


def test_rbac_bi_query_is_cancelled_after_5_seconds():
    pytest.skip(NEEDS_SERVER)


def test_rbac_errors_quota_trips_after_5_errors():
    pytest.skip(NEEDS_SERVER)


def test_rbac_analytic_cannot_write():
    pytest.skip(NEEDS_SERVER)
