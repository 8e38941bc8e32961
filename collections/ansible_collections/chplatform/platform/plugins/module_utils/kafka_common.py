# Apache-2.0
"""The connection shared by the Kafka modules (kafka_topic, kafka_user): one argument spec (documented
by doc fragment chplatform.platform.kafka) and one way to open a kafka-python admin client."""

from __future__ import annotations

import traceback
from typing import Any

try:
    import kafka  # noqa: F401  the import is the check that kafka-python is there

    HAS_KAFKA = True
    KAFKA_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    HAS_KAFKA = False
    KAFKA_IMPORT_ERROR = traceback.format_exc()

CONNECTION_ARGS: dict[str, dict[str, Any]] = {
    "bootstrap_servers": {"type": "list", "elements": "str", "required": True},
    "security_protocol": {"type": "str", "choices": ["PLAINTEXT", "SSL"], "default": "PLAINTEXT"},
    "ssl_cafile": {"type": "path"},
    "ssl_certfile": {"type": "path"},
    "ssl_keyfile": {"type": "path"},
    "request_timeout_ms": {"type": "int", "default": 30000},
}

REQUIRED_IF = [("security_protocol", "SSL", ("ssl_cafile", "ssl_certfile", "ssl_keyfile"))]


def client_config(params: dict[str, Any]) -> dict[str, Any]:
    """kafka-python's connection settings from the module's parameters (TLS verified against the CA,
    the host's certificate as its identity)."""
    config: dict[str, Any] = {
        "bootstrap_servers": params["bootstrap_servers"],
        "request_timeout_ms": params["request_timeout_ms"],
        "security_protocol": params["security_protocol"],
    }
    if params["security_protocol"] == "SSL":
        config.update(
            ssl_cafile=params["ssl_cafile"],
            ssl_certfile=params["ssl_certfile"],
            ssl_keyfile=params["ssl_keyfile"],
            ssl_check_hostname=True,
        )
    return config


def admin_client(params: dict[str, Any], client_id: str) -> Any:
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(client_id=client_id, **client_config(params))


def require_kafka(module: Any) -> None:
    """Fail the module, naming the library, where kafka-python is missing (the admin virtualenv's
    python is the interpreter the roles give these modules)."""
    if not HAS_KAFKA:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("kafka-python"), exception=KAFKA_IMPORT_ERROR)
