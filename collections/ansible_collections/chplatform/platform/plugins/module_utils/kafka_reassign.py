# Apache-2.0
"""Partition reassignment through the admin API, shared by the Kafka modules that move replicas:
kafka_topic (a topic's replication factor) and kafka_drain (every replica off brokers that are to be
removed). Placement helpers are pure; the rest talks to the cluster with a kafka-python admin client:
throttle the moving replicas, start the reassignment, wait until every target replica is in sync,
remove the throttle, elect the preferred leaders."""

from __future__ import annotations

import time
from typing import Any

try:
    from kafka import TopicPartition
    from kafka.admin import ConfigResource
except ImportError:  # pragma: no cover - the modules report the missing library
    TopicPartition = ConfigResource = None

# The options of the modules that move replicas (documented in each module).
REASSIGNMENT_ARGS: dict[str, dict[str, Any]] = {
    "reassignment_throttle": {"type": "int", "default": 52428800},
    "reassignment_timeout": {"type": "int", "default": 3600},
}

# The config source of an override set on the topic itself.
TOPIC_OVERRIDE_SOURCE = "DYNAMIC_TOPIC_CONFIG"
# Topic keys that mark the replicas a reassignment throttles (set and removed by this module).
THROTTLED_REPLICAS_KEYS = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")
# Broker keys that hold the throttle rate while a reassignment runs.
THROTTLE_RATE_KEYS = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")


class PlanError(Exception):
    """The wanted state cannot be reached by this module (the message says why and what to do)."""


# ------------------------------------------------------------------ replica placement (pure)


def replica_counts(assignment: dict[int, list[int]], brokers: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    """Replicas and preferred leaders (first replica) per broker in ``assignment``."""
    replicas = dict.fromkeys(brokers, 0)
    leaders = dict.fromkeys(brokers, 0)
    for reps in assignment.values():
        for broker in reps:
            replicas[broker] = replicas.get(broker, 0) + 1
        if reps:
            leaders[reps[0]] = leaders.get(reps[0], 0) + 1
    return replicas, leaders


def rotation(brokers: list[int], partition: int) -> dict[int, int]:
    """Tie-break order for a partition: the broker list rotated by the partition number."""
    n = len(brokers)
    return {b: (i - partition) % n for i, b in enumerate(brokers)}


def order_with_leader(reps: list[int], partition: int, brokers: list[int], leaders: dict[int, int]) -> list[int]:
    """Put the broker that leads the fewest partitions first (ties: the current first replica, then
    the rotation), keep the others in their order."""
    rot = rotation(brokers, partition)
    current_first = reps[0] if reps else None
    leader = min(reps, key=lambda b: (leaders.get(b, 0), b != current_first, rot.get(b, len(brokers))))
    return [leader] + [b for b in reps if b != leader]


def throttled_replicas(moves: dict[int, tuple[list[int], list[int]]]) -> dict[str, str]:
    """The topic configs that throttle a reassignment, as kafka-reassign-partitions sets them: the
    current replicas of each moving partition lead (send), the added replicas follow (receive).
    Empty when no replica is added (lowering a factor moves no data)."""
    leader = [f"{p}:{b}" for p, (old, new) in sorted(moves.items()) for b in old if set(new) - set(old)]
    follower = [f"{p}:{b}" for p, (old, new) in sorted(moves.items()) for b in new if b not in old]
    if not follower:
        return {}
    return {THROTTLED_REPLICAS_KEYS[0]: ",".join(leader), THROTTLED_REPLICAS_KEYS[1]: ",".join(follower)}


def throttled_brokers(moves: dict[int, tuple[list[int], list[int]]]) -> list[int]:
    """Brokers that send or receive data in a reassignment (they get the throttle rate)."""
    return sorted({b for old, new in moves.values() if set(new) - set(old) for b in (*old, *new)})


# ------------------------------------------------------------------ talking to the cluster


def live_brokers(admin: Any) -> list[int]:
    """Registered, unfenced brokers."""
    return sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced"))


def running_reassignments(admin: Any, name: str | None = None, partitions: int = 0) -> dict:
    """Reassignments in progress: of the topic's partitions, or (name None) of the whole cluster."""
    wanted = {name: list(range(partitions))} if name is not None else None
    if name is not None and partitions == 0:
        return {}
    return admin.list_partition_reassignments(wanted)


def describe_topic(admin: Any, name: str) -> dict[str, Any] | None:
    """The topic's partitions and their replicas, replication factor and own config overrides
    (None if missing), and whether a reassignment of it is running."""
    if name not in admin.list_topics():
        return None
    (meta,) = admin.describe_topics([name])
    if meta.get("error_code"):
        raise RuntimeError(f"describe topic {name}: error code {meta['error_code']}")
    partitions = meta["partitions"]
    assignment = {p["partition_index"]: list(p["replica_nodes"]) for p in partitions}
    replication_factor = max((len(r) for r in assignment.values()), default=0)
    described = admin.describe_configs([ConfigResource("TOPIC", name)])
    entries = described.get("topic", {}).get(name, {})
    configs = {
        key: entry["value"] for key, entry in entries.items() if entry.get("config_source") == TOPIC_OVERRIDE_SOURCE
    }
    reassigning = bool(running_reassignments(admin, name, len(partitions)))
    return {
        "partitions": len(partitions),
        "replication_factor": replication_factor,
        "configs": configs,
        "assignment": assignment,
        "reassigning": reassigning,
        "isr": {p["partition_index"]: list(p["isr_nodes"]) for p in partitions},
    }


def check_alter(result: dict, kind: str, name: str, what: str) -> None:
    outcome = result.get(kind, {}).get(name)
    if outcome not in (None, "OK") and getattr(outcome, "errno", 1):
        raise RuntimeError(f"{what}: {outcome}")


def set_throttle(admin: Any, name: str, moves: dict[int, tuple[list[int], list[int]]], rate: int) -> list[int]:
    """Throttle the replication of the moving partitions; returns the brokers that got a rate."""
    topic_keys = throttled_replicas(moves)
    if rate <= 0 or not topic_keys:
        return []
    brokers = throttled_brokers(moves)
    for broker in brokers:
        result = admin.alter_configs(
            [ConfigResource("BROKER", str(broker), configs=dict.fromkeys(THROTTLE_RATE_KEYS, str(rate)))],
            raise_on_unknown=False,  # the client's list of dynamic broker keys lacks the throttle rates
        )
        check_alter(result, "broker", str(broker), f"set the replication throttle rate on broker {broker}")
    result = admin.alter_configs([ConfigResource("TOPIC", name, configs=topic_keys)], raise_on_unknown=False)
    check_alter(result, "topic", name, f"set the throttled replicas of {name}")
    return brokers


def clear_throttle(admin: Any, name: str, brokers: list[int] | None) -> None:
    """Remove the topic's throttled-replica lists, and the brokers' throttle rates (``brokers``;
    None = every live broker, when no reassignment runs in the cluster any more)."""
    result = admin.alter_configs(
        [ConfigResource("TOPIC", name, configs={key: ("DELETE", None) for key in THROTTLED_REPLICAS_KEYS})],
        raise_on_unknown=False,
    )
    check_alter(result, "topic", name, f"remove the throttled replicas of {name}")
    if brokers is None:
        if running_reassignments(admin):
            return  # another reassignment still uses the rates: its owner removes them
        brokers = live_brokers(admin)
    for broker in brokers:
        result = admin.alter_configs(
            [ConfigResource("BROKER", str(broker), configs={key: ("DELETE", None) for key in THROTTLE_RATE_KEYS})],
            raise_on_unknown=False,
        )
        check_alter(result, "broker", str(broker), f"remove the replication throttle rate of broker {broker}")


def wait_for_reassignment(admin: Any, name: str, target: dict[int, list[int]] | None, timeout_s: int) -> None:
    """Wait until no reassignment of the topic runs and (with ``target``) every partition has exactly
    its target replicas, all in sync."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = describe_topic(admin, name)
        if current is None:
            raise RuntimeError(f"topic {name} disappeared during its partition reassignment")
        lagging = {}
        if current["reassigning"]:
            lagging = {"running": True}
        elif target:
            lagging = {
                p: {"replicas": current["assignment"].get(p), "isr": current["isr"].get(p), "want": want}
                for p, want in target.items()
                if current["assignment"].get(p) != want or set(current["isr"].get(p, [])) != set(want)
            }
        if not lagging:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"the partition reassignment of {name} is not complete after {timeout_s}s ({lagging}); it goes on in "
                "the cluster: run again to wait for it and remove its throttle, or raise reassignment_timeout"
            )
        time.sleep(2)


def reassign_partitions(
    admin: Any, name: str, moves: dict[int, tuple[list[int], list[int]]], throttle: int, timeout_s: int, timeout_ms: int
) -> None:
    """Move the partitions of topic ``name`` from their replicas to new ones (``moves``: partition ->
    (replicas now, replicas wanted)), throttled to ``throttle`` bytes/s per broker (0: unthrottled),
    and wait until every new replica is in sync."""
    target = {p: new for p, (_, new) in moves.items()}
    brokers = set_throttle(admin, name, moves, throttle)
    result = admin.alter_partition_reassignments(
        {TopicPartition(name, p): new for p, new in target.items()}, timeout_ms=timeout_ms
    )
    errors = {str(tp): str(err) for tp, err in result.items() if err is not None}
    if errors:
        raise RuntimeError(f"the controller refused the reassignment of {name}: {errors}")
    wait_for_reassignment(admin, name, target, timeout_s)
    if brokers:
        clear_throttle(admin, name, brokers)
    # Leaders follow the new first replicas (spread over the brokers); an election that is not
    # needed is not an error.
    admin.elect_leaders(0, {name: sorted(target)}, timeout_ms=timeout_ms, raise_errors=False)
