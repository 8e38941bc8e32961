"""The DAGs' SQL (files/airflow/dags/chplatform_common/sql.py) run in an embedded ClickHouse (chdb)
against the platform's real schema (files/clickhouse/init_db, single-node rendering).

Here the sources are local tables and files; the same statements against the real PostgreSQL and
MinIO (through the pg_prod / s3_datasets named collections, and BACKUP/RESTORE on the MinIO-backed
'backups' disk) run in tests/test_init_db_engine.py.
"""

# ruff: noqa: E501, S608, S701  (SQL text and CSV data of tests; templates render SQL, not HTML)
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jinja2
import pytest

from tests.conftest import ROOT

chdb = pytest.importorskip("chdb")
from chdb import session as chdb_session  # noqa: E402  only once importorskip has found chdb

DAGS = ROOT / "files/airflow/dags"
sys.dont_write_bytecode = True
from chplatform_common import sql  # noqa: E402  after sys.dont_write_bytecode: no __pycache__ among the DAGs
from chplatform_common.quotes import parse_quotes  # noqa: E402  after sys.dont_write_bytecode, as above

INIT_DB = ROOT / "files/clickhouse/init_db"
SCHEMA_FILES = ["001_databases.sql.j2", "003_prod.sql.j2", "006_ext.sql.j2", "007_datamart_trips.sql.j2"]


def _schema() -> list[str]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(INIT_DB), undefined=jinja2.StrictUndefined)
    statements = []
    for name in SCHEMA_FILES:
        text = env.get_template(name).render(
            clickhouse_schema_replicated=False,
            __clickhouse_schema_on_cluster="",
            clickhouse_schema_storage_policy="default",
            clickhouse_cluster="main",
        )
        # chdb has no 'cold' volume: drop the tiering clauses (their syntax is checked below).
        text = re.sub(r"\n\s*TTL [^\n]*TO VOLUME '[^']+'", "", text)
        text = re.sub(r"\n\s*SETTINGS storage_policy = '[^']+'", "", text)
        text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        statements += [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]
    return statements


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory):
    sess = chdb_session.Session(str(tmp_path_factory.mktemp("chdb")))
    try:
        statements = _schema()
    except jinja2.TemplateNotFound as exc:
        pytest.skip(f"ClickHouse schema not present yet: {exc}")
    for stmt in statements:
        sess.query(stmt)
    sess.query("CREATE DATABASE IF NOT EXISTS stage")
    yield sess
    sess.cleanup()


def q(sess, statement: str) -> list[list]:
    out = sess.query(statement, "JSONCompact")
    text = out.bytes().decode() if hasattr(out, "bytes") else str(out)
    return json.loads(text)["data"] if text.strip() else []


def parses(sess, statement: str) -> None:
    """ClickHouse's own parser accepts the statement (raises otherwise)."""
    sess.query(f"SELECT formatQuery({sql.literal(statement)})")


def test_schema_has_the_tables_the_dags_write(ch) -> None:
    tables = {
        tuple(r) for r in q(ch, "SELECT database, name FROM system.tables WHERE database IN ('prod','ext','datamart')")
    }
    assert {
        ("prod", "boroughs"),
        ("prod", "vehicles"),
        ("ext", "api_quotes"),
        ("ext", "netflix_titles"),
        ("datamart", "trips"),
    } <= tables


def test_pg_to_ch_columns_match_the_schema(ch) -> None:
    import ast

    tree = ast.parse((DAGS / "pg_to_ch.py").read_text())
    tables = next(
        ast.literal_eval(node.value) for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "TABLES"
    )  # fmt: skip
    for table, columns in tables.items():
        schema = [
            r[0]
            for r in q(
                ch, f"SELECT name FROM system.columns WHERE database='prod' AND table='{table}' ORDER BY position"
            )
        ]
        assert columns == schema, table


def test_pg_to_ch_incremental_copy_is_safe_to_rerun(ch) -> None:
    cols = ["borough_id", "name", "created_at", "updated_at"]
    ch.query(
        "CREATE TABLE stage.boroughs (borough_id Int16, name String, created_at DateTime64(6,'UTC'), updated_at DateTime64(6,'UTC')) ENGINE = MergeTree ORDER BY borough_id"
    )
    ch.query(
        "INSERT INTO stage.boroughs VALUES (1,'Bronx','2026-01-01 00:00:00','2026-01-01 00:00:00'), (2,'Queens','2026-01-01 00:00:00','2026-01-01 00:00:00')"
    )
    source = "(SELECT * FROM stage.boroughs WHERE {t} = 'boroughs')"

    def run() -> int:
        wm = q(ch, sql.watermark_sql("boroughs"))[0][0]
        ch.query(sql.incremental_copy_sql("boroughs", cols, wm, source=source))
        return int(q(ch, sql.count_sql("boroughs"))[0][0])

    assert run() == 2
    assert run() == 2  # re-run: nothing doubles
    ch.query(
        "ALTER TABLE stage.boroughs UPDATE name = 'The Bronx', updated_at = '2026-02-01 00:00:00' WHERE borough_id = 1 SETTINGS mutations_sync = 2"
    )
    assert run() == 2
    assert q(ch, "SELECT name FROM prod.boroughs FINAL WHERE borough_id = 1") == [["The Bronx"]]
    assert int(q(ch, sql.source_count_sql("boroughs", source=source))[0][0]) == 2


def test_pg_to_ch_postgres_form_parses(ch) -> None:
    parses(ch, sql.incremental_copy_sql("vehicles", ["vehicle_id", "updated_at"], "2026-01-01 00:00:00"))
    parses(ch, sql.source_count_sql("vehicles"))


def test_api_quotes_load_dedups(ch) -> None:
    payload = json.loads((ROOT / "files/airflow/fixtures/quotes.json").read_text())
    rows = parse_quotes(payload, source="fixture")
    assert len(rows) == payload["total"]
    for _ in range(2):
        values = ", ".join(
            f"({r[0]}, {sql.literal(r[1])}, {sql.literal(r[2])}, [{', '.join(sql.literal(t) for t in r[3])}], 'fixture')"
            for r in rows
        )
        ch.query(f"INSERT INTO ext.api_quotes ({', '.join(sql.API_QUOTES_COLUMNS)}) VALUES {values}")
    ch.query(sql.optimize_final_sql("ext.api_quotes"))
    assert int(q(ch, sql.duplicates_sql("ext.api_quotes", "quote_id"))[0][0]) == 0
    assert int(q(ch, "SELECT count() FROM ext.api_quotes")[0][0]) == len(rows)


@pytest.mark.parametrize(
    "payload",
    [[], {"quotes": []}, {"quotes": [{"id": 0, "quote": "x", "author": "y"}]},
     {"quotes": [{"id": 1, "quote": " ", "author": "y"}]}, {"quotes": [{"id": 1, "quote": "x", "author": "y", "tags": "t"}]}],
)  # fmt: skip
def test_bad_api_data_is_refused(payload) -> None:
    with pytest.raises(ValueError):
        parse_quotes(payload, source="test")


def test_netflix_csv_load(ch, tmp_path: Path) -> None:
    csv = tmp_path / "netflix.csv"
    csv.write_text(
        "show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description\n"
        's1,Movie,Dick Johnson Is Dead,Kirsten Johnson,,United States,"September 25, 2021",2020,PG-13,90 min,Documentaries,A film.\n'
        's2,TV Show,Blood & Water,,"Ama Qamata, Khosi Ngema",South Africa,"September 24, 2021",2021,TV-MA,2 Seasons,"International TV Shows",A show.\n'
    )
    source = f"file('{csv}', 'CSVWithNames')"
    assert int(q(ch, sql.bad_rows_sql(source))[0][0]) == 0
    for _ in range(2):
        ch.query(sql.netflix_load_sql(source))
    ch.query(sql.optimize_final_sql("ext.netflix_titles"))
    assert q(ch, "SELECT show_id, director, toString(date_added) FROM ext.netflix_titles FINAL ORDER BY show_id") == [
        ["s1", "Kirsten Johnson", "2021-09-25"],
        ["s2", None, "2021-09-24"],
    ]


def test_trips_load_twice_inserts_once(ch, tmp_path: Path) -> None:
    csv = tmp_path / "trips.csv"
    header = ",".join(sql.TRIPS_COLUMNS)
    csv.write_text(
        header + "\n"
        "1,2026-01-01 10:00:00,2026-01-01 10:20:00,-73.9,40.7,-73.8,40.6,1,3.5,12.5,0.5,2,0,15,CRE,Midtown,JFK\n"
        "2,2026-01-02 11:00:00,2026-01-02 11:05:00,,,,,2,0.8,5,0,0,0,5,CSH,Chelsea,SoHo\n"
    )
    source = f"file('{csv}', 'CSVWithNames')"
    assert int(q(ch, sql.trips_bad_rows_sql(source))[0][0]) == 0
    assert int(q(ch, sql.rows_sql(source))[0][0]) == 2
    for _ in range(2):
        ch.query(sql.trips_load_sql(source))
    assert int(q(ch, "SELECT count() FROM datamart.trips")[0][0]) == 2


def test_s3_sources_parse(ch) -> None:
    parses(ch, sql.trips_load_sql(sql.s3_source("trips/trips_sample.parquet", "Parquet")))
    parses(ch, sql.netflix_load_sql(sql.s3_source("netflix_titles.csv", "CSVWithNames")))
    with pytest.raises(ValueError):
        sql.s3_source("x'); DROP TABLE y; --", "CSVWithNames")


def test_backup_statements_parse(ch) -> None:
    parses(ch, sql.backup_sql(["prod", "ext", "datamart"], "full_20260101T0100"))
    parses(ch, sql.backup_sql(["prod"], "incr_20260101T0215", base="full_20260101T0100"))
    parses(ch, sql.restore_sql(["prod", "ext"], "incr_20260101T0215"))
    assert "base_backup = Disk('backups', 'full_20260101T0100')" in sql.backup_sql(
        ["prod"], "i", base="full_20260101T0100"
    )
    with pytest.raises(ValueError):
        sql.backup_sql(["prod"], "bad name'")


def test_backup_queries_run_on_system_backups(ch) -> None:
    assert q(ch, sql.last_backup_sql()) == []
    assert q(ch, sql.backup_status_sql("no-such-id")) == []
