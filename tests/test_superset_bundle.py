"""The Superset export bundle (files/superset/assets) against itself and the ClickHouse schema.

- references: every chart names an existing dataset, every dataset an existing database, every
  dashboard only existing charts; the metrics and columns a chart uses are the dataset's own;
- schema: the single-node rendering of files/clickhouse/init_db is loaded into chdb (the
  ClickHouse engine in-process) and every physical dataset's columns must exist there with the
  declared type; every virtual dataset's SQL must run there and return exactly its columns; every
  metric expression must run over its dataset.
"""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from tests.conftest import ROOT
from tests.superset_helpers import BUNDLE, bi_schema_statements, load, objects, source_of

DEFAULTS = ROOT / "roles" / "superset" / "defaults" / "main.yml"


DATABASES = objects("databases")
DATASETS = objects("datasets")
CHARTS = objects("charts")
DASHBOARDS = objects("dashboards")


def metric_names(value) -> list[str]:
    """Saved-metric names a chart parameter refers to (adhoc metrics are dicts)."""
    items = value if isinstance(value, list) else [value]
    return [m for m in items if isinstance(m, str)]


def chart_columns(params: dict) -> list[str]:
    cols = []
    for key in ("x_axis", "granularity_sqla"):
        if isinstance(params.get(key), str):
            cols.append(params[key])
    for key in ("groupby", "all_columns", "columns"):
        cols += [c for c in params.get(key) or [] if isinstance(c, str)]
    cols += [f["subject"] for f in params.get("adhoc_filters") or [] if f.get("expressionType") == "SIMPLE"]
    return cols


def test_bundle_has_the_required_objects():
    metadata = load(BUNDLE / "metadata.yaml")
    assert (metadata["version"], metadata["type"]) == ("1.0.0", "assets")
    assert len(DATABASES) == 1
    titles = {d["dashboard_title"] for d in DASHBOARDS.values()}
    assert {"Trips", "Sensors"} <= titles
    tables = {(d["schema"], d["table_name"]) for d in DATASETS.values() if not d.get("sql")}
    assert {("datamart", "trips"), ("parsed", "sensor_data")} <= tables


def test_uuids_are_valid_and_versions_set():
    for obj in [*DATABASES.values(), *DATASETS.values(), *CHARTS.values(), *DASHBOARDS.values()]:
        uuid.UUID(obj["uuid"])
        assert obj["version"] == "1.0.0", obj["_file"]


def test_clickhouse_connection_is_read_only_and_masked():
    (database,) = DATABASES.values()
    assert database["_file"] == "databases/ClickHouse.yaml.j2"
    assert database["sqlalchemy_uri"] == (
        "clickhousedb://bi:XXXXXXXXXX@clickhouse.example:8443/datamart"
        "?secure=true&verify=true&ca_cert=%2Fetc%2Fchplatform%2Ftls%2Fca.crt"
    )
    assert database["allow_dml"] is False and database["allow_ctas"] is False and database["allow_cvas"] is False
    assert database["allow_file_upload"] is False


def test_connection_file_name_matches_the_role_password_mapping():
    role_vars = (ROOT / "roles" / "superset" / "vars" / "main.yml").read_text()
    assert "__superset_clickhouse_yaml: databases/{{ superset_clickhouse_connection_name }}.yaml" in role_vars
    defaults = yaml.safe_load(DEFAULTS.read_text())
    (database,) = DATABASES.values()
    assert database["database_name"] == defaults["superset_clickhouse_connection_name"]


def test_datasets_reference_the_database():
    for dataset in DATASETS.values():
        assert dataset["database_uuid"] in DATABASES, dataset["_file"]
        database = DATABASES[dataset["database_uuid"]]
        assert dataset["_file"].startswith(f"datasets/{database['database_name']}/"), dataset["_file"]


@pytest.mark.parametrize("chart", CHARTS.values(), ids=lambda c: c["_file"])
def test_chart_references_an_existing_dataset_and_its_fields(chart):
    assert chart["dataset_uuid"] in DATASETS, f"{chart['_file']}: dataset {chart['dataset_uuid']} is not in the bundle"
    dataset = DATASETS[chart["dataset_uuid"]]
    params = chart["params"]
    assert params["viz_type"] == chart["viz_type"]
    metrics = {m["metric_name"] for m in dataset["metrics"]}
    for key in ("metric", "metrics", "timeseries_limit_metric"):
        for name in metric_names(params.get(key) or []):
            assert name in metrics, f"{chart['_file']}: metric {name} is not a metric of {dataset['table_name']}"
    columns = {c["column_name"] for c in dataset["columns"]}
    for name in chart_columns(params):
        assert name in columns, f"{chart['_file']}: column {name} is not a column of {dataset['table_name']}"


@pytest.mark.parametrize("dashboard", DASHBOARDS.values(), ids=lambda d: d["_file"])
def test_dashboard_references_existing_charts(dashboard):
    position = dashboard["position"]
    chart_nodes = [node for node in position.values() if isinstance(node, dict) and node.get("type") == "CHART"]
    assert chart_nodes, f"{dashboard['_file']} has no chart"
    for node in chart_nodes:
        assert node["meta"]["uuid"] in CHARTS, (
            f"{dashboard['_file']}: chart {node['meta']['uuid']} is not in the bundle"
        )
        # the chart sits in a row of the grid
        row = position[node["parents"][-1]]
        assert node["id"] in row["children"] and row["id"] in position["GRID_ID"]["children"], node["id"]


def test_every_chart_is_on_a_dashboard():
    placed = {
        node["meta"]["uuid"]
        for dashboard in DASHBOARDS.values()
        for node in dashboard["position"].values()
        if isinstance(node, dict) and node.get("type") == "CHART"
    }
    assert set(CHARTS) == placed


# --- against the ClickHouse schema (chdb) ---------------------------------------------------


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory):
    session = pytest.importorskip("chdb.session")

    sess = session.Session(str(tmp_path_factory.mktemp("chdb")))
    for statement in bi_schema_statements():
        sess.query(statement)
    # A few rows, so that the queries aggregate real data.
    sess.query(
        "INSERT INTO datamart.trips (trip_id, pickup_datetime, dropoff_datetime, passenger_count, trip_distance,"
        " fare_amount, extra, tip_amount, tolls_amount, total_amount, payment_type, pickup_ntaname, dropoff_ntaname)"
        " VALUES (1, now() - 3600, now() - 3000, 1, 2.5, 10, 0.5, 2, 0, 12.5, 'CRE', 'Midtown', 'SoHo'),"
        " (2, now() - 7200, now() - 6000, 2, 31.2, 60, 0, 0, 5.76, 65.76, 'CSH', 'JFK', 'Midtown')"
    )
    sess.query(
        "INSERT INTO parsed.sensor_data VALUES"
        " (1, 21.5, 40, now() - 60, 'sensor_data', 0, 1, now64(3) - 59, now64(3) - 58),"
        " (1, 22.0, 41, now() - 30, 'sensor_data', 0, 2, now64(3) - 29, now64(3) - 28),"
        " (2, 19.0, 55, now() - 30, 'sensor_data', 1, 1, now64(3) - 29, now64(3) - 27)"
    )
    yield sess
    sess.close()


def describe(sess, source: str) -> dict[str, str]:
    rows = sess.query(f"DESCRIBE ({source})", "JSONCompact").bytes()
    return {name: type_ for name, type_, *_ in json.loads(rows)["data"]}


def test_schema_rendering_has_the_bi_tables():
    text = "\n".join(bi_schema_statements())
    assert "datamart.trips" in text and "parsed.sensor_data" in text


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=lambda d: d["_file"])
def test_dataset_columns_exist_in_the_schema(clickhouse, dataset):
    source = source_of(dataset)
    actual = describe(clickhouse, source)
    declared = {c["column_name"]: c["type"] for c in dataset["columns"] if not c.get("expression")}
    for name, type_ in declared.items():
        assert name in actual, (
            f"{dataset['_file']}: column {name} is not in {dataset['schema']}.{dataset['table_name']}"
        )
        assert actual[name] == type_, (
            f"{dataset['_file']}: {name} is {actual[name]} in ClickHouse, {type_} in the bundle"
        )
    if dataset.get("sql"):
        assert set(actual) == set(declared), f"{dataset['_file']}: the SQL returns {sorted(actual)}"


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=lambda d: d["_file"])
def test_dataset_sql_and_metrics_execute(clickhouse, dataset):
    source = source_of(dataset)
    rows = clickhouse.query(f"SELECT count() FROM ({source})", "CSV").bytes().decode().strip()  # noqa: S608  SQL of the repository's own dataset files, no outside input
    assert int(rows) > 0, f"{dataset['_file']}: no rows over the sample data"
    exprs = ", ".join(f"{m['expression']} AS `{m['metric_name']}`" for m in dataset["metrics"])
    result = clickhouse.query(f"SELECT {exprs} FROM ({source})", "CSV").bytes().decode().strip()  # noqa: S608  SQL of the repository's own dataset files, no outside input
    assert result, f"{dataset['_file']}: the metrics returned nothing"
