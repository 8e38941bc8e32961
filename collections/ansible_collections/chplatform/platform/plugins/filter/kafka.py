"""Deterministic Kafka identifiers for the kafka role.

Kafka identifies a cluster and each log directory by a UUID written as 22 characters of
unpadded URL-safe base64. ``kafka_uuid`` derives one from any text (the SHA-256 of it), so
that every node of a cluster computes the same cluster id and the same directory ids for the
``--initial-controllers`` list without sharing state.
"""

from __future__ import annotations

import base64
import hashlib

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


class FilterModule:
    def filters(self) -> dict:
        return {"kafka_uuid": kafka_uuid}
