"""The lab's rendered server configuration, loaded into the real ClickHouse engine (chdb-core).

chdb takes ONE configuration file: replica01's config.d drop-ins are merged into one (as ClickHouse
merges them) by tests/clickhouse_helpers.py. For the test, the Keeper quorum in <zookeeper> is
replaced by ClickHouse's in-memory coordination (<zookeeper><implementation>testkeeper
</implementation></zookeeper>), and the S3 endpoints (https://minio01:9000/...) are pointed at a
real MinIO started on 127.0.0.1 (plain HTTP) from the artifact bundle, with random credentials; buckets and
prefixes stay as rendered. Everything else (macros, named collections, disks, storage policy,
backups setting, cluster) is the role's output unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clickhouse_helpers import (
    for_chdb,
    local_minio,
    merge_dropins,
    minio_binary,
    rendered,
    run_chdb,
    users_xml,
    write_xml,
)

BUCKETS = ["clickhouse-cold", "clickhouse-backups", "datasets"]
QUERIES = {
    "macros": "SELECT getMacro('cluster'), getMacro('shard'), getMacro('replica')",
    "collections": "SELECT name FROM system.named_collections ORDER BY name",
    "disks": "SELECT name, type, object_storage_type, cache_path != '', metadata_type FROM system.disks ORDER BY name",
    "policies": "SELECT policy_name, volume_name, disks FROM system.storage_policies "
    "ORDER BY policy_name, volume_priority",
    "clusters": "SELECT cluster, shard_num, replica_num, host_name FROM system.clusters "
    "ORDER BY shard_num, replica_num",
    "create_replicated": "CREATE TABLE rt (id UInt64) ENGINE = "
    "ReplicatedMergeTree('/clickhouse/tables/{cluster}/{shard}/rt', '{replica}') ORDER BY id",
    "replicas": "SELECT zookeeper_path, replica_name FROM system.replicas WHERE table = 'rt'",
    "create_tiered": "CREATE TABLE tiered_t (dt Date, id UInt64) ENGINE = MergeTree ORDER BY id "
    "TTL dt + INTERVAL 30 DAY TO VOLUME 'cold' SETTINGS storage_policy = 'tiered'",
    "insert_old": "INSERT INTO tiered_t SELECT today() - 100, number FROM numbers(1000)",
    "insert_new": "INSERT INTO tiered_t SELECT today(), number FROM numbers(10)",
    "parts": "SELECT disk_name, sum(rows) FROM system.parts WHERE table = 'tiered_t' AND active "
    "GROUP BY disk_name ORDER BY disk_name",
    "create_plain": "CREATE TABLE plain_t (id UInt64) ENGINE = MergeTree ORDER BY id",
    "insert_plain": "INSERT INTO plain_t SELECT number FROM numbers(1010)",
    "backup": "BACKUP TABLE plain_t TO Disk('backups', 'chdb-test')",
    "drop": "DROP TABLE plain_t SYNC",
    "restore": "RESTORE TABLE plain_t FROM Disk('backups', 'chdb-test')",
    "restored": "SELECT count() FROM plain_t",
    "write_dataset": "INSERT INTO FUNCTION s3(s3_datasets, filename = 'chdb-probe.csv', format = 'CSV', "
    "structure = 'x UInt8') SELECT 7",
    "read_dataset": "SELECT x FROM s3(s3_datasets, filename = 'chdb-probe.csv', format = 'CSV', structure = 'x UInt8')",
}


@pytest.fixture(scope="module")
def lab_results(tmp_path_factory) -> tuple[dict, dict[str, list[str]]]:
    if minio_binary() is None:
        pytest.skip("the artifact bundle has no MinIO binary (run bin/bundle build)")
    import minio

    conf = rendered("lab")["lab"] / "replica01" / "etc/clickhouse-server"
    work = tmp_path_factory.mktemp("chdb-lab")
    with local_minio(work, BUCKETS) as s3:
        users = users_xml(conf / "users.d", work / "users.xml", chdb_session=True)
        config = write_xml(for_chdb(merge_dropins(conf / "config.d"), s3=s3, users=users), work / "config.xml")
        results = run_chdb(config, work / "db", QUERIES)
        client = minio.Minio(s3.url.split("//", 1)[1], access_key=s3.access_key, secret_key=s3.secret_key, secure=False)
        objects = {b: [o.object_name for o in client.list_objects(b, recursive=True)] for b in BUCKETS}
    return results, objects


def rows(results: dict, name: str) -> list[list[str]]:
    assert "error" not in results[name], f"{name}: {results[name].get('error')}"
    return results[name]["rows"]


def test_macros(lab_results):
    assert rows(lab_results[0], "macros") == [["main", "1", "replica01"]]


def test_named_collections(lab_results):
    assert rows(lab_results[0], "collections") == [["kafka_sensor_data"], ["pg_airflow"], ["pg_prod"], ["s3_datasets"]]


def test_disks_and_policy(lab_results):
    disks = {r[0]: r[1:] for r in rows(lab_results[0], "disks")}
    assert disks["s3_cold"][:2] == ["ObjectStorage", "S3"]
    assert disks["backups"][:2] == ["ObjectStorage", "S3"]
    assert disks["backups"][3] == "Plain", "backups must be an s3_plain disk: files stored under their names"
    assert disks["s3_cold_cache"][2] == "1", "s3_cold_cache is not a cache disk"
    assert disks["s3_cold"][2] == "0"
    tiered = [r for r in rows(lab_results[0], "policies") if r[0] == "tiered"]
    assert tiered == [["tiered", "hot", "['default']"], ["tiered", "cold", "['s3_cold_cache']"]]


def test_cluster(lab_results):
    main = [r for r in rows(lab_results[0], "clusters") if r[0] == "main"]
    assert main == [["main", "1", "1", "replica01"], ["main", "1", "2", "replica02"]]


def test_replicated_table_registers_with_macros(lab_results):
    rows(lab_results[0], "create_replicated")
    assert rows(lab_results[0], "replicas") == [["/clickhouse/tables/main/1/rt", "replica01"]]


def test_old_parts_go_to_minio_cold_tier(lab_results):
    results, objects = lab_results
    for step in ("create_tiered", "insert_old", "insert_new"):
        rows(results, step)
    assert rows(results, "parts") == [["default", "10"], ["s3_cold_cache", "1000"]]
    assert objects["clickhouse-cold"], "nothing was written to the clickhouse-cold bucket"
    assert all(name.startswith("replica01/") for name in objects["clickhouse-cold"])


def test_backup_to_minio_and_restore(lab_results):
    results, objects = lab_results
    rows(results, "insert_plain")
    assert rows(results, "backup")[0][1] == "BACKUP_CREATED"
    rows(results, "drop")
    assert rows(results, "restore")[0][1] == "RESTORED"
    assert rows(results, "restored") == [["1010"]]
    # s3_plain: the backup is a directory named after it, with its own metadata (restorable anywhere).
    assert objects["clickhouse-backups"] and all(n.startswith("main/chdb-test/") for n in objects["clickhouse-backups"])
    assert "main/chdb-test/.backup" in objects["clickhouse-backups"]


def test_datasets_collection_reads_and_writes_minio(lab_results):
    results, objects = lab_results
    rows(results, "write_dataset")
    assert rows(results, "read_dataset") == [["7"]]
    assert "chdb-probe.csv" in objects["datasets"]


def test_merge_keeps_a_single_coordination_service(tmp_path: Path):
    conf = rendered("lab")["lab"] / "replica01" / "etc/clickhouse-server"
    merged = for_chdb(merge_dropins(conf / "config.d"))
    assert [z.findtext("implementation") for z in merged.findall("zookeeper")] == ["testkeeper"]
    assert merged.find("keeper_server") is None
    # The unmerged rendering really points at the three Keepers.
    original = merge_dropins(conf / "config.d")
    assert [n.findtext("host") for n in original.find("zookeeper").findall("node")] == [
        "replica01",
        "replica02",
        "keeper03",
    ]
