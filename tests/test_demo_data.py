"""The lab's demo data (src/chplatform_demo) against the platform's own schema and dashboards.

The trips Parquet must load into datamart.trips as the init_db migration creates it (in chdb, the
ClickHouse engine in-process) through the trips_load DAG's own SQL, without a lossy conversion;
it is reproducible from its seed; its zones are the prod database's. Then every chart of the Trips
and Sensors dashboards, queried the way Superset builds it (the dataset's SQL, the chart's
metrics, group-by and time grain), must return rows over the demo trips and over sensor readings
made by the demo producer's own message generator and passed through the migrations' own views.
"""

# ruff: noqa: S608, S311  (SQL built from the repository's own bundle and constants; seeded demo data)
from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from chplatform_common import sql as dag_sql

from chplatform_demo import titles, trips
from chplatform_demo.cli import main as demo_cli
from sensor_producer.messages import make_message
from tests.superset_helpers import bi_schema_statements, objects, source_of

END = datetime(2026, 11, 30, tzinfo=UTC)
ROWS = 50_000
SENSOR_MESSAGES = 2_000
MALFORMED_FRACTION = 0.05
DATASETS = objects("datasets")
CHARTS = objects("charts")
DASHBOARDS = {d["dashboard_title"]: d for d in objects("dashboards").values()}
TIME_GRAINS = {"PT1M": "toStartOfMinute", "PT1H": "toStartOfHour", "P1D": "toStartOfDay", "P1W": "toMonday"}


def dashboard_charts(title: str) -> list[dict]:
    position = DASHBOARDS[title]["position"]
    ids = [n["meta"]["uuid"] for n in position.values() if isinstance(n, dict) and n.get("type") == "CHART"]
    return [CHARTS[i] for i in ids]


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert demo_cli(["--out-dir", str(out), "--rows", str(ROWS), "--seed", "7", "--end", END.date().isoformat()]) == 0
    return out


@pytest.fixture(scope="module")
def engine(tmp_path_factory, demo_files):
    session = pytest.importorskip("chdb.session")
    sess = session.Session(str(tmp_path_factory.mktemp("chdb-demo")))
    for statement in bi_schema_statements(pipeline=True):
        sess.query(statement)
    yield sess
    sess.close()


def scalar(sess, sql: str):
    return json.loads(sess.query(sql, "JSONCompact").bytes())["data"][0][0]


def rows(sess, sql: str) -> list[list]:
    return json.loads(sess.query(sql, "JSONCompact").bytes())["data"]


def parquet_source(demo_files) -> str:
    return f"file('{demo_files / 'trips.parquet'}', Parquet)"


def test_the_columns_are_datamart_trips_in_order_and_convert_without_loss(engine, demo_files):
    table_columns = rows(
        engine,
        "SELECT name, type FROM system.columns WHERE database = 'datamart' AND table = 'trips' "
        "AND default_kind != 'MATERIALIZED' ORDER BY position",
    )
    assert [c for c, _ in table_columns] == trips.SCHEMA.names == dag_sql.TRIPS_COLUMNS
    # What each Parquet column is (no Nullable added by schema inference) and what the table holds.
    source = f"file('{demo_files / 'trips.parquet'}', Parquet) SETTINGS schema_inference_make_columns_nullable = 0"
    parquet = {r[0]: r[1] for r in rows(engine, f"DESCRIBE {source}")}
    same_kind = {
        "DateTime": ("DateTime64(3, 'UTC')",),  # Parquet stores seconds as milliseconds, in UTC
        "Enum8('CSH' = 1, 'CRE' = 2, 'NOC' = 3, 'DIS' = 4, 'UNK' = 5)": ("String",),
        "LowCardinality(String)": ("String",),
    }
    for name, ch_type in table_columns:
        base = ch_type.removeprefix("Nullable(").removesuffix(")") if ch_type.startswith("Nullable(") else ch_type
        assert parquet[name] in (base, *same_kind.get(base, ())), f"{name}: Parquet {parquet[name]}, table {ch_type}"
        assert ch_type.startswith("Nullable(") == (name in trips.NULLABLE), f"{name}: nullability differs"


def test_it_loads_through_the_trips_load_sql_once(engine, demo_files):
    source = parquet_source(demo_files)
    assert scalar(engine, dag_sql.rows_sql(source)) == ROWS
    assert scalar(engine, dag_sql.trips_bad_rows_sql(source)) == 0
    for _ in range(2):  # the DAG's re-run inserts nothing twice
        engine.query(dag_sql.trips_load_sql(source))
    assert scalar(engine, "SELECT count() FROM datamart.trips") == ROWS
    # Nothing lost in the conversion to the table's types (Enum8, DateTime, LowCardinality).
    checks = (
        "count(), sum(trip_id), sum(toUnixTimestamp(pickup_datetime)), sum(toUnixTimestamp(dropoff_datetime)),"
        " round(sum(total_amount), 0), round(sum(tip_amount), 0), countIf(pickup_longitude IS NULL),"
        " countIf(payment_type = 'CRE'), uniqExact(pickup_ntaname), sum(passenger_count)"
    )
    loaded = rows(engine, f"SELECT {checks} FROM datamart.trips")
    assert loaded == rows(engine, f"SELECT {checks} FROM {source}")
    lo, hi = rows(engine, "SELECT min(pickup_date), max(pickup_date) FROM datamart.trips")[0]
    print(f"\ndatamart.trips: {ROWS} demo trips from {lo} to {hi}")
    assert (lo, hi) == ("2026-10-31", "2026-11-29")


def test_the_same_seed_gives_the_same_trips_and_another_seed_does_not():
    a = trips.generate(2_000, seed=11, end=END)
    assert a.equals(trips.generate(2_000, seed=11, end=END))
    assert not a.equals(trips.generate(2_000, seed=12, end=END))
    assert titles.to_csv(titles.generate(50, seed=3)) == titles.to_csv(titles.generate(50, seed=3))


def test_the_trips_are_plausible_and_use_the_prod_zones():
    t = trips.generate(20_000, seed=5, end=END).to_pydict()
    zones = {z.name for z in trips.load_zones()}
    assert set(t["pickup_ntaname"]) | set(t["dropoff_ntaname"]) <= zones
    assert len(set(t["pickup_ntaname"])) > 0.9 * len(zones)
    assert all(d >= p for p, d in zip(t["pickup_datetime"], t["dropoff_datetime"], strict=True))
    assert t["trip_id"] == list(range(1, 20_001)) and t["pickup_datetime"] == sorted(t["pickup_datetime"])
    share = {p: t["payment_type"].count(p) / 20_000 for p in trips.PAYMENT_TYPES}
    assert 0.6 < share["CRE"] < 0.75 and 0.2 < share["CSH"] < 0.35, share
    tipped = [tip for tip, p in zip(t["tip_amount"], t["payment_type"], strict=True) if p == "CSH" and tip]
    assert not tipped, "cash trips never record a tip"
    assert all(abs(tot - (f + e + tip + tl)) < 0.02 for tot, f, e, tip, tl in zip(
        t["total_amount"], t["fare_amount"], t["extra"], t["tip_amount"], t["tolls_amount"], strict=True))  # fmt: skip


def test_a_size_that_does_not_fit_the_disk_is_refused_before_writing(tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.setattr(
        shutil, "disk_usage", lambda _path: shutil._ntuple_diskusage(10 * 2**30, 10 * 2**30 - 2**20, 2**20)
    )
    with pytest.raises(SystemExit) as exc:
        demo_cli(["--out-dir", str(tmp_path), "--rows", "1000000"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1000000 trips need about 61 MiB and" in err and "has 1 MiB free: lower --rows or free space" in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_size_that_does_not_fit_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        demo_cli(["--out-dir", str(tmp_path), "--rows", str(trips.MAX_ROWS + 1)])
    assert exc.value.code == 2
    assert "--rows must be between 1 and" in capsys.readouterr().err
    with pytest.raises(ValueError, match="do not fit UInt32"):
        trips.generate(10, first_id=2**32 - 5)


def test_the_titles_load_through_the_file_to_ext_sql(engine, demo_files):
    source = f"file('{demo_files / 'titles.csv'}', CSVWithNames)"
    engine.query("CREATE DATABASE IF NOT EXISTS ext")
    assert scalar(engine, dag_sql.bad_rows_sql(source)) == 0
    engine.query(dag_sql.netflix_load_sql(source))
    assert scalar(engine, "SELECT count() FROM ext.netflix_titles FINAL") == 500
    assert scalar(engine, "SELECT countIf(date_added IS NULL) FROM ext.netflix_titles") == 0


@pytest.fixture(scope="module")
def sensor_readings(engine):
    """Demo producer messages (with its share of malformed ones) into the Kafka table's stand-in."""
    rng = random.Random(20261130)
    messages = [make_message(rng, MALFORMED_FRACTION) for _ in range(SENSOR_MESSAGES)]
    values = ",".join(
        f"('{body.decode('utf-8', 'replace').replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}',"
        f" 'sensor_data', {offset}, 0, now64(3), '', '')"
        for offset, (body, _) in enumerate(messages)
    )
    engine.query(
        "INSERT INTO streams.sensor_data_queue (message, _topic, _offset, _partition, _timestamp_ms, _error, "
        f"_raw_message) VALUES {values}"
    )
    bad = sum(1 for _, malformed in messages if malformed)
    assert scalar(engine, "SELECT count() FROM parsed.sensor_data") == SENSOR_MESSAGES - bad
    return SENSOR_MESSAGES - bad


def chart_sql(chart: dict) -> str:
    """The query Superset builds for a chart: its dataset as a subquery, its dimensions, its metrics."""
    dataset = DATASETS[chart["dataset_uuid"]]
    params = chart["params"]
    metrics = {m["metric_name"]: m["expression"] for m in dataset["metrics"]}
    names = params.get("metrics") or ([params["metric"]] if params.get("metric") else [])
    temporal = {c["column_name"] for c in dataset["columns"] if c.get("is_dttm")}
    dims = []
    if params.get("x_axis"):
        x = params["x_axis"]
        grain = TIME_GRAINS.get(params.get("time_grain_sqla") or "")
        dims.append(f"{grain}({x})" if grain and x in temporal else x)
    dims += params.get("groupby") or []
    if params.get("all_columns"):
        return f"SELECT {', '.join(params['all_columns'])} FROM ({source_of(dataset)}) LIMIT 100"
    select = [*(f"{d} AS d{i}" for i, d in enumerate(dims)), *(f"{metrics[m]} AS `{m}`" for m in names)]
    group = f" GROUP BY {', '.join(f'd{i}' for i in range(len(dims)))}" if dims else ""
    return f"SELECT {', '.join(select)} FROM ({source_of(dataset)}){group} LIMIT 1000"


@pytest.mark.parametrize(
    "chart",
    [c for title in ("Trips", "Sensors") for c in dashboard_charts(title)],
    ids=lambda c: c["_file"].removeprefix("charts/"),
)
def test_every_dashboard_chart_returns_rows_on_the_demo_data(engine, demo_files, sensor_readings, chart):
    source = parquet_source(demo_files)
    engine.query(dag_sql.trips_load_sql(source))  # loads once: the anti-join skips what is there
    result = rows(engine, chart_sql(chart))
    assert result, f"{chart['_file']} returned no rows:\n{chart_sql(chart)}"
    assert all(v is not None for v in result[0]), f"{chart['_file']}: {result[0]}"
    print(f"\n{chart['slice_name']}: {len(result)} rows, first {result[0]}")


# --- playbooks/demo.yml: bad input stops before anything is written ---------------------------

CLOSED = {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh"}  # never reached
ALL = ["airflow", "kafka", "minio"]


@pytest.mark.parametrize(
    ("extra", "groups", "fix"),
    [
        (["-e", "demo_rows=lots"], ALL, "demo_rows must be a whole number from 1 to 100000000"),
        (["-e", "demo_rows=0"], ALL, "demo_rows must be a whole number from 1 to 100000000"),
        (["-e", "demo_state=paused"], ALL, "demo_state started or stopped"),
        ([], ["airflow", "kafka"], "The demo needs a host in group minio: add one to the inventory"),
    ],
    ids=["rows-not-a-number", "rows-zero", "unknown-state", "no-minio-host"],
)  # fmt: skip
def test_the_demo_playbook_refuses_bad_input_before_writing_anything(tmp_path, extra, groups, fix):
    from tests.conftest import local_inventory, run_playbook

    inv = local_inventory(tmp_path, {g: {f"{g}01": CLOSED} for g in groups})
    demo_dir = tmp_path / "demo"
    r = run_playbook("playbooks/demo.yml", "-i", inv, "-e", f"demo_dir={demo_dir}", *extra, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    assert fix in out, out[-3000:]
    assert not demo_dir.exists(), "the demo wrote files before refusing its input"
    assert "UNREACHABLE" not in out, "a host was contacted before the input was checked"
