"""Validation before any host is touched: bad inventories through `ansible-playbook site.yml`.

Each case starts from inventories/production.example (plain Debian VMs over SSH) with every host at
127.0.0.1 on a closed port, so nothing can leave the machine and any attempt to reach a host would
show as UNREACHABLE. The run must fail in the validation play on the controller, name the variable
and the fix on one line, and no task may have run on any platform host."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_concurrently, run_playbook

EXAMPLE = ROOT / "inventories" / "production.example"
CONTRACT = yaml.safe_load((ROOT / "roles/platform/defaults/main.yml").read_text())
RECAP = re.compile(r"^(\S+)\s*:\s*ok=\d+\s+changed=\d+\s+unreachable=\d+\s+failed=\d+", re.M)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secret_value(name: str) -> str:
    if name == "vault_airflow_fernet_key":
        return "A" * 43 + "="
    return f"test-{name}-0123456789abcdefghijklmnopqrstuvwxyz"[:40]


@pytest.fixture
def inventory(tmp_path):
    return make_inventory(tmp_path)


def make_inventory(tmp_path: Path):
    """A valid production-shaped inventory (a directory) and helpers to break it."""
    inv = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv)
    port = closed_port()
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    hosts["all"]["vars"].update(ansible_port=port)
    for group in hosts["all"]["children"].values():
        for hv in group["hosts"].values():
            if hv and "ansible_host" in hv:
                hv["ansible_host"] = "127.0.0.1"
    # The vault, in plain text for the test (the example is encrypted with 'example').
    (inv / "group_vars/all/vault.yml").write_text(
        yaml.safe_dump({name: secret_value(name) for name in CONTRACT["platform_secrets"]})
    )
    # What the example leaves for the operator to fill in.
    for relpath, name, value in (("kafka/kafka.yml", "kafka_artifact_sha256", "a" * 64),
                                 ("minio/minio.yml", "minio_artifact_sha256", "b" * 64),
                                 ("airflow/airflow.yml", "airflow_statsd_exporter_sha256", "c" * 64)):  # fmt: skip
        path = inv / "group_vars" / relpath
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), name: value}))

    class Inventory:
        path = inv
        data = hosts

        def save(self) -> Path:
            (inv / "hosts.yml").write_text(yaml.safe_dump(self.data))
            return inv

        def group(self, name: str) -> dict:
            return self.data["all"]["children"].setdefault(name, {"hosts": {}})["hosts"]

        def set_vars(self, relpath: str, **values) -> None:
            path = inv / "group_vars" / relpath
            data = yaml.safe_load(path.read_text()) if path.exists() else {}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump({**(data or {}), **values}))

        def drop_secret(self, name: str) -> None:
            vault = inv / "group_vars/all/vault.yml"
            data = yaml.safe_load(vault.read_text())
            del data[name]
            vault.write_text(yaml.safe_dump(data))

    return Inventory()


def run_site(inv: Path):
    result = run_playbook("site.yml", "-i", str(inv), timeout=300)
    return result, result.stdout + result.stderr


def assert_refused_before_any_host(result, out: str) -> None:
    assert result.returncode != 0, out[-3000:]
    assert "nothing was changed on any host" in out, out[-3000:]
    assert "UNREACHABLE" not in out and "Gathering Facts" not in out, out[-3000:]
    # The recap lists the controller only: no task ran on any platform host.
    assert RECAP.findall(out) == ["localhost"], RECAP.findall(out)


def problem_lines(out: str) -> list[str]:
    return sorted({line.strip()[2:] for line in out.splitlines() if line.strip().startswith("- ") and " on " in line})


def test_the_example_inventory_passes_when_filled_in(inventory):
    """The base of every case is valid: validation passes, and the next play tries the hosts."""
    result = run_playbook("playbooks/validate.yml", "-i", str(inventory.save()))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "inventory checks passed" in out or "ok: [localhost]" in out


def four_keepers(inv):
    inv.group("clickhouse_keeper")["ch-keeper04.example.internal"] = {
        "ansible_host": "127.0.0.1",
        "clickhouse_keeper_server_id": 4,
    }


def reused_keeper_id(inv):
    inv.group("clickhouse_keeper")["ch-keeper03.example.internal"]["clickhouse_keeper_server_id"] = 2


def duplicate_replica(inv):
    inv.group("clickhouse")["ch-replica02.example.internal"]["clickhouse_replica"] = "replica01"


def shard_without_replicas(inv):
    inv.group("clickhouse")["ch-replica02.example.internal"]["clickhouse_shard"] = 3


def topic_rf_over_brokers(inv):
    inv.set_vars("kafka/kafka.yml", kafka_topics_extra=[{"name": "audit", "partitions": 1, "replication_factor": 3}])


def bad_bucket(inv):
    inv.set_vars("minio/minio.yml", minio_buckets_extra=[{"name": "Bad_Bucket"}])


def http_port_not_a_number(inv):
    inv.set_vars("all/main.yml", clickhouse_http_port="abc")


def deleted_secret(inv):
    inv.drop_secret("vault_minio_airflow_secret_key")


def clickhouse_and_minio_on_one_host(inv):
    # The plain-text native port (9000, MinIO's too) listens only when kept for a migration.
    inv.set_vars("all/main.yml", clickhouse_plaintext_ports=True)
    inv.group("minio").clear()
    inv.group("minio")["ch-replica01.example.internal"] = None


def empty_group(inv):
    inv.group("superset").clear()


def airflow_and_superset_on_one_host(inv):
    # Each UI's nginx (platform_web_tls) wants web_https_port and web_http_port on its host.
    inv.group("superset").clear()
    inv.group("superset")["airflow01.example.internal"] = None


def contract_value_per_group(inv):
    inv.set_vars("clickhouse/clickhouse.yml", clickhouse_http_port=8124)


def host_reference_outside(inv):
    inv.set_vars("superset/superset.yml", superset_clickhouse_host="ch-replica09.example.internal")


def receiver_without_url(inv):
    inv.set_vars("monitoring/prometheus.yml", prometheus_alertmanager_receivers=[{"name": "ops-webhook"}])


def route_to_unknown_receiver(inv):
    inv.set_vars("monitoring/prometheus.yml", prometheus_alertmanager_routes={"critical": "pager"})


def exporter_off_but_scraped(inv):
    inv.set_vars("postgres/postgresql.yml", postgresql_exporter_enabled=False)


def exporter_port_collision(inv):
    inv.set_vars("all/main.yml", postgres_exporter_port=5432)


def hostssl_without_tls(inv):
    inv.set_vars("all/main.yml", postgresql_ssl=False)


CASES = [
    (four_keepers, "group clickhouse_keeper on the inventory is 4 hosts", "needs an odd number"),
    (
        reused_keeper_id,
        "clickhouse_keeper_server_id on ch-keeper03.example.internal, ch-replica02.example.internal is 2",
        "give each Keeper node its own id",
    ),
    (
        duplicate_replica,
        "clickhouse_replica on ch-replica01.example.internal, ch-replica02.example.internal is 'replica01'",
        "give each replica of a shard its own name",
    ),
    (shard_without_replicas, "shard 2 on group clickhouse is empty", "add a host with clickhouse_shard: 2"),
    (
        topic_rf_over_brokers,
        "kafka_topics[audit].replication_factor on group kafka is 3",
        "lower it to 1 or add brokers",
    ),
    (bad_bucket, "minio_buckets[Bad_Bucket].name on group minio is 'Bad_Bucket'", "rename it, e.g. 'bad-bucket'"),
    (http_port_not_a_number, "clickhouse_http_port on ch-replica01.example.internal is 'abc'", "it must be an integer"),
    (
        deleted_secret,
        "vault_minio_airflow_secret_key on the inventory is undefined",
        "add it to group_vars/all/vault.yml",
    ),
    (
        clickhouse_and_minio_on_one_host,
        "port 9000 on ch-replica01.example.internal is taken twice",
        "clickhouse (clickhouse_tcp_port) and minio (minio_api_address)",
    ),
    (empty_group, "group superset on the inventory is empty", "at least one host in group superset"),
    (
        airflow_and_superset_on_one_host,
        "port 443 on airflow01.example.internal is taken twice",
        "airflow (web_https_port) and superset (web_https_port)",
    ),
    (contract_value_per_group, "clickhouse_http_port on", "set it once in group_vars/all"),
    (
        receiver_without_url,
        "prometheus_alertmanager_receivers[ops-webhook] on monitor01.example.internal",
        "set webhook_url (http:// or https://) or email_to",
    ),
    (
        route_to_unknown_receiver,
        "prometheus_alertmanager_routes.critical on monitor01.example.internal is 'pager'",
        "route to one of prometheus_alertmanager_receivers: ops-webhook, ops-mail",
    ),
    (
        exporter_off_but_scraped,
        "postgresql_exporter_enabled on pg01.example.internal is False",
        "turn postgresql_exporter_enabled back on",
    ),
    (
        exporter_port_collision,
        "port 5432 on pg01.example.internal is taken twice",
        "postgresql (postgresql_port) and postgresql (postgres_exporter_port)",
    ),
    (
        hostssl_without_tls,
        "postgresql_hba_connection_type on pg01.example.internal is 'hostssl'",
        "set postgresql_ssl: true",
    ),
    (
        host_reference_outside,
        "superset_clickhouse_host on superset01.example.internal is 'ch-replica09.example.internal'",
        "names no host of the inventory",
    ),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> dict:
    """Every case's site.yml run, two at a time (tests/conftest.py run_concurrently)."""

    def case(mutate):
        inventory = make_inventory(tmp_path_factory.mktemp(mutate.__name__))
        mutate(inventory)
        return run_site(inventory.save())

    return run_concurrently({c[0].__name__: (lambda c=c: case(c[0])) for c in CASES})


@pytest.mark.parametrize(("mutate", "line", "fix"), CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_inventory_is_refused_before_any_host_with_its_fix(refusals, mutate, line, fix):
    result, out = refusals[mutate.__name__]
    assert_refused_before_any_host(result, out)
    matching = [p for p in problem_lines(out) if p.startswith(line)]
    assert matching, f"no problem line starts with {line!r}; got:\n" + "\n".join(problem_lines(out))
    assert fix in matching[0], matching[0]


def test_five_problems_are_reported_in_one_run(inventory):
    for mutate in (four_keepers, duplicate_replica, topic_rf_over_brokers, bad_bucket, deleted_secret):
        mutate(inventory)
    result, out = run_site(inventory.save())
    assert_refused_before_any_host(result, out)
    lines = problem_lines(out)
    for start in (
        "group clickhouse_keeper",
        "clickhouse_replica on ch-replica01.example.internal, ch-replica02",
        "kafka_topics[audit].replication_factor",
        "minio_buckets[Bad_Bucket].name",
        "vault_minio_airflow_secret_key",
    ):
        assert any(p.startswith(start) for p in lines), f"{start} missing from:\n" + "\n".join(lines)
    assert len(lines) == 5, "\n".join(lines)


@pytest.mark.parametrize("playbook", ["site.yml", "playbooks/rotate_certificates.yml"])
def test_a_run_limited_to_some_hosts_is_validated_too(inventory, playbook):
    """--limit leaves the controller's validation play out; validate.yml's second play checks the
    whole inventory then, once, on the controller, before any host is contacted."""
    reused_keeper_id(inventory)
    result = run_playbook(playbook, "-i", str(inventory.save()), "--limit", "kafka", timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "nothing was changed on any host" in out and "clickhouse_keeper_server_id" in out, out[-3000:]
    assert "UNREACHABLE" not in out and "Log in over SSH" not in out and "Gathering Facts" not in out, out[-3000:]


def test_firewall_inputs_are_refused_before_any_host(inventory):
    """The host firewall (role firewall): no admin range (SSH would be open to no one), a client
    that is no group, a port nobody may reach. One run, one line each, on the controller."""
    clients = yaml.safe_load((ROOT / "roles/firewall/defaults/main.yml").read_text())["firewall_clients"]
    del clients["kafka_port"]
    clients["superset_port"] = ["admin", "bi_users"]
    inventory.set_vars("all/main.yml", firewall_admin_sources=[], firewall_clients=clients)
    result, out = run_site(inventory.save())
    assert_refused_before_any_host(result, out)
    lines = problem_lines(out)
    print("\n".join(lines))
    for start, fix in (
        ("firewall_admin_sources on the inventory is []", "set the addresses or CIDR ranges"),
        ("firewall_clients.superset_port on the inventory is 'bi_users'", "name an inventory group or 'admin'"),
        ("firewall_clients on kafka01.example.internal is no kafka_port", "add `kafka_port: [<groups>]`"),
    ):
        matching = [p for p in lines if p.startswith(start)]
        assert matching and fix in matching[0], f"{start} / {fix} missing from:\n" + "\n".join(lines)
    assert len(lines) == 3, "\n".join(lines)


def test_the_shipped_example_is_refused_until_its_placeholders_are_replaced(tmp_path):
    """production.example as shipped: the vault (password 'example') still holds placeholders."""
    pw = tmp_path / "pw"
    pw.write_text("example\n")
    result = run_playbook("site.yml", "-i", str(EXAMPLE), "--vault-password-file", str(pw))
    out = result.stdout + result.stderr
    assert_refused_before_any_host(result, out)
    assert "vault_clickhouse_admin_password on the inventory is the placeholder CHANGE-ME" in out
    assert "kafka_artifact_sha256" in out and "64 hex digits" in out


def test_no_secret_value_reaches_the_output(inventory):
    inventory.set_vars("superset/superset.yml", superset_secret_key="short-secret-value")  # noqa: S106  a test value
    result, out = run_site(inventory.save())
    assert result.returncode != 0
    assert "superset_secret_key on superset01.example.internal is a secret of 18 characters" in out
    assert "short-secret-value" not in out
    for name in CONTRACT["platform_secrets"]:
        assert secret_value(name) not in out, name
