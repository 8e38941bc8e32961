"""Unit tests of the kafka_topic module's planning logic and of the role's id filter."""

import base64
import re

import pytest
from ansible_collections.chplatform.platform.plugins.filter import kafka as kafka_ids
from ansible_collections.chplatform.platform.plugins.modules import kafka_topic

plan_topic = kafka_topic.plan_topic
PlanError = kafka_topic.PlanError

EXISTING = {"partitions": 3, "replication_factor": 3, "configs": {"retention.ms": "604800000"}}


def test_missing_topic_is_created_with_its_configs():
    plan = plan_topic("t", "present", None, partitions=3, replication_factor=3, configs={"retention.ms": 1000})
    assert plan.create and plan.changed
    assert plan.set_configs == {"retention.ms": "1000"}
    assert plan.actions[0].startswith("create topic t (partitions=3, replication_factor=3)")


def test_identical_topic_is_unchanged():
    plan = plan_topic("t", "present", EXISTING, partitions=3, replication_factor=3, configs={"retention.ms": 604800000})
    assert not plan.changed
    assert plan.actions == []


def test_values_compare_as_kafka_strings():
    current = {"partitions": 1, "replication_factor": 1, "configs": {"preallocate": "true", "segment.ms": "100"}}
    plan = plan_topic("t", "present", current, configs={"preallocate": True, "segment.ms": 100})
    assert not plan.changed


def test_partitions_grow():
    plan = plan_topic("t", "present", EXISTING, partitions=6, replication_factor=3, configs={"retention.ms": 604800000})
    assert plan.partitions_to == 6
    assert plan.actions == ["increase partitions of t 3 -> 6"]


def test_partitions_never_shrink():
    with pytest.raises(PlanError, match="cannot decrease them to 2"):
        plan_topic("t", "present", EXISTING, partitions=2, configs={"retention.ms": 604800000})


def test_replication_factor_change_is_refused():
    with pytest.raises(PlanError, match="replication factor 3; changing it to 2 needs a partition reassignment"):
        plan_topic("t", "present", EXISTING, partitions=3, replication_factor=2)


def test_changed_config_is_set_and_unlisted_override_reset():
    current = {"partitions": 3, "replication_factor": 3, "configs": {"retention.ms": "1", "cleanup.policy": "compact"}}
    plan = plan_topic("t", "present", current, configs={"retention.ms": 2, "compression.type": "zstd"})
    assert plan.set_configs == {"compression.type": "zstd", "retention.ms": "2"}
    assert plan.delete_configs == ["cleanup.policy"]
    assert plan.partitions_to is None


def test_unlisted_override_kept_without_purge():
    current = {"partitions": 3, "replication_factor": 3, "configs": {"cleanup.policy": "compact"}}
    plan = plan_topic("t", "present", current, configs={}, purge_configs=False)
    assert not plan.changed


def test_absent_topic_deleted_only_when_it_exists():
    assert plan_topic("t", "absent", EXISTING).delete
    gone = plan_topic("t", "absent", None)
    assert not gone.delete and not gone.changed


def test_unspecified_partitions_and_rf_are_not_checked():
    assert not plan_topic("t", "present", EXISTING, configs={"retention.ms": "604800000"}).changed


@pytest.mark.parametrize(("partitions", "rf"), [(0, 1), (1, 0)])
def test_zero_counts_are_refused(partitions, rf):
    with pytest.raises(PlanError, match="must be at least 1"):
        plan_topic("t", "present", None, partitions=partitions, replication_factor=rf)


def test_desired_view_of_a_grown_topic():
    plan = plan_topic("t", "present", EXISTING, partitions=4, configs={"retention.ms": 5})
    after = kafka_topic.desired_view("present", EXISTING, plan, 4, None)
    assert after == {"partitions": 4, "replication_factor": 3, "configs": {"retention.ms": "5"}}


def test_kafka_uuid_is_deterministic_and_well_formed():
    first = kafka_ids.kafka_uuid("chplatform-lab")
    assert first == kafka_ids.kafka_uuid("chplatform-lab")
    assert first != kafka_ids.kafka_uuid("chplatform-prod")
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", first)
    # It decodes to the 16 bytes of a UUID, as Kafka's Uuid.fromString expects.
    assert len(base64.urlsafe_b64decode(first + "==")) == 16


def test_kafka_uuid_never_starts_with_a_dash():
    ids = [kafka_ids.kafka_uuid(f"seed-{i}") for i in range(500)]
    assert all(not i.startswith("-") for i in ids)
    assert len(set(ids)) == 500
