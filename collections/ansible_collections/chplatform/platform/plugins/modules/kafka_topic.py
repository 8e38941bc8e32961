#!/usr/bin/python
"""Ansible module: manage one Kafka topic through the Kafka admin API (kafka-python)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from kafka.admin import ConfigResource, KafkaAdminClient

    HAS_KAFKA = True
    KAFKA_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    HAS_KAFKA = False
    KAFKA_IMPORT_ERROR = traceback.format_exc()

DOCUMENTATION = r"""
---
module: kafka_topic
short_description: Create, grow, configure or delete a Kafka topic through the admin API
description:
  - Compares the wanted topic (partitions, replication factor, topic-level configs) with what
    the cluster reports and applies only the difference, through the Kafka admin protocol
    (kafka-python, no shell tools).
  - Partitions can only grow; a smaller count, or a different replication factor for an
    existing topic, fails with an explanation and changes nothing (both need a partition
    reassignment or a new topic, which this module does not do).
  - C(configs) is the complete set of topic-level overrides when O(purge_configs=true); an
    override present on the topic but missing from C(configs) is removed (the topic falls back
    to the broker default).
  - Supports check mode and diff mode; C(changed) is true only when something was (or would be)
    changed.
version_added: "1.0.0"
author: chplatform
requirements:
  - kafka-python >= 3.0 on the host that runs the module
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
  partitions:
    description:
      - Number of partitions. Omitted means the broker default at creation and no check later.
    type: int
  replication_factor:
    description:
      - Replicas per partition. Omitted means the broker default at creation and no check later.
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
  bootstrap_servers:
    description: Brokers to contact, as C(host:port) strings.
    type: list
    elements: str
    required: true
  request_timeout_ms:
    description: Timeout of each admin request, in milliseconds.
    type: int
    default: 30000
"""

EXAMPLES = r"""
- name: Topic for the sensor readings
  kafka_topic:
    name: sensor_data
    partitions: 3
    replication_factor: 3
    configs:
      retention.ms: 604800000
      cleanup.policy: delete
    bootstrap_servers: [kafka01:9092, kafka02:9092, kafka03:9092]

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
  sample: ["increase partitions 3 -> 6", "set config retention.ms=86400000"]
before:
  description: The topic as found (null when it did not exist).
  returned: always
  type: dict
  sample: {partitions: 3, replication_factor: 3, configs: {retention.ms: "604800000"}}
after:
  description: The topic as wanted (null for state=absent).
  returned: always
  type: dict
  sample: {partitions: 6, replication_factor: 3, configs: {retention.ms: "86400000"}}
"""

# The config source of an override set on the topic itself.
TOPIC_OVERRIDE_SOURCE = "DYNAMIC_TOPIC_CONFIG"


class PlanError(Exception):
    """The wanted state cannot be reached by this module (the message says why and what to do)."""


@dataclass
class Plan:
    create: bool = False
    delete: bool = False
    partitions_to: int | None = None
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


def plan_topic(
    name: str,
    state: str,
    current: dict[str, Any] | None,
    partitions: int | None = None,
    replication_factor: int | None = None,
    configs: dict[str, Any] | None = None,
    purge_configs: bool = True,
) -> Plan:
    """Compare the wanted topic with ``current`` (None = missing) and return what to do.

    ``current`` is ``{"partitions": int, "replication_factor": int, "configs": {key: str}}``
    where ``configs`` holds only the topic's own overrides.
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
    if replication_factor is not None and replication_factor != have_rf:
        raise PlanError(
            f"topic {name} has replication factor {have_rf}; changing it to {replication_factor} needs a "
            "partition reassignment (kafka-reassign-partitions), which this module does not do. "
            f"Set replication_factor: {have_rf} for this topic, or reassign its partitions by hand."
        )
    if partitions is not None and partitions < have_partitions:
        raise PlanError(
            f"topic {name} has {have_partitions} partitions; Kafka cannot decrease them to {partitions}. "
            f"Set partitions: {have_partitions} (or more), or create a new topic and migrate."
        )
    if partitions is not None and partitions > have_partitions:
        plan.partitions_to = partitions
        plan.actions.append(f"increase partitions of {name} {have_partitions} -> {partitions}")

    have_configs = normalize_configs(current.get("configs"))
    for key in sorted(wanted):
        if have_configs.get(key) != wanted[key]:
            plan.set_configs[key] = wanted[key]
            plan.actions.append(f"set config {key}={wanted[key]} (was {have_configs.get(key, 'default')})")
    if purge_configs:
        for key in sorted(set(have_configs) - set(wanted)):
            plan.delete_configs.append(key)
            plan.actions.append(f"reset config {key} to the broker default (was {have_configs[key]})")
    return plan


def desired_view(state: str, current: dict | None, plan: Plan, partitions: int | None, rf: int | None) -> dict | None:
    """The topic as it will be after the plan (for diff and the ``after`` return value)."""
    if state == "absent":
        return None
    base = dict(current) if current else {"partitions": partitions, "replication_factor": rf, "configs": {}}
    configs = {k: v for k, v in normalize_configs(base.get("configs")).items() if k not in plan.delete_configs}
    configs.update(plan.set_configs)
    after = {
        "partitions": plan.partitions_to or base["partitions"],
        "replication_factor": base["replication_factor"],
        "configs": dict(sorted(configs.items())),
    }
    return after


def describe_topic(admin: Any, name: str) -> dict[str, Any] | None:
    """The topic's partition count, replication factor and own config overrides (None if missing)."""
    if name not in admin.list_topics():
        return None
    (meta,) = admin.describe_topics([name])
    if meta.get("error_code"):
        raise RuntimeError(f"describe topic {name}: error code {meta['error_code']}")
    partitions = meta["partitions"]
    replication_factor = max((len(p["replica_nodes"]) for p in partitions), default=0)
    described = admin.describe_configs([ConfigResource("TOPIC", name)])
    entries = described.get("topic", {}).get(name, {})
    configs = {
        key: entry["value"] for key, entry in entries.items() if entry.get("config_source") == TOPIC_OVERRIDE_SOURCE
    }
    return {"partitions": len(partitions), "replication_factor": replication_factor, "configs": configs}


def apply_plan(admin: Any, name: str, plan: Plan, partitions: int | None, rf: int | None, timeout_ms: int) -> None:
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
    if plan.partitions_to:
        admin.create_partitions({name: plan.partitions_to}, timeout_ms=timeout_ms)
    changes: dict[str, Any] = dict(plan.set_configs)
    changes.update({key: ("DELETE", None) for key in plan.delete_configs})
    if changes:
        result = admin.alter_configs([ConfigResource("TOPIC", name, configs=changes)])
        error = result.get("topic", {}).get(name)
        if error is not None and getattr(error, "errno", 0):
            raise RuntimeError(f"alter configs of {name}: {error}")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "partitions": {"type": "int"},
            "replication_factor": {"type": "int"},
            "configs": {"type": "dict", "default": {}},
            "purge_configs": {"type": "bool", "default": True},
            "bootstrap_servers": {"type": "list", "elements": "str", "required": True},
            "request_timeout_ms": {"type": "int", "default": 30000},
        },
        supports_check_mode=True,
    )
    if not HAS_KAFKA:
        module.fail_json(msg=missing_required_lib("kafka-python"), exception=KAFKA_IMPORT_ERROR)
    params = module.params
    name = params["name"]
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=params["bootstrap_servers"],
            client_id="ansible-kafka-topic",
            request_timeout_ms=params["request_timeout_ms"],
        )
        current = describe_topic(admin, name)
        plan = plan_topic(
            name,
            params["state"],
            current,
            partitions=params["partitions"],
            replication_factor=params["replication_factor"],
            configs=params["configs"],
            purge_configs=params["purge_configs"],
        )
        after = desired_view(params["state"], current, plan, params["partitions"], params["replication_factor"])
        if plan.changed and not module.check_mode:
            apply_plan(
                admin, name, plan, params["partitions"], params["replication_factor"], params["request_timeout_ms"]
            )
    except PlanError as exc:
        module.fail_json(msg=str(exc), topic=name)
    except Exception as exc:
        module.fail_json(msg=f"Kafka admin request for topic {name} failed: {exc}", exception=traceback.format_exc())
    finally:
        if admin is not None:
            admin.close()

    result = {"changed": plan.changed, "topic": name, "actions": plan.actions, "before": current, "after": after}
    if module._diff:
        result["diff"] = {"before": current or {}, "after": after or {}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
