"""The Superset export bundle (files/superset/assets) as the tests read it, and the BI tables it
queries loaded into chdb: shared by the bundle's own tests and the demo data's."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import jinja2
import yaml
from ansible_collections.chplatform.platform.plugins.module_utils.clickhouse_migrations import split_statements

from tests.conftest import ROOT
from tests.services import is_kafka_table, kafka_standin, render_init_db

BUNDLE = ROOT / "files" / "superset" / "assets"


def load(path: Path) -> dict:
    text = path.read_text()
    if path.suffix == ".j2":
        text = jinja2.Template(text).render(
            superset_clickhouse_user="bi",
            superset_clickhouse_host="clickhouse.example",
            superset_clickhouse_port=8443,
            superset_clickhouse_uri_query="secure=true&verify=true&ca_cert=%2Fetc%2Fchplatform%2Ftls%2Fca.crt",
            superset_clickhouse_database="datamart",
        )
    return yaml.safe_load(text)


def objects(kind: str) -> dict[str, dict]:
    """uuid -> object for every YAML file of one kind of the bundle."""
    found = {}
    for path in sorted((BUNDLE / kind).rglob("*.yaml*")):
        obj = load(path)
        obj["_file"] = str(path.relative_to(BUNDLE))
        assert obj["uuid"] not in found, f"{path}: uuid {obj['uuid']} used twice"
        found[obj["uuid"]] = obj
    return found


def bi_schema_statements(pipeline: bool = False) -> list[str]:
    """Single-node rendering of the init_db migrations: the databases and every MergeTree table.

    Skipped: Kafka/PostgreSQL engines, dictionaries and RBAC (they need a broker, PostgreSQL or a
    server with access storage). The cold-volume TTL and storage policy are dropped: chdb has no
    such volume, and they do not change columns. With ``pipeline``, the materialized views are
    kept too, and the Kafka table becomes its Null-engine stand-in (tests.services.kafka_standin):
    a message inserted into streams.sensor_data_queue flows through the migrations' own views.
    """
    statements = []
    with tempfile.TemporaryDirectory() as work:
        rendered = render_init_db(Path(work), "single")
        sqls = [path.read_text() for path in sorted(rendered.glob("*.sql"))]
    for sql in sqls:
        for statement in split_statements(sql):
            text = statement.text
            if text.lstrip().upper().startswith("CREATE DATABASE"):
                statements.append(text)
            elif re.match(r"\s*CREATE TABLE", text, re.I) and "MergeTree" in text:
                text = re.sub(r"(?m)^\s*TTL .*TO VOLUME .*$", "", text)
                text = re.sub(r"(?m)^\s*SETTINGS storage_policy = .*$", "", text)
                statements.append(text)
            elif pipeline and (is_kafka_table(text) or re.match(r"\s*CREATE MATERIALIZED VIEW", text, re.I)):
                statements.append(kafka_standin(text))
    return statements


def source_of(dataset: dict) -> str:
    """The dataset as a subquery: its SQL, or its declared columns of its table (MATERIALIZED ones
    such as pickup_date are not in SELECT *)."""
    if dataset.get("sql"):
        return dataset["sql"]
    columns = ", ".join(c["column_name"] for c in dataset["columns"])
    return f"SELECT {columns} FROM {dataset['schema']}.{dataset['table_name']}"  # noqa: S608 - test SQL from the bundle
