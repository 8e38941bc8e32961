"""Checks of the clickhouse and clickhouse_keeper roles from the hosts of the scenario.

Checks that need running ClickHouse processes are skipped with the reason "ClickHouse packages not
available" ONLY when the bundle manifest says the packages are unavailable (never reported as passed).
"""

import json
import os
import time
import xml.etree.ElementTree as ET

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("all")

SERVERS = {"chreplica01": ("1", "replica01"), "chreplica02": ("1", "replica02")}
KEEPERS = {"chreplica01": 1, "chreplica02": 2, "chkeeper03": 3}
BUNDLE = os.path.join(os.environ.get("CHPLATFORM_CACHE", "/var/cache/chplatform"), "bundle")
with open(os.path.join(BUNDLE, "manifest.json")) as _f:
    PACKAGES_AVAILABLE = bool(json.load(_f)["clickhouse"].get("available"))
SKIP_REASON = "ClickHouse packages not available"
needs_packages = pytest.mark.skipif(not PACKAGES_AVAILABLE, reason=SKIP_REASON)

CONF = "/etc/clickhouse-server"
TLS = "/etc/chplatform/tls"
SECRET = {"interserver.xml", "remote_servers.xml", "storage.xml", "named_collections.xml", "admin_user.xml"}
PLAIN = {
    "network.xml",
    "tls.xml",
    "kafka.xml",
    "macros.xml",
    "zookeeper.xml",
    "system_logs.xml",
    "prometheus.xml",
    "user_directories.xml",
    "keeper_server.xml",
    "default_user.xml",
}


def me(host):
    return host.backend.get_hostname()


def xml(host, path):
    return ET.fromstring(host.file(path).content_string)  # noqa: S314  (files the roles rendered)


def raft(host, path):
    keeper = xml(host, path).find("keeper_server")
    members = [(int(s.findtext("id")), s.findtext("hostname"), s.findtext("port")) for s in keeper.iter("server")]
    return int(keeper.findtext("server_id")), members


def keeper_config_path(name):
    if name in SERVERS:
        return f"{CONF}/config.d/keeper_server.xml"
    return "/etc/clickhouse-keeper/keeper_config.d/keeper_server.xml"


# ---------------------------------------------------------------- checks that run without packages


def test_service_account(host):
    user = host.user("clickhouse")
    assert user.exists and user.group == "clickhouse" and user.uid < 1000
    assert user.shell == "/bin/false"


def test_config_files_owner_mode_and_valid_xml(host):
    name = me(host)
    if name in SERVERS:
        files = {}
        for sub, names in (("config.d", SECRET | PLAIN), ("users.d", SECRET | PLAIN)):
            listed = set(host.check_output(f"ls {CONF}/{sub}").split())
            files.update({f"{CONF}/{sub}/{f}": f for f in listed & names})
        assert len(files) == 15
        for path, fname in files.items():
            f = host.file(path)
            assert f.user == "root" and f.group == "clickhouse", path
            assert f.mode == (0o640 if fname in SECRET else 0o644), f"{path}: {oct(f.mode)}"
            assert host.run(f"xmllint --noout {path}").rc == 0, path
        assert not host.file("/etc/clickhouse-keeper").exists
    else:
        path = "/etc/clickhouse-keeper/keeper_config.d/keeper_server.xml"
        assert host.file(path).group == "clickhouse" and host.file(path).mode == 0o644
        assert host.run(f"xmllint --noout {path}").rc == 0
        assert not host.file(CONF).exists


def test_secrets_not_world_readable(host):
    if me(host) not in SERVERS:
        pytest.skip("no server configuration on a standalone Keeper host")
    out = host.check_output(f"find {CONF} -type f -perm -o=r -name '*.xml'")
    for fname in SECRET:
        assert fname not in out


def test_macros_per_host(host):
    name = me(host)
    if name not in SERVERS:
        pytest.skip("macros exist only on servers")
    macros = xml(host, f"{CONF}/config.d/macros.xml").find("macros")
    shard, replica = SERVERS[name]
    got = (macros.findtext("cluster"), macros.findtext("shard"), macros.findtext("replica"))
    assert got == ("main", shard, replica)


def test_raft_configuration_lists_the_quorum(host):
    name = me(host)
    server_id, members = raft(host, keeper_config_path(name))
    assert server_id == KEEPERS[name]
    assert members == [(1, "chreplica01", "9234"), (2, "chreplica02", "9234"), (3, "chkeeper03", "9234")]


def test_servers_point_at_the_quorum_and_cluster(host):
    if me(host) not in SERVERS:
        pytest.skip("server configuration only")
    zk = xml(host, f"{CONF}/config.d/zookeeper.xml").find("zookeeper")
    assert [(n.findtext("host"), n.findtext("port"), n.findtext("secure")) for n in zk.findall("node")] == [
        ("chreplica01", "9281", "1"),
        ("chreplica02", "9281", "1"),
        ("chkeeper03", "9281", "1"),
    ]
    shard = xml(host, f"{CONF}/config.d/remote_servers.xml").find("remote_servers/main/shard")
    assert [(r.findtext("host"), r.findtext("port"), r.findtext("secure")) for r in shard.findall("replica")] == [
        ("chreplica01", "9440", "1"),
        ("chreplica02", "9440", "1"),
    ]


def test_tls_files_installed_for_the_service_user(host):
    service = "clickhouse" if me(host) in SERVERS else "clickhouse-keeper"
    key = host.file(f"{TLS}/{service}/host.key")
    assert key.is_file and key.user == "clickhouse" and key.mode == 0o600
    assert host.file(f"{TLS}/{service}/host.crt").is_file
    verified = host.run(f"openssl verify -CAfile {TLS}/ca.crt {TLS}/{service}/host.crt")
    assert verified.rc == 0 and verified.stdout.strip().endswith(": OK"), verified.stdout + verified.stderr


def test_units_verified(host):
    name = me(host)
    unit = "clickhouse-server" if name in SERVERS else "clickhouse-keeper"
    path = f"/etc/systemd/system/{unit}.service"
    assert host.file(path).contains("^User=clickhouse$")
    if PACKAGES_AVAILABLE:
        cmd = f"systemd-analyze verify {path}"
    else:
        # Everything but the (absent) ExecStart binary, as the role's validate does.
        cmd = (
            f"d=$(mktemp -d) && sed 's#^ExecStart=[^ ]*#ExecStart=/bin/true#' {path} > $d/{unit}.service"
            f" && systemd-analyze verify $d/{unit}.service; rc=$?; rm -rf $d; exit $rc"
        )
    result = host.run(cmd)
    assert result.rc == 0, result.stderr


def test_data_directories(host):
    name = me(host)
    path = "/var/lib/clickhouse/coordination" if name in SERVERS else "/var/lib/clickhouse-keeper/coordination"
    d = host.file(path)
    assert d.is_directory and d.user == "clickhouse" and d.mode == 0o750


# ---------------------------------------------------------------- checks that need running ClickHouse


def keeper_cmd(host, word):
    """A four-letter word to the host's Keeper over TLS, under its name, verified against the platform's CA."""
    name = me(host)
    return host.run(
        f"printf {word} | timeout 5 openssl s_client -quiet -verify_return_error -CAfile {TLS}/ca.crt"
        f" -verify_hostname {name} -connect {name}:9281 2>/dev/null"
    ).stdout


# The default user answers on the loopback only, which the certificate does not name: encrypted, unverified.
CLIENT = "clickhouse-client --host 127.0.0.1 --secure --port 9440 --accept-invalid-certificate"


def query(host, sql, user="default"):
    return host.check_output(f'{CLIENT} --user {user} --query "{sql}"')


@needs_packages
def test_keeper_quorum_has_one_leader(host):
    if me(host) != "chreplica01":
        pytest.skip("checked once, from chreplica01")
    states = []
    for name in KEEPERS:
        peer = testinfra.get_host(f"docker://{name}")
        assert keeper_cmd(peer, "ruok") == "imok"
        mntr = dict(line.split("\t", 1) for line in keeper_cmd(peer, "mntr").splitlines() if "\t" in line)
        states.append(mntr["zk_server_state"])
    assert sorted(states) == ["follower", "follower", "leader"]


@needs_packages
def test_both_servers_answer(host):
    for name in SERVERS:
        peer = testinfra.get_host(f"docker://{name}")
        assert peer.check_output(f"curl -fsS --cacert {TLS}/ca.crt https://{name}:8443/ping") == "Ok."
        # and from the other host, over the network, verified against the platform's CA
        assert host.check_output(f"curl -fsS --cacert {TLS}/ca.crt https://{name}:8443/ping") == "Ok."
        # the plain-text ports are closed
        for port in (8123, 9000, 9009):
            assert peer.run(f"curl -sS -m 3 http://127.0.0.1:{port}/").rc != 0, port


@needs_packages
def test_system_clusters_matches_inventory(host):
    if me(host) not in SERVERS:
        pytest.skip("servers only")
    sql = "SELECT shard_num, replica_num, host_name FROM system.clusters WHERE cluster = 'main' FORMAT TSV"
    rows = query(host, sql)
    assert rows.splitlines() == ["1\t1\tchreplica01", "1\t2\tchreplica02"]


@needs_packages
def test_row_replicates_and_cluster_survives_keeper03_stop(host):
    if me(host) != "chreplica01":
        pytest.skip("checked once, from chreplica01")
    r1 = testinfra.get_host("docker://chreplica01")
    r2 = testinfra.get_host("docker://chreplica02")
    k3 = testinfra.get_host("docker://chkeeper03")
    password = RUNNER.get_variables("chreplica01")["clickhouse_admin_password"]

    def q(h, sql):
        return h.check_output(f"{CLIENT} --user admin --password '{password}' --query \"{sql}\"")

    q(r1, "CREATE DATABASE IF NOT EXISTS molecule ON CLUSTER main")
    q(
        r1,
        "CREATE TABLE IF NOT EXISTS molecule.t ON CLUSTER main (id UInt64) ENGINE = "
        "ReplicatedMergeTree('/clickhouse/tables/{shard}/molecule/t', '{replica}') ORDER BY id",
    )
    q(r1, "INSERT INTO molecule.t VALUES (1)")
    q(r2, "SYSTEM SYNC REPLICA molecule.t")
    assert q(r2, "SELECT count() FROM molecule.t WHERE id = 1") == "1"
    k3.check_output("systemctl stop clickhouse-keeper")
    try:
        time.sleep(5)
        q(r2, "INSERT INTO molecule.t VALUES (2)")
        q(r1, "SYSTEM SYNC REPLICA molecule.t")
        assert q(r1, "SELECT count() FROM molecule.t") == "2"
    finally:
        k3.check_output("systemctl start clickhouse-keeper")
