#!/usr/bin/python
"""Ansible module: move every partition replica off Kafka brokers that are to be removed."""

from __future__ import annotations

import traceback
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
    PlanError,
    live_brokers,
    order_with_leader,
    reassign_partitions,
    replica_counts,
    rotation,
    running_reassignments,
    wait_for_reassignment,
)

DOCUMENTATION = r"""
---
module: kafka_drain
short_description: Move every partition replica off Kafka brokers that are to be removed
description:
  - Plans, for every topic of the cluster (Kafka's internal topics included), a new replica for each
    replica held by one of O(node_ids), on the remaining live brokers. The new replica goes to the broker
    holding the fewest replicas of the cluster that the partition does not use yet. The replication factor of every
    partition stays the same; a replaced first replica hands the preferred leadership to its
    replacement, or to the partition's replica that leads the fewest partitions.
  - Runs the plan topic by topic as a throttled partition reassignment (the same mechanism as
    M(chplatform.platform.kafka_topic)), waits until every new replica is in sync, removes the throttle
    and elects the preferred leaders. A reassignment still running from an interrupted run is waited
    for first.
  - Fails before any change when a partition would have fewer brokers left than replicas, naming the
    topic and the fix.
  - Once it reports no change, the brokers hold no replica. They can then be stopped, unregistered and
    removed from the inventory, which playbooks/remove_kafka_broker.yml does.
  - Check mode returns the plan and changes nothing.
version_added: "1.0.0"
author: chplatform
options:
  node_ids:
    description: Node ids of the brokers to drain.
    type: list
    elements: int
    required: true
  reassignment_throttle:
    description:
      - Bytes per second per broker that the moving replicas may replicate at while they catch up.
        C(0) moves the data unthrottled.
    type: int
    default: 52428800
  reassignment_timeout:
    description: Seconds to wait for each topic's reassignment; on timeout it goes on in the cluster.
    type: int
    default: 3600
extends_documentation_fragment:
  - chplatform.platform.kafka
"""

EXAMPLES = r"""
- name: Drain broker 4 before removing its host
  chplatform.platform.kafka_drain:
    node_ids: [4]
    bootstrap_servers: [kafka01:9094]
    security_protocol: SSL
    ssl_cafile: /etc/chplatform/tls/ca.crt
    ssl_certfile: /etc/chplatform/tls/kafka/host.crt
    ssl_keyfile: /etc/chplatform/tls/kafka/host.key
"""

RETURN = r"""
actions:
  description: What the run did (or, in check mode, would do), one line per moved partition.
  returned: always
  type: list
  elements: str
reassignment:
  description: Per topic, per partition, the replicas before and after.
  returned: always
  type: dict
  sample: {sensor_data: {"0": {from: [4, 1, 2], to: [3, 1, 2]}}}
replicas_left:
  description: Replicas the drained brokers hold after the run (0 unless in check mode).
  returned: always
  type: int
"""


def plan_drain(
    assignments: dict[str, dict[int, list[int]]], brokers: list[int], drained: list[int]
) -> dict[str, dict[int, tuple[list[int], list[int]]]]:
    """For each topic (``assignments``: topic -> partition -> replicas), the partitions that hold a
    replica on a ``drained`` broker, with their replicas now and after the drain: each drained
    replica replaced, in its place, by the remaining broker (``brokers`` minus ``drained``) that holds
    the fewest replicas of the cluster and is not in the partition yet (ties: the broker list rotated
    by the partition number). Deterministic: the same input gives the same plan."""
    gone = set(drained)
    remaining = sorted(set(brokers) - gone)
    # Every partition of every topic (partition numbers repeat across topics: keyed by position).
    every = [reps for topic in assignments.values() for reps in topic.values()]
    load, _ = replica_counts(dict(enumerate(every)), remaining)
    plan: dict[str, dict[int, tuple[list[int], list[int]]]] = {}
    for topic in sorted(assignments):
        leaders = replica_counts(assignments[topic], remaining)[1]
        for p in sorted(assignments[topic]):
            reps = list(assignments[topic][p])
            if not gone & set(reps):
                continue
            new = list(reps)
            rot = rotation(remaining, p) if remaining else {}
            for i, broker in enumerate(reps):
                if broker not in gone:
                    continue
                candidates = [b for b in remaining if b not in new]
                if not candidates:
                    raise PlanError(
                        f"partition {p} of topic {topic} has {len(reps)} replicas ({reps}) and only "
                        f"{len(remaining)} broker(s) would remain ({remaining}): nothing was moved. Lower the "
                        f"topic's replication_factor (kafka_topics in the inventory) or add a broker first."
                    )
                pick = min(candidates, key=lambda b, o=rot: (load.get(b, 0), o[b]))
                new[i] = pick
                load[pick] = load.get(pick, 0) + 1
                load[broker] = load.get(broker, 0) - 1
            if new[0] != reps[0]:
                new = order_with_leader(new, p, remaining, leaders)
            leaders[new[0]] = leaders.get(new[0], 0) + 1
            plan.setdefault(topic, {})[p] = (reps, new)
    return plan


def cluster_assignments(admin: Any) -> dict[str, dict[int, list[int]]]:
    """Every topic's partitions and their replicas (Kafka's internal topics included)."""
    result: dict[str, dict[int, list[int]]] = {}
    for meta in admin.describe_topics():
        # The metadata response names the field "name" (older versions of it: "topic").
        name = meta.get("name", meta.get("topic"))
        if meta.get("error_code"):
            raise RuntimeError(f"describe topic {name}: error code {meta['error_code']}")
        result[name] = {p["partition_index"]: list(p["replica_nodes"]) for p in meta["partitions"]}
    return result


def held(assignments: dict[str, dict[int, list[int]]], node_ids: list[int]) -> int:
    return sum(1 for topic in assignments.values() for reps in topic.values() for b in reps if b in node_ids)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "node_ids": {"type": "list", "elements": "int", "required": True},
            **REASSIGNMENT_ARGS,
            **CONNECTION_ARGS,
        },
        required_if=REQUIRED_IF,
        supports_check_mode=True,
    )
    require_kafka(module)
    params = module.params
    node_ids = sorted(set(params["node_ids"]))
    admin = None
    actions: list[str] = []
    try:
        admin = admin_client(params, "ansible-kafka-drain")
        running = running_reassignments(admin) if not module.check_mode else {}
        # An interrupted run left reassignments running: let them finish, then plan from their result.
        for topic in sorted({tp.topic for tp in running}):
            wait_for_reassignment(admin, topic, None, params["reassignment_timeout"])
            actions.append(f"waited for the partition reassignment of {topic} that was still running")
        assignments = cluster_assignments(admin)
        plan = plan_drain(assignments, live_brokers(admin), node_ids)
        for topic, moves in plan.items():
            actions.extend(
                f"reassign partition {p} of {topic}: replicas {old} -> {new}" for p, (old, new) in sorted(moves.items())
            )
        if plan and not module.check_mode:
            for topic, moves in plan.items():
                reassign_partitions(
                    admin,
                    topic,
                    moves,
                    params["reassignment_throttle"],
                    params["reassignment_timeout"],
                    params["request_timeout_ms"],
                )
            left = held(cluster_assignments(admin), node_ids)
            if left:
                raise RuntimeError(f"after the reassignments, brokers {node_ids} still hold {left} replica(s)")
        else:
            left = held(assignments, node_ids)
    except PlanError as exc:
        module.fail_json(msg=f"cannot drain brokers {node_ids}: {exc}", node_ids=node_ids)
    except Exception as exc:
        module.fail_json(msg=f"draining brokers {node_ids} failed: {exc}", exception=traceback.format_exc())
    finally:
        if admin is not None:
            admin.close()
    module.exit_json(
        changed=bool(actions),
        actions=actions,
        node_ids=node_ids,
        reassignment={
            topic: {str(p): {"from": old, "to": new} for p, (old, new) in sorted(moves.items())}
            for topic, moves in plan.items()
        },
        replicas_left=left,
    )


if __name__ == "__main__":
    main()
