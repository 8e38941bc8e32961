#!/usr/bin/python
"""Ansible module: manage one Kafka topic through the Kafka admin API (kafka-python)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.chplatform.platform.plugins.module_utils.kafka_common import (
    CONNECTION_ARGS,
    REQUIRED_IF,
    admin_client,
    require_kafka,
)
from ansible_collections.chplatform.platform.plugins.module_utils.kafka_reassign import (
    REASSIGNMENT_ARGS,
    THROTTLED_REPLICAS_KEYS,
    ConfigResource,
    PlanError,
    check_alter,
    clear_throttle,
    describe_topic,
    live_brokers,
    order_with_leader,
    reassign_partitions,
    replica_counts,
    rotation,
    throttled_replicas,
    wait_for_reassignment,
)

DOCUMENTATION = r"""
---
module: kafka_topic
short_description: Create, grow, re-replicate, configure or delete a Kafka topic through the admin API
description:
  - Compares the wanted topic (partitions, replication factor, topic-level configs) with what
    the cluster reports and applies only the difference, through the Kafka admin protocol
    (kafka-python, no shell tools).
  - Partitions can only grow; a smaller count fails with an explanation and changes nothing.
    New partitions get an explicit, deterministic replica assignment.
  - A different replication factor for an existing topic is reached by a partition reassignment
    (AlterPartitionReassignments) that the module plans, throttles, waits for and cleans up
    itself. Partitions keep their replicas (raising) or lose the most loaded ones (lowering);
    added replicas and preferred leaders go to the least loaded brokers, deterministically, so
    leaders and replicas spread over the brokers. While data moves, the replication traffic of
    the moving partitions is throttled to O(reassignment_throttle) bytes per second per broker;
    the module waits until every moved partition has its new replicas in sync (at most
    O(reassignment_timeout) seconds), removes the throttle and elects the preferred leaders.
    The plan (old and new replicas of each partition) is in RV(actions), RV(reassignment) and
    the diff, also in check mode.
  - A reassignment of the topic still running from an earlier, interrupted run is waited for
    first; a replication throttle left behind by one is removed.
  - C(configs) is the complete set of topic-level overrides when O(purge_configs=true); an
    override present on the topic but missing from C(configs) is removed (the topic falls back
    to the broker default). The replication-throttle keys belong to the reassignment and are
    never compared with C(configs).
  - Supports check mode and diff mode; C(changed) is true only when something was (or would be)
    changed.
version_added: "1.0.0"
author: chplatform
options:
  name:
    description: Topic name.
    type: str
    required: true
  state:
    description: C(present) creates or updates the topic, C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  create:
    description:
      - Create the topic when it is missing. C(false) leaves a missing topic alone and only
        adjusts an existing one (for Kafka's internal topics, which the brokers create on
        first use).
    type: bool
    default: true
  partitions:
    description:
      - Number of partitions. Omitted means the broker default at creation and no check later.
    type: int
  replication_factor:
    description:
      - Replicas per partition. Omitted means the broker default at creation and no check later.
      - A different value for an existing topic starts a throttled partition reassignment.
    type: int
  configs:
    description:
      - Topic-level configuration, e.g. C(retention.ms). Values are compared as Kafka strings
        (booleans become C(true)/C(false)).
    type: dict
    default: {}
  purge_configs:
    description: Remove topic-level overrides that are not listed in O(configs).
    type: bool
    default: true
  reassignment_throttle:
    description:
      - Replication throttle, in bytes per second per broker, for the partitions that a
        reassignment moves (C(leader.replication.throttled.rate) and
        C(follower.replication.throttled.rate) of the brokers involved). Removed when the
        reassignment is complete. C(0) moves the data unthrottled.
    type: int
    default: 52428800
  reassignment_timeout:
    description:
      - Seconds to wait for a reassignment to complete. On timeout the module fails; the
        reassignment goes on in the cluster and the next run waits for it and cleans up.
    type: int
    default: 3600
extends_documentation_fragment:
  - chplatform.platform.kafka
"""

EXAMPLES = r"""
- name: Topic for the sensor readings (raising replication_factor reassigns the partitions)
  kafka_topic:
    name: sensor_data
    partitions: 3
    replication_factor: 3
    configs:
      retention.ms: 604800000
      cleanup.policy: delete
    reassignment_throttle: 52428800
    bootstrap_servers: [kafka01:9092, kafka02:9092, kafka03:9092]

- name: Replicate the consumer offsets as the other topics, if the brokers created them already
  kafka_topic:
    name: __consumer_offsets
    create: false
    replication_factor: 3
    purge_configs: false
    bootstrap_servers: [kafka01:9092]

- name: Drop an old topic
  kafka_topic:
    name: legacy_events
    state: absent
    bootstrap_servers: [kafka01:9092]
"""

RETURN = r"""
topic:
  description: The topic name.
  returned: always
  type: str
  sample: sensor_data
actions:
  description: What was (or in check mode would be) done, one line each.
  returned: always
  type: list
  elements: str
  sample: ["increase partitions of sensor_data 3 -> 6", "set config retention.ms=86400000 (was default)"]
reassignment:
  description: The partitions whose replicas change, with their replicas before and after.
  returned: always
  type: dict
  sample: {"0": {"from": [1], "to": [2, 1, 3]}, "1": {"from": [1], "to": [3, 1, 2]}}
before:
  description: The topic as found (null when it did not exist), with the replicas of each partition.
  returned: always
  type: dict
  sample: {partitions: 3, replication_factor: 1, configs: {retention.ms: "604800000"}, replicas: {"0": [1]}}
after:
  description: The topic as wanted (null for state=absent).
  returned: always
  type: dict
  sample: {partitions: 3, replication_factor: 3, configs: {retention.ms: "604800000"}, replicas: {"0": [2, 1, 3]}}
"""


@dataclass
class Plan:
    create: bool = False
    delete: bool = False
    partitions_to: int | None = None
    # Replicas of the partitions added by partitions_to, in partition order.
    new_assignments: list[list[int]] = field(default_factory=list)
    # Partition -> (replicas now, replicas wanted) for the partitions to reassign.
    reassign: dict[int, tuple[list[int], list[int]]] = field(default_factory=dict)
    replication_factor_to: int | None = None
    # A reassignment of this topic started earlier is still running: wait for it first.
    wait_for_running: bool = False
    # A replication throttle left on the topic by an interrupted reassignment: remove it.
    clear_throttle: bool = False
    set_configs: dict[str, str] = field(default_factory=dict)
    delete_configs: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def kafka_value(value: Any) -> str:
    """A config value as Kafka writes it: booleans in lower case, everything else as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def normalize_configs(configs: dict[str, Any] | None) -> dict[str, str]:
    return {str(key): kafka_value(value) for key, value in (configs or {}).items()}


# ------------------------------------------------------------------ replica placement (pure)


def plan_assignment(
    current: dict[int, list[int]], brokers: list[int], replication_factor: int, partitions: int | None = None
) -> tuple[dict[int, list[int]], list[list[int]]]:
    """Deterministic replica placement.

    ``current`` maps each existing partition to its replicas (first = preferred leader),
    ``brokers`` are the broker ids to place on. Returns the new replicas of the existing partitions
    whose replica count differs from ``replication_factor`` (only those: a topic at the right
    count is never shuffled), and the replicas of the partitions to add up to ``partitions``.

    Raising keeps every replica and adds the brokers holding the fewest replicas of the topic;
    lowering drops the replicas on brokers that are gone first, then on the most loaded brokers.
    Each moved or added partition is led by the broker leading the fewest partitions, so leaders and
    replicas spread over the brokers. Ties are broken by the broker list rotated by the partition
    number, so the same input always gives the same plan.
    """
    brokers = sorted(set(brokers))
    if replication_factor > len(brokers):
        raise PlanError(
            f"replication factor {replication_factor} needs {replication_factor} brokers; the cluster has "
            f"{len(brokers)} registered and unfenced ({brokers}). Start the missing brokers or lower the factor."
        )
    working = {p: list(r) for p, r in current.items()}
    moves: dict[int, list[int]] = {}
    for p in sorted(current):
        reps = list(current[p])
        if len(reps) == replication_factor:
            continue
        # Count the topic without this partition, then place it.
        del working[p]
        replicas, leaders = replica_counts(working, brokers)
        rot = rotation(brokers, p)
        if len(reps) < replication_factor:
            candidates = sorted(
                (b for b in brokers if b not in reps), key=lambda b, r=replicas, o=rot: (r.get(b, 0), o[b])
            )
            new = reps + candidates[: replication_factor - len(reps)]
        else:
            # Drop: brokers no longer registered first, then the most loaded, then the last listed.
            index = {b: i for i, b in enumerate(reps)}
            drop_order = sorted(reps, key=lambda b: (b in brokers, -replicas.get(b, 0), -index[b]))
            dropped = set(drop_order[: len(reps) - replication_factor])
            new = [b for b in reps if b not in dropped]
        new = order_with_leader(new, p, brokers, leaders)
        working[p] = new
        moves[p] = new
    added: list[list[int]] = []
    if partitions is not None:
        for p in range(len(current), partitions):
            replicas, leaders = replica_counts(working, brokers)
            rot = rotation(brokers, p)
            leader = min(brokers, key=lambda b, r=replicas, lead=leaders, o=rot: (lead[b], r[b], o[b]))
            followers = sorted((b for b in brokers if b != leader), key=lambda b, r=replicas, o=rot: (r[b], o[b]))
            new = [leader, *followers[: replication_factor - 1]]
            working[p] = new
            added.append(new)
    return moves, added


# ------------------------------------------------------------------ the plan (pure)


def plan_topic(
    name: str,
    state: str,
    current: dict[str, Any] | None,
    partitions: int | None = None,
    replication_factor: int | None = None,
    configs: dict[str, Any] | None = None,
    purge_configs: bool = True,
    brokers: list[int] | None = None,
    create: bool = True,
    throttle: int = 0,
) -> Plan:
    """Compare the wanted topic with ``current`` (None = missing) and return what to do.

    ``current`` is ``{"partitions": int, "replication_factor": int, "configs": {key: str}}``
    where ``configs`` holds only the topic's own overrides, plus, to plan placements,
    ``"assignment": {partition: [replicas]}`` and ``"reassigning": bool`` (a reassignment of the
    topic is running). ``brokers`` are the registered, unfenced broker ids.
    """
    plan = Plan()
    if partitions is not None and partitions < 1:
        raise PlanError(f"topic {name}: partitions must be at least 1, got {partitions}.")
    if replication_factor is not None and replication_factor < 1:
        raise PlanError(f"topic {name}: replication_factor must be at least 1, got {replication_factor}.")
    wanted = normalize_configs(configs)

    if state == "absent":
        if current is not None:
            plan.delete = True
            plan.actions.append(f"delete topic {name}")
        return plan

    if current is None:
        if not create:
            return plan
        plan.create = True
        plan.actions.append(
            f"create topic {name} (partitions={partitions if partitions is not None else 'broker default'}, "
            f"replication_factor={replication_factor if replication_factor is not None else 'broker default'})"
        )
        plan.set_configs = dict(sorted(wanted.items()))
        plan.actions.extend(f"set config {key}={value}" for key, value in plan.set_configs.items())
        return plan

    have_partitions = int(current["partitions"])
    have_rf = int(current["replication_factor"])
    if partitions is not None and partitions < have_partitions:
        raise PlanError(
            f"topic {name} has {have_partitions} partitions; Kafka cannot decrease them to {partitions}. "
            f"Set partitions: {have_partitions} (or more), or create a new topic and migrate."
        )

    have_all = normalize_configs(current.get("configs"))
    have_configs = {k: v for k, v in have_all.items() if k not in THROTTLED_REPLICAS_KEYS}
    if current.get("reassigning"):
        # The replica lists of a running reassignment mix old and new replicas: plan after it.
        plan.wait_for_running = True
        plan.actions.append(f"wait for the partition reassignment of {name} that is still running, then re-plan")
        return plan
    if any(k in have_all for k in THROTTLED_REPLICAS_KEYS):
        plan.clear_throttle = True
        plan.actions.append(f"remove the replication throttle an interrupted reassignment left on {name}")

    assignment = {int(p): list(r) for p, r in (current.get("assignment") or {}).items()}
    target_rf = replication_factor if replication_factor is not None else have_rf
    needs_reassign = replication_factor is not None and (
        any(len(r) != replication_factor for r in assignment.values())
        or (not assignment and replication_factor != have_rf)
    )
    grow = partitions is not None and partitions > have_partitions
    # Replicas are placed here when the current ones and the brokers are known; otherwise new
    # partitions are left to the controller's placement.
    place = bool(assignment) and brokers is not None
    if needs_reassign and not place:
        raise PlanError(
            f"topic {name}: the brokers or the partitions' replicas are unknown; cannot plan a reassignment."
        )
    moves: dict[int, list[int]] = {}
    added: list[list[int]] = []
    if place and (needs_reassign or grow):
        try:
            moves, added = plan_assignment(assignment, brokers or [], target_rf, partitions if grow else None)
        except PlanError as exc:
            raise PlanError(f"topic {name}: {exc}") from None
    if grow:
        plan.partitions_to = partitions
        plan.new_assignments = added
        plan.actions.append(f"increase partitions of {name} {have_partitions} -> {partitions}")
        plan.actions.extend(
            f"place new partition {have_partitions + i} of {name} on replicas {reps}" for i, reps in enumerate(added)
        )
    if moves:
        plan.replication_factor_to = target_rf
        plan.reassign = {p: (assignment[p], new) for p, new in moves.items()}
        if not throttled_replicas(plan.reassign):
            how = "replicas are only dropped, no data moves"
        else:
            how = f"throttled to {throttle} bytes/s per broker" if throttle > 0 else "unthrottled"
        plan.actions.append(
            f"change the replication factor of {name} {have_rf} -> {target_rf} by a partition reassignment ({how})"
        )
        plan.actions.extend(
            f"reassign partition {p} of {name}: replicas {old} -> {new}" for p, (old, new) in plan.reassign.items()
        )

    for key in sorted(wanted):
        if have_configs.get(key) != wanted[key]:
            plan.set_configs[key] = wanted[key]
            plan.actions.append(f"set config {key}={wanted[key]} (was {have_configs.get(key, 'default')})")
    if purge_configs:
        for key in sorted(set(have_configs) - set(wanted)):
            plan.delete_configs.append(key)
            plan.actions.append(f"reset config {key} to the broker default (was {have_configs[key]})")
    return plan


def _replicas_view(assignment: dict[int, list[int]]) -> dict[str, list[int]]:
    return {str(p): list(r) for p, r in sorted(assignment.items())}


def current_view(current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The topic as found, for ``before`` and the diff (replicas keyed by partition number)."""
    if current is None:
        return None
    view = {
        "partitions": current["partitions"],
        "replication_factor": current["replication_factor"],
        "configs": {k: v for k, v in normalize_configs(current.get("configs")).items()},
    }
    if current.get("assignment") is not None:
        view["replicas"] = _replicas_view(current["assignment"])
    return view


def desired_view(state: str, current: dict | None, plan: Plan, partitions: int | None, rf: int | None) -> dict | None:
    """The topic as it will be after the plan (for diff and the ``after`` return value)."""
    if state == "absent" or (current is None and not plan.create):
        return None
    base = dict(current) if current else {"partitions": partitions, "replication_factor": rf, "configs": {}}
    configs = {
        k: v
        for k, v in normalize_configs(base.get("configs")).items()
        if k not in plan.delete_configs and not (plan.clear_throttle and k in THROTTLED_REPLICAS_KEYS)
    }
    configs.update(plan.set_configs)
    after = {
        "partitions": plan.partitions_to or base["partitions"],
        "replication_factor": plan.replication_factor_to or base["replication_factor"],
        "configs": dict(sorted(configs.items())),
    }
    if current and current.get("assignment") is not None:
        assignment = {int(p): list(r) for p, r in current["assignment"].items()}
        assignment.update({p: new for p, (_, new) in plan.reassign.items()})
        start = int(current["partitions"])
        assignment.update({start + i: reps for i, reps in enumerate(plan.new_assignments)})
        after["replicas"] = _replicas_view(assignment)
    return after


# ------------------------------------------------------------------ talking to the cluster


def reassign(admin: Any, name: str, plan: Plan, throttle: int, timeout_s: int, timeout_ms: int) -> None:
    reassign_partitions(admin, name, plan.reassign, throttle, timeout_s, timeout_ms)


def apply_plan(
    admin: Any,
    name: str,
    plan: Plan,
    partitions: int | None,
    rf: int | None,
    timeout_ms: int,
    throttle: int = 0,
    reassignment_timeout: int = 3600,
) -> None:
    if plan.delete:
        admin.delete_topics([name], timeout_ms=timeout_ms)
        return
    if plan.create:
        spec: dict[str, Any] = {"configs": plan.set_configs}
        if partitions is not None:
            spec["num_partitions"] = partitions
        if rf is not None:
            spec["replication_factor"] = rf
        admin.create_topics({name: spec}, timeout_ms=timeout_ms)
        admin.wait_for_topics([name], timeout_ms=timeout_ms)
        return
    if plan.clear_throttle:
        clear_throttle(admin, name, None)
    changes: dict[str, Any] = dict(plan.set_configs)
    changes.update({key: ("DELETE", None) for key in plan.delete_configs})
    if changes:
        result = admin.alter_configs([ConfigResource("TOPIC", name, configs=changes)])
        check_alter(result, "topic", name, f"alter configs of {name}")
    if plan.partitions_to:
        grow: Any = plan.partitions_to
        if plan.new_assignments:
            grow = {"count": plan.partitions_to, "assignments": plan.new_assignments}
        admin.create_partitions({name: grow}, timeout_ms=timeout_ms)
    if plan.reassign:
        reassign(admin, name, plan, throttle, reassignment_timeout, timeout_ms)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "create": {"type": "bool", "default": True},
            "partitions": {"type": "int"},
            "replication_factor": {"type": "int"},
            "configs": {"type": "dict", "default": {}},
            "purge_configs": {"type": "bool", "default": True},
            **REASSIGNMENT_ARGS,
            **CONNECTION_ARGS,
        },
        required_if=REQUIRED_IF,
        supports_check_mode=True,
    )
    require_kafka(module)
    params = module.params
    name = params["name"]
    admin = None
    try:
        admin = admin_client(params, "ansible-kafka-topic")
        current = describe_topic(admin, name)
        waited = []
        if current is not None and current["reassigning"] and params["state"] == "present" and not module.check_mode:
            # An interrupted run left a reassignment running: let it finish, then plan from its result.
            wait_for_reassignment(admin, name, None, params["reassignment_timeout"])
            waited = [f"waited for the partition reassignment of {name} that was still running"]
            current = describe_topic(admin, name)
        plan = plan_topic(
            name,
            params["state"],
            current,
            partitions=params["partitions"],
            replication_factor=params["replication_factor"],
            configs=params["configs"],
            purge_configs=params["purge_configs"],
            brokers=live_brokers(admin) if current is not None and params["state"] == "present" else None,
            create=params["create"],
            throttle=params["reassignment_throttle"],
        )
        plan.actions[:0] = waited
        after = desired_view(params["state"], current, plan, params["partitions"], params["replication_factor"])
        if plan.changed and not module.check_mode:
            apply_plan(
                admin,
                name,
                plan,
                params["partitions"],
                params["replication_factor"],
                params["request_timeout_ms"],
                throttle=params["reassignment_throttle"],
                reassignment_timeout=params["reassignment_timeout"],
            )
    except PlanError as exc:
        module.fail_json(msg=str(exc), topic=name)
    except Exception as exc:
        module.fail_json(msg=f"Kafka admin request for topic {name} failed: {exc}", exception=traceback.format_exc())
    finally:
        if admin is not None:
            admin.close()

    before = current_view(current)
    reassignment = {str(p): {"from": old, "to": new} for p, (old, new) in sorted(plan.reassign.items())}
    result = {
        "changed": plan.changed,
        "topic": name,
        "actions": plan.actions,
        "reassignment": reassignment,
        "before": before,
        "after": after,
    }
    if module._diff:
        result["diff"] = {"before": before or {}, "after": after or {}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
