"""Topology stays out of the checksummed migrations.

The clickhouse_schema role's own render tasks, run for the lab and for a grown platform (2 x 2
replicas, 3 Kafka brokers, PostgreSQL and MinIO elsewhere): every migration is byte-identical, so
no applied checksum changes when the platform grows; the brokers and endpoints reach ClickHouse
through the named collections of the server configuration (clickhouse role), which do differ."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.chplatform.platform.plugins.module_utils.clickhouse_migrations import load_migrations

from tests.clickhouse_helpers import rendered

SCHEMA = "var/lib/clickhouse-schema/init_db"


def collections(root, host: str) -> dict[str, dict[str, str]]:
    path = root / host / "etc/clickhouse-server/config.d/named_collections.xml"
    tree = ET.parse(path).getroot().find("named_collections")  # noqa: S314  rendered by the role under test
    return {c.tag: {p.tag: p.text for p in c} for c in tree}


def test_migrations_are_byte_identical_across_topologies():
    r = rendered("lab", "grown_platform")
    lab, grown = r["lab"] / "replica01" / SCHEMA, r["grown_platform"] / "s2r2" / SCHEMA
    lab_files = sorted(p.name for p in lab.glob("*.sql"))
    assert lab_files == sorted(p.name for p in grown.glob("*.sql")) and len(lab_files) >= 9
    for name in lab_files:
        assert (lab / name).read_bytes() == (grown / name).read_bytes(), f"{name} depends on the topology"
    checksums = {m.name: m.checksum for m in load_migrations(str(lab))}
    assert checksums == {m.name: m.checksum for m in load_migrations(str(grown))}
    print(f"{len(checksums)} migrations, identical checksums for the lab and the grown platform")


def test_the_topology_reaches_clickhouse_through_named_collections():
    r = rendered("lab", "grown_platform")
    lab, grown = collections(r["lab"], "replica01"), collections(r["grown_platform"], "s1r1")
    assert lab["kafka_sensor_data"]["kafka_broker_list"] == "kafka01:9092"
    assert grown["kafka_sensor_data"]["kafka_broker_list"] == "kafka01:9092,kafka02:9092,kafka03:9092"
    assert (
        lab["kafka_sensor_data"]["kafka_topic_list"] == grown["kafka_sensor_data"]["kafka_topic_list"] == "sensor_data"
    )
    assert (lab["pg_prod"]["host"], grown["pg_prod"]["host"]) == ("pg01", "pg-other")
    assert lab["s3_datasets"]["url"] == "https://minio01:9000/datasets/"
    assert grown["s3_datasets"]["url"] == "https://objects02:9000/datasets/"
    # 002 names the collection, never a broker.
    sql = (r["grown_platform"] / "s1r1" / SCHEMA / "002_sensor_data.sql").read_text()
    assert "ENGINE = Kafka(kafka_sensor_data)" in sql and "kafka01" not in sql
