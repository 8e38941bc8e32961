"""Kafka topology and identifiers, shared by the kafka role and the platform contract.

``kafka_node_roles`` / ``kafka_brokers`` / ``kafka_controllers`` decide, once, which hosts of the
kafka group are brokers and which are KRaft controllers (a host without ``kafka_process_roles`` is
a combined node); the kafka role renders its quorum from them and the platform contract derives
the client bootstrap list from them, so the two can never disagree.

Deterministic Kafka identifiers:

Kafka identifies a cluster and each log directory by a UUID written as 22 characters of
unpadded URL-safe base64. ``kafka_uuid`` derives one from any text (the SHA-256 of it), so
that every node of a cluster computes the same cluster id and the same directory ids for the
``--initial-controllers`` list without sharing state.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

DEFAULT_PROCESS_ROLES = ("broker", "controller")

DOCUMENTATION = r"""
name: kafka_uuid
short_description: Derive a Kafka UUID (22-char base64url) from a text
description:
  - The first 16 bytes of the SHA-256 of the text, as unpadded URL-safe base64, like
    C(kafka-storage random-uuid) prints. Never starts with C(-) (Kafka avoids that too, it
    would read as a command-line option).
positional: _input
options:
  _input:
    description: Any text; the same text always gives the same id.
    type: str
    required: true
"""


def kafka_uuid(text: object) -> str:
    """Return a deterministic Kafka UUID string for ``text``."""
    seed = str(text).encode("utf-8")
    while True:
        digest = hashlib.sha256(seed).digest()[:16]
        value = base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
        # All-zero and the first 100 values are reserved by Kafka; a hash never lands there,
        # but a leading '-' happens 1 time in 64: rehash, as Uuid.randomUuid() does.
        if not value.startswith("-"):
            return value
        seed += b"#"


def kafka_node_roles(hosts: list[str], hostvars: Any) -> dict[str, list[str]]:
    """Each host's process roles: its ``kafka_process_roles``, else a combined broker+controller."""
    roles = {}
    for host in hosts or []:
        try:
            value = hostvars[host].get("kafka_process_roles")
        except KeyError:
            value = None
        roles[host] = list(value) if value else list(DEFAULT_PROCESS_ROLES)
    return roles


def kafka_brokers(hosts: list[str], hostvars: Any) -> list[str]:
    """The hosts that run a broker, in inventory order."""
    return [h for h, r in kafka_node_roles(hosts, hostvars).items() if "broker" in r]


def kafka_controllers(hosts: list[str], hostvars: Any) -> list[str]:
    """The hosts that run a KRaft controller, in inventory order."""
    return [h for h, r in kafka_node_roles(hosts, hostvars).items() if "controller" in r]


class FilterModule:
    def filters(self) -> dict:
        return {
            "kafka_uuid": kafka_uuid,
            "kafka_node_roles": kafka_node_roles,
            "kafka_brokers": kafka_brokers,
            "kafka_controllers": kafka_controllers,
        }
