"""Unit tests of the kafka_topic module's planning logic and of the role's id filter."""

import base64
import re

import pytest
from ansible_collections.chplatform.platform.plugins.filter import kafka as kafka_ids
from ansible_collections.chplatform.platform.plugins.module_utils import kafka_reassign
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


def test_replication_factor_change_without_replicas_known_is_refused():
    with pytest.raises(PlanError, match="replicas are unknown; cannot plan a reassignment"):
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


# ---------------------------------------------------------------- replication factor changes

BROKERS = [1, 2, 3]


def topic(assignment, configs=None, **extra):
    """A described topic with the given replicas per partition."""
    return {
        "partitions": len(assignment),
        "replication_factor": max(len(r) for r in assignment.values()),
        "configs": configs or {},
        "assignment": assignment,
        **extra,
    }


def leaders(assignment):
    return sorted(r[0] for r in assignment.values())


def test_raising_the_factor_keeps_every_replica_and_spreads_leaders():
    moves, added = kafka_topic.plan_assignment({0: [1], 1: [1], 2: [1]}, BROKERS, 3)
    assert added == []
    assert moves == {0: [2, 1, 3], 1: [3, 1, 2], 2: [1, 3, 2]}
    assert leaders(moves) == [1, 2, 3]


def test_placement_is_deterministic():
    current = {p: [1 + p % 2] for p in range(6)}
    first = kafka_topic.plan_assignment(current, [3, 1, 2], 2, 9)
    assert first == kafka_topic.plan_assignment(dict(reversed(current.items())), [1, 2, 3, 3], 2, 9)


@pytest.mark.parametrize(("partitions", "brokers", "rf"), [(6, [1, 2, 3], 2), (12, [1, 2, 3, 4], 3), (5, [1, 2, 3], 3)])
def test_raising_from_one_replica_balances_replicas_and_leaders(partitions, brokers, rf):
    current = {p: [brokers[0]] for p in range(partitions)}
    moves, _ = kafka_topic.plan_assignment(current, brokers, rf)
    assert set(moves) == set(current)
    for p, new in moves.items():
        assert len(new) == rf and len(set(new)) == rf and brokers[0] in new, (p, new)
    # Every replica stays where it is (no data leaves broker 1); the added ones spread evenly.
    added = [b for new in moves.values() for b in new if b != brokers[0]]
    per_broker = [added.count(b) for b in brokers[1:]]
    assert max(per_broker) - min(per_broker) <= 1, per_broker
    lead = [r[0] for r in moves.values()]
    per_leader = [lead.count(b) for b in brokers]
    assert max(per_leader) - min(per_leader) <= 1, per_leader


def test_lowering_the_factor_drops_the_most_loaded_replicas():
    moves, _ = kafka_topic.plan_assignment({0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]}, BROKERS, 2)
    assert moves == {0: [1, 2], 1: [2, 3], 2: [3, 1]}
    moves, _ = kafka_topic.plan_assignment({0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]}, BROKERS, 1)
    assert moves == {0: [1], 1: [2], 2: [3]}


def test_lowering_drops_a_broker_that_is_gone_first():
    moves, _ = kafka_topic.plan_assignment({0: [4, 1]}, BROKERS, 1)
    assert moves == {0: [1]}


def test_partitions_at_the_right_factor_are_never_shuffled():
    moves, added = kafka_topic.plan_assignment({0: [1, 1 + 1], 1: [1, 2], 2: [1, 2, 3]}, BROKERS, 2)
    assert moves == {2: moves[2]} and len(moves[2]) == 2 and set(moves[2]) <= {1, 2, 3}
    assert added == []


def test_new_partitions_get_the_factor_on_the_least_loaded_brokers():
    moves, added = kafka_topic.plan_assignment({0: [1, 2], 1: [2, 1]}, BROKERS, 2, partitions=4)
    assert moves == {}
    assert added[0][0] == 3  # broker 3 leads nothing yet
    assert all(len(r) == 2 and len(set(r)) == 2 for r in added)
    assert sum(r.count(3) for r in added) == 2


def test_factor_above_the_brokers_is_refused():
    with pytest.raises(PlanError, match="needs 3 brokers; the cluster has 2"):
        kafka_topic.plan_assignment({0: [1]}, [1, 2], 3)
    with pytest.raises(PlanError, match="topic t: replication factor 3 needs 3 brokers"):
        plan_topic("t", "present", topic({0: [1]}), replication_factor=3, brokers=[1, 2])


def test_plan_of_a_raise_lists_every_partition_old_and_new():
    current = topic({0: [1], 1: [1], 2: [1]}, {"retention.ms": "1"})
    plan = plan_topic(
        "s", "present", current, partitions=3, replication_factor=3, configs={"retention.ms": 1},
        brokers=BROKERS, throttle=1000,
    )  # fmt: skip
    assert plan.changed and plan.replication_factor_to == 3
    assert plan.reassign == {0: ([1], [2, 1, 3]), 1: ([1], [3, 1, 2]), 2: ([1], [1, 3, 2])}
    assert plan.actions == [
        "change the replication factor of s 1 -> 3 by a partition reassignment (throttled to 1000 bytes/s per broker)",
        "reassign partition 0 of s: replicas [1] -> [2, 1, 3]",
        "reassign partition 1 of s: replicas [1] -> [3, 1, 2]",
        "reassign partition 2 of s: replicas [1] -> [1, 3, 2]",
    ]
    after = kafka_topic.desired_view("present", current, plan, 3, 3)
    assert after["replication_factor"] == 3
    assert after["replicas"] == {"0": [2, 1, 3], "1": [3, 1, 2], "2": [1, 3, 2]}
    assert kafka_topic.current_view(current)["replicas"] == {"0": [1], "1": [1], "2": [1]}


def test_topic_at_its_factor_is_unchanged():
    current = topic({0: [2, 1, 3], 1: [3, 1, 2], 2: [1, 3, 2]})
    assert not plan_topic("s", "present", current, partitions=3, replication_factor=3, brokers=BROKERS).changed


def test_lowering_moves_no_data_and_needs_no_throttle():
    current = topic({0: [1, 2, 3], 1: [2, 3, 1]})
    plan = plan_topic("s", "present", current, replication_factor=1, brokers=BROKERS, throttle=1000)
    assert "replicas are only dropped, no data moves" in plan.actions[0]
    assert kafka_reassign.throttled_replicas(plan.reassign) == {}


def test_throttle_covers_the_senders_and_the_new_replicas():
    moves = {0: ([1], [2, 1, 3]), 1: ([2, 3], [2, 3]), 2: ([1, 2], [1, 3])}
    assert kafka_reassign.throttled_replicas(moves) == {
        "leader.replication.throttled.replicas": "0:1,2:1,2:2",
        "follower.replication.throttled.replicas": "0:2,0:3,2:3",
    }
    assert kafka_reassign.throttled_brokers(moves) == [1, 2, 3]


def test_grow_and_raise_together():
    current = topic({0: [1], 1: [1]})
    plan = plan_topic("s", "present", current, partitions=3, replication_factor=2, brokers=BROKERS)
    assert plan.partitions_to == 3 and len(plan.new_assignments) == 1 and len(plan.new_assignments[0]) == 2
    assert set(plan.reassign) == {0, 1}
    assert "place new partition 2 of s on replicas" in plan.actions[1]


def test_running_reassignment_is_waited_for_before_planning():
    current = topic({0: [1, 2, 3]}, reassigning=True)
    plan = plan_topic("s", "present", current, replication_factor=1, brokers=BROKERS)
    assert plan.wait_for_running and plan.reassign == {}
    assert plan.actions == ["wait for the partition reassignment of s that is still running, then re-plan"]


def test_leftover_throttle_is_removed_and_never_purged_as_a_config():
    configs = {"leader.replication.throttled.replicas": "0:1", "follower.replication.throttled.replicas": "0:2"}
    current = topic({0: [1, 2]}, configs)
    plan = plan_topic("s", "present", current, replication_factor=2, configs={}, brokers=BROKERS)
    assert plan.clear_throttle and plan.delete_configs == []
    assert plan.actions == ["remove the replication throttle an interrupted reassignment left on s"]
    assert kafka_topic.desired_view("present", current, plan, None, 2)["configs"] == {}


def test_missing_topic_is_left_alone_without_create():
    plan = plan_topic("__consumer_offsets", "present", None, replication_factor=3, create=False)
    assert not plan.changed
    assert kafka_topic.desired_view("present", None, plan, None, 3) is None


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
