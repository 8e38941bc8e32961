"""playbooks/upgrade.yml's parts that run without the lab: the components a run applies
(chplatform_components), the validation scoped to them, and Kafka's health gate (kafka-health,
rendered from the role's template) against a real broker. The upgrade itself, under load, is the
kafka scenario's last test."""

from __future__ import annotations

import subprocess
import sys

import jinja2
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.chplatform.platform.plugins.filter.components import KNOWN, components

from tests.conftest import ROOT, local_inventory, run_playbook
from tests.services import create_topic


def test_all_is_every_component_in_site_order():
    assert components("all") == KNOWN
    assert components(None) == KNOWN
    assert KNOWN.index("clickhouse_keeper") < KNOWN.index("clickhouse")


@pytest.mark.parametrize("value", ["kafka, postgresql", ["postgresql", "kafka"], "kafka,postgresql,"])
def test_a_list_or_a_string_in_site_order(value):
    assert components(value) == ["postgresql", "kafka"]


@pytest.mark.parametrize("value", ["kafak", ["kafka", "zookeeper"], ""])
def test_an_unknown_component_names_the_known_ones(value):
    with pytest.raises(AnsibleFilterError, match="use all, or some of minio, postgresql, kafka") as err:
        components(value)
    assert "-e chplatform_components=kafka" in str(err.value)


def test_every_component_play_can_be_left_out():
    """Each component playbook ends its play at once when the run names other components."""
    for name in KNOWN:
        text = (ROOT / "playbooks" / f"{name}.yml").read_text()
        guard = f"'{name}' not in (chplatform_components | default('all') | chplatform.platform.components)"
        assert guard in text, name


@pytest.fixture(scope="module")
def kafka_only(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("kafka-only")
    return local_inventory(
        tmp,
        {"kafka": {"k1": {"kafka_node_id": 1}}},
        kafka_artifact_sha256="0" * 64,
        **{f"vault_kafka_{u}_password": f"test-{u}-pw" for u in ("clickhouse", "producer", "airflow", "monitoring")},
    )


def test_a_run_for_kafka_checks_kafka_only(kafka_only):
    """An inventory with only group kafka: the whole-platform check refuses it (no PostgreSQL, …); a run
    for Kafka checks Kafka's inputs, as the role does, and passes."""
    whole = run_playbook(ROOT / "playbooks/validate.yml", "-i", kafka_only)
    assert whole.returncode != 0
    assert "group postgres on the inventory is missing" in whole.stdout + whole.stderr
    scoped = run_playbook(ROOT / "playbooks/validate.yml", "-i", kafka_only, "-e", "chplatform_components=kafka")
    assert scoped.returncode == 0, scoped.stdout[-3000:] + scoped.stderr[-2000:]


def test_an_unknown_component_stops_the_run_before_any_host(kafka_only):
    run = run_playbook(ROOT / "playbooks/upgrade.yml", "-i", kafka_only, "-e", "chplatform_components=kafak")
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "chplatform_components names kafak: use all, or some of" in out, out[-3000:]
    # The validation play is the first; the preflight (the first to reach a host) never started.
    assert "Log in over SSH" not in out


@pytest.fixture(scope="module")
def kafka_health(tmp_path_factory) -> list[str]:
    """The role's health check, rendered as the role renders it, run with this venv's kafka-python."""
    template = (ROOT / "roles/kafka/templates/kafka-health.py.j2").read_text()
    script = tmp_path_factory.mktemp("health") / "kafka-health"
    script.write_text(jinja2.Template(template).render(kafka_admin_venv=sys.prefix, ansible_managed="test"))
    return [sys.executable, str(script)]


def test_the_gate_passes_a_healthy_voter_with_every_partition_in_sync(kafka_service, kafka_health):
    create_topic(kafka_service, "gate_in_sync", partitions=3)
    flags = ["--node-id", "1", "--broker", "--controller", "--in-sync"]
    run = subprocess.run(
        [*kafka_health, "--bootstrap", kafka_service.bootstrap, *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "node 1 healthy, every partition in sync"


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--node-id", "7", "--broker"], "broker 7 not registered or fenced; brokers: [1]"),
        (["--node-id", "7", "--controller"], "node 7 is not a voter; voters: [1], observers: []"),
    ],
)
def test_the_gate_refuses_a_node_the_cluster_does_not_know(kafka_service, kafka_health, flags, says):
    run = subprocess.run(
        [*kafka_health, "--bootstrap", kafka_service.bootstrap, *flags, "--in-sync"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.strip() == says
