"""The clickhouse and clickhouse_keeper roles' real configure tasks, rendered for several topologies
(tests/fixtures/clickhouse/*.yml) and checked as parsed XML: cluster, macros, Keeper quorum (ids
unique and stable when hosts are added), storage, named collections, logs, users, file modes."""

from __future__ import annotations

import hashlib
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.clickhouse_helpers import FIXTURES, rendered

TOPOLOGIES = ["lab", "lab_grown", "two_by_two", "single", "five_keepers"]
SECRET_FILES = {"interserver.xml", "remote_servers.xml", "storage.xml", "named_collections.xml", "admin_user.xml"}


def inventory(name: str) -> dict[str, dict]:
    """{group: {host: hostvars}} of a fixture inventory."""
    data = yaml.safe_load((FIXTURES / f"{name}.yml").read_text())["all"]["children"]
    return {group: {h: (v or {}) for h, v in body["hosts"].items()} for group, body in data.items()}


def servers(name: str) -> dict[str, dict]:
    return inventory(name)["clickhouse"]


def keepers(name: str) -> dict[str, dict]:
    return inventory(name)["clickhouse_keeper"]


def xml(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # noqa: S314  (files rendered by the roles under test)


def server_conf(root: Path, host: str, name: str) -> ET.Element:
    return xml(root / host / "etc/clickhouse-server/config.d" / name)


def raft_of(root: Path, host: str, name: str) -> tuple[int, list[tuple[int, str, int]]]:
    """(server_id, [(id, hostname, port)]) of a Keeper member, embedded or standalone."""
    if host in servers(name):
        path = root / host / "etc/clickhouse-server/config.d/keeper_server.xml"
    else:
        path = root / host / "etc/clickhouse-keeper/keeper_config.d/keeper_server.xml"
    keeper = xml(path).find("keeper_server")
    assert keeper.get("replace") == "replace"
    members = [
        (int(s.findtext("id")), s.findtext("hostname"), int(s.findtext("port")))
        for s in keeper.find("raft_configuration").findall("server")
    ]
    assert keeper.findtext("tcp_port_secure") == "9281" and keeper.find("tcp_port") is None
    assert keeper.findtext("raft_configuration/secure") == "true"
    return int(keeper.findtext("server_id")), members


@pytest.fixture(scope="module")
def renders() -> dict[str, Path]:
    return rendered(*TOPOLOGIES)


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_every_file_is_well_formed_xml(renders, name):
    files = list(renders[name].rglob("*.xml"))
    # 14 server drop-ins and clickhouse-client's config.xml per server (+ keeper_server.xml on embedded
    # members), 1 per standalone Keeper; keeper-client's config.xml on every Keeper member.
    expected = (
        sum(15 + (h in keepers(name)) for h in servers(name))
        + len(set(keepers(name)) - set(servers(name)))
        + len(keepers(name))
    )
    assert len(files) == expected
    for path in files:
        assert xml(path).tag == "clickhouse", path


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_every_replica_once_in_remote_servers(renders, name):
    inv = servers(name)
    expected = sorted((int(v["clickhouse_shard"]), h) for h, v in inv.items())
    seen = []
    for host in inv:
        cluster = server_conf(renders[name], host, "remote_servers.xml").find("remote_servers")
        assert cluster.get("replace") == "replace"
        main = cluster.find("main")
        assert main.findtext("secret") == "test-interserver-secret"
        layout = []
        for number, shard in enumerate(main.findall("shard"), start=1):
            assert shard.findtext("internal_replication") == "true"
            layout += [(number, r.findtext("host")) for r in shard.findall("replica")]
            assert all(r.findtext("port") == "9440" for r in shard.findall("replica"))
            assert all(r.findtext("secure") == "1" for r in shard.findall("replica"))
        assert sorted(layout) == expected, host
        assert len({h for _, h in layout}) == len(layout), f"a replica appears twice on {host}"
        seen.append(layout)
    assert all(s == seen[0] for s in seen), "servers disagree about the cluster"


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_macros_match_inventory_and_are_unique(renders, name):
    pairs = []
    for host, hv in servers(name).items():
        macros = server_conf(renders[name], host, "macros.xml").find("macros")
        assert macros.findtext("cluster") == "main"
        assert macros.findtext("shard") == str(hv["clickhouse_shard"])
        assert macros.findtext("replica") == hv["clickhouse_replica"]
        pairs.append((macros.findtext("shard"), macros.findtext("replica")))
    assert len(set(pairs)) == len(pairs)


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_keeper_quorum_ids_unique_and_from_inventory(renders, name):
    inv = keepers(name)
    expected = sorted((int(v["clickhouse_keeper_server_id"]), h, 9234) for h, v in inv.items())
    for host, hv in inv.items():
        server_id, members = raft_of(renders[name], host, name)
        assert server_id == int(hv["clickhouse_keeper_server_id"])
        assert members == expected
        assert len({m[0] for m in members}) == len(members)
    # Embedded on servers of the quorum, absent on servers outside it; standalone elsewhere.
    for host in servers(name):
        embedded = renders[name] / host / "etc/clickhouse-server/config.d/keeper_server.xml"
        assert embedded.exists() == (host in inv), host
        assert not (renders[name] / host / "etc/clickhouse-keeper").exists()
    for host in set(inv) - set(servers(name)):
        assert (renders[name] / host / "etc/systemd/system/clickhouse-keeper.service").exists()


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_servers_use_the_whole_quorum(renders, name):
    expected = sorted(keepers(name))
    for host in servers(name):
        zk = server_conf(renders[name], host, "zookeeper.xml").find("zookeeper")
        nodes = sorted(n.findtext("host") for n in zk.findall("node"))
        assert nodes == expected
        assert {n.findtext("port") for n in zk.findall("node")} == {"9281"}
        assert {n.findtext("secure") for n in zk.findall("node")} == {"1"}


def test_raft_ids_stable_when_hosts_are_added(renders):
    before = {h: raft_of(renders["lab"], h, "lab") for h in keepers("lab")}
    after = {h: raft_of(renders["lab_grown"], h, "lab_grown") for h in keepers("lab_grown")}
    for host, (server_id, members) in before.items():
        assert after[host][0] == server_id, f"{host} changed its Raft id"
        old = {hostname: i for i, hostname, _ in members}
        new = {hostname: i for i, hostname, _ in after[host][1]}
        assert {k: new[k] for k in old} == old
    assert len(after["replica01"][1]) == 5
    # The new hosts sort before the old ones yet got their own ids (never list positions).
    assert after["akeeper04"][0] == 4


def test_lab_storage_collections_logs_metrics(renders):
    root = renders["lab"]
    for host, hv in servers("lab").items():
        replica = hv["clickhouse_replica"]
        storage = server_conf(root, host, "storage.xml")
        disks = storage.find("storage_configuration/disks")
        cold = disks.find("s3_cold")
        assert cold.findtext("type") == "s3"
        assert cold.findtext("endpoint") == f"https://minio01:9000/clickhouse-cold/{replica}/"
        assert cold.findtext("access_key_id") == "clickhouse"
        assert cold.findtext("secret_access_key") == "test-s3-secret"
        cache = disks.find("s3_cold_cache")
        assert cache.findtext("type") == "cache" and cache.findtext("disk") == "s3_cold"
        assert not cache.findtext("path").startswith("/"), "cache path must be relative to the cache base dir"
        assert disks.find("backups").findtext("endpoint") == "https://minio01:9000/clickhouse-backups/main/"
        assert disks.find("backups").findtext("type") == "s3_plain"
        volumes = storage.find("storage_configuration/policies/tiered/volumes")
        assert volumes.findtext("hot/disk") == "default"
        assert volumes.findtext("cold/disk") == "s3_cold_cache"
        assert storage.findtext("backups/allowed_disk") == "backups"

        collections = server_conf(root, host, "named_collections.xml").find("named_collections")
        assert sorted(c.tag for c in collections) == ["kafka_sensor_data", "pg_airflow", "pg_prod", "s3_datasets"]
        pg = {c.tag: c.text for c in collections.find("pg_prod")}
        assert pg == {
            "host": "pg01",
            "port": "5432",
            "user": "clickhouse",
            "password": "test-pg-prod",
            "database": "prod",
        }
        # pg_airflow: the same identity as pg_prod (SELECT on four tables of airflow), never
        # Airflow's owner account: its password is in no file rendered for a ClickHouse host.
        airflow = {c.tag: c.text for c in collections.find("pg_airflow")}
        assert airflow == {**pg, "database": "airflow"}
        for path in (root / host).rglob("*"):
            assert not path.is_file() or "test-pg-airflow" not in path.read_text(errors="replace"), path
        s3 = {c.tag: c.text for c in collections.find("s3_datasets")}
        assert s3 == {
            "url": "https://minio01:9000/datasets/",
            "access_key_id": "clickhouse",
            "secret_access_key": "test-s3-secret",
        }
        # Kafka: SASL over TLS as user clickhouse (kafka_users), the brokers verified against the CA.
        kafka = {c.tag: c.text for c in collections.find("kafka_sensor_data")}
        assert kafka == {
            "kafka_broker_list": "kafka01:9092",
            "kafka_topic_list": "sensor_data",
            "kafka_group_name": "clickhouse_sensor_data",
            "kafka_security_protocol": "sasl_ssl",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "clickhouse",
            "kafka_sasl_password": "test-kafka-clickhouse",
        }
        librdkafka = server_conf(root, host, "kafka.xml").find("kafka")
        assert librdkafka.findtext("ssl_ca_location") == "/etc/chplatform/tls/ca.crt"
        assert librdkafka.findtext("ssl_endpoint_identification_algorithm") == "https"

        logs = server_conf(root, host, "system_logs.xml")
        for table in ("query_log", "query_thread_log", "part_log", "error_log", "session_log", "metric_log",
                      "asynchronous_metric_log", "text_log", "trace_log"):  # fmt: skip
            node = logs.find(table)
            assert node is not None, table
            assert node.findtext("ttl") == "event_date + INTERVAL 30 DAY DELETE", table

        prom = server_conf(root, host, "prometheus.xml").find("prometheus")
        assert prom.findtext("port") == "9363" and prom.findtext("endpoint") == "/metrics"
        dirs = server_conf(root, host, "user_directories.xml").find("user_directories")
        assert dirs.findtext("replicated/zookeeper_path") == "/clickhouse/access"
        assert dirs.findtext("users_xml/path") == "users.xml"


def test_lab_users_locked_down(renders):
    for host in servers("lab"):
        users = renders["lab"] / host / "etc/clickhouse-server/users.d"
        default = xml(users / "default_user.xml").find("users/default")
        assert sorted(ip.text for ip in default.find("networks")) == ["127.0.0.1", "::1"]
        assert default.findtext("profile") == "readonly"
        admin = xml(users / "admin_user.xml").find("users/admin")
        assert admin.findtext("password_sha256_hex") == hashlib.sha256(b"test-admin-password").hexdigest()
        assert admin.findtext("access_management") == "1"
        assert admin.findtext("named_collection_control") == "1"
        assert "test-admin-password" not in (users / "admin_user.xml").read_text()


def test_lab_file_modes(renders):
    for host in servers("lab"):
        conf = renders["lab"] / host / "etc/clickhouse-server"
        for path in [*conf.glob("config.d/*.xml"), *conf.glob("users.d/*.xml")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o640 if path.name in SECRET_FILES else 0o644), f"{path}: {oct(mode)}"
        unit = (renders["lab"] / host / "etc/systemd/system/clickhouse-server.service").read_text()
        assert "ExecStart=/usr/bin/clickhouse-server --config=" in unit and "User=root" in unit


def test_the_unit_gives_libpq_the_platforms_tls_parameters(renders):
    """ClickHouse 26.3's PostgreSQL named collections have no TLS keys: its libpq reads them from the
    unit's environment (tests/test_postgresql_tls.py runs chdb with the same environment)."""
    for host in servers("lab"):
        unit = (renders["lab"] / host / "etc/systemd/system/clickhouse-server.service").read_text()
        env = [line for line in unit.splitlines() if line.startswith("Environment=PG")]
        print(f"{host}: {env}")
        assert env == ["Environment=PGSSLMODE=verify-full", "Environment=PGSSLROOTCERT=/etc/chplatform/tls/ca.crt"]


def test_two_by_two_layout(renders):
    main = server_conf(renders["two_by_two"], "s2r2", "remote_servers.xml").find("remote_servers/main")
    layout = [[r.findtext("host") for r in s.findall("replica")] for s in main.findall("shard")]
    assert layout == [["s1r1", "s1r2"], ["s2r1", "s2r2"]]


STANDALONE_KEEPER_TOPOLOGIES = [n for n in TOPOLOGIES if set(keepers(n)) - set(servers(n))]


@pytest.mark.parametrize("name", STANDALONE_KEEPER_TOPOLOGIES)
def test_standalone_keeper_exposes_its_prometheus_endpoint(renders, name):
    """A Keeper outside the servers serves its own metrics on the contract's port (9363), as the servers do."""
    for host in set(keepers(name)) - set(servers(name)):
        config = xml(renders[name] / host / "etc/clickhouse-keeper/keeper_config.d/keeper_server.xml")
        prom = config.find("prometheus")
        assert prom is not None, f"{host}: no <prometheus> section"
        assert {child.tag: child.text for child in prom} == {
            "endpoint": "/metrics",
            "port": "9363",
            "metrics": "true",
            "events": "true",
            "asynchronous_metrics": "true",
        }, host
        # The endpoint listens where Keeper does: its listen_host entries, never only the loopback.
        listen = {element.text for element in config.findall("listen_host")}
        assert listen and not listen <= {"127.0.0.1", "::1"}, f"{host}: listen_host {listen}"


def test_a_replica_added_to_a_shard_shares_its_peers_keeper_path(renders):
    """A third replica added to shard 1 (topology lab_grown): the same shard macro as its peers and
    its own replica name, so its Replicated* tables, created by the schema role from the same
    migrations (/clickhouse/tables/{shard}/...), share the peers' Keeper path and fetch their parts;
    every server's cluster lists it; the old replicas' macros did not change."""
    grown = {h: server_conf(renders["lab_grown"], h, "macros.xml").find("macros") for h in servers("lab_grown")}
    before = {h: server_conf(renders["lab"], h, "macros.xml").find("macros") for h in servers("lab")}
    new = grown["areplica03"]
    assert new.findtext("shard") == grown["replica01"].findtext("shard") == "1"
    assert new.findtext("replica") not in {m.findtext("replica") for h, m in grown.items() if h != "areplica03"}
    for host, macros in before.items():
        assert ET.tostring(grown[host]) == ET.tostring(macros), f"{host}'s macros changed"
    for host in servers("lab_grown"):
        cluster = server_conf(renders["lab_grown"], host, "remote_servers.xml").find("remote_servers/main")
        hosts = {r.findtext("host") for r in cluster.iter("replica")}
        assert "areplica03" in hosts, (host, hosts)


def test_a_new_replica_fills_from_its_peer_on_a_live_server():
    pytest.skip(
        "ClickHouse server not installed on this machine (docs/operations.md, 'Adding a ClickHouse replica'): "
        "the fetch of the parts from the peer replica is not run; its configuration and Keeper path are checked above"
    )
