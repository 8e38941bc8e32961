"""Unit tests of the kafka_drain module's plan: every replica of the drained brokers replaced in its
place, the replication factor kept, the load spread, and a drain that cannot fit refused."""

from collections import Counter

import pytest
from ansible_collections.chplatform.platform.plugins.module_utils.kafka_reassign import PlanError
from ansible_collections.chplatform.platform.plugins.modules.kafka_drain import held, plan_drain

# Four brokers, replication factor 3: every broker holds three replicas of each 4-partition topic.
FOUR = {p: [(p + i) % 4 + 1 for i in range(3)] for p in range(4)}


def test_every_replica_of_the_drained_broker_moves_and_nothing_else():
    plan = plan_drain({"t": FOUR, "u": {0: [1, 2, 3]}}, [1, 2, 3, 4], [4])
    assert set(plan) == {"t"}, "a topic without a replica on broker 4 is left alone"
    moved = plan["t"]
    assert sorted(moved) == sorted(p for p, reps in FOUR.items() if 4 in reps)
    after = {**FOUR, **{p: new for p, (_, new) in moved.items()}}
    assert held({"t": after}, [4]) == 0
    for p, (old, new) in moved.items():
        assert len(new) == len(set(new)) == len(old), (p, new)
        assert set(old) - {4} <= set(new), "the replicas that stay are kept"


def test_the_load_is_spread_over_the_remaining_brokers():
    plan = plan_drain({"t": FOUR}, [1, 2, 3, 4], [4])
    after = {**FOUR, **{p: new for p, (_, new) in plan["t"].items()}}
    load = Counter(b for reps in after.values() for b in reps)
    assert set(load) == {1, 2, 3}
    assert max(load.values()) - min(load.values()) <= 1, load


def test_the_same_input_gives_the_same_plan():
    assert plan_drain({"t": FOUR}, [1, 2, 3, 4], [4]) == plan_drain({"t": FOUR}, [4, 3, 2, 1], [4])


def test_a_drained_broker_that_is_already_down_is_drained_too():
    # Broker 4 stopped (not live): its replicas still move to the live ones.
    plan = plan_drain({"t": FOUR}, [1, 2, 3], [4])
    assert held({"t": {p: new for p, (_, new) in plan["t"].items()}}, [4]) == 0


def test_nothing_to_do_when_the_broker_holds_nothing():
    assert plan_drain({"t": {0: [1, 2, 3]}}, [1, 2, 3, 4], [4]) == {}


def test_a_drain_that_leaves_too_few_brokers_is_refused_naming_the_fix():
    refusal = r"partition 0 of topic t has 3 replicas .* only 2 broker\(s\) would remain"
    with pytest.raises(PlanError, match=refusal) as err:
        plan_drain({"t": {0: [1, 2, 3]}}, [1, 2, 3], [3])
    assert "Lower the topic's replication_factor" in str(err.value)
    assert "add a broker first" in str(err.value)


def test_the_load_counts_the_partitions_of_every_topic():
    """Partition numbers repeat across topics: broker 1 holds three replicas (topic a), broker 2 two
    (topic b); the drained replica goes to broker 2, the less loaded one."""
    assignments = {"a": {0: [1], 1: [1], 2: [1]}, "b": {0: [2], 1: [2]}, "c": {7: [3]}}
    assert plan_drain(assignments, [1, 2, 3], [3]) == {"c": {7: ([3], [2])}}
