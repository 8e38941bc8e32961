"""chplatform.platform.kafka_user's plan, without a broker (its runs against real brokers with
SASL and ACLs are in the kafka scenario): the ACL set wanted from the module's input, and the
refusal of an operation Kafka does not know."""

from __future__ import annotations

import pytest
from ansible_collections.chplatform.platform.plugins.module_utils import kafka_common
from ansible_collections.chplatform.platform.plugins.modules import kafka_user


def test_wanted_acls_one_entry_per_operation_the_cluster_named_as_kafka_does():
    wanted = kafka_user.wanted_acls(
        [
            {"resource_type": "topic", "name": "sensor_data", "pattern": "literal", "operations": ["Read", "describe"]},
            {"resource_type": "cluster", "name": "ignored", "pattern": "literal", "operations": ["cluster_action"]},
            {"resource_type": "group", "name": "etl_", "pattern": "prefixed", "operations": ["read"]},
        ]
    )
    assert wanted == {
        ("topic", "sensor_data", "literal", "read"),
        ("topic", "sensor_data", "literal", "describe"),
        ("cluster", "kafka-cluster", "literal", "cluster_action"),
        ("group", "etl_", "prefixed", "read"),
    }


@pytest.mark.parametrize("operation", ["reed", "any", "unknown"])
def test_an_operation_kafka_does_not_know_is_refused_by_name(operation):
    with pytest.raises(ValueError, match=f"unknown ACL operation '{operation}' for topic sensor_data"):
        kafka_user.wanted_acls(
            [{"resource_type": "topic", "name": "sensor_data", "pattern": "literal", "operations": [operation]}]
        )


def test_the_admin_connection_verifies_the_brokers_and_presents_the_hosts_certificate():
    params = {
        "bootstrap_servers": ["kafka01:9094"],
        "request_timeout_ms": 1000,
        "security_protocol": "SSL",
        "ssl_cafile": "/ca.crt",
        "ssl_certfile": "/host.crt",
        "ssl_keyfile": "/host.key",
    }
    config = kafka_common.client_config(params)
    assert config["ssl_check_hostname"] is True
    files = (config["ssl_cafile"], config["ssl_certfile"], config["ssl_keyfile"])
    assert files == ("/ca.crt", "/host.crt", "/host.key")
    plain = kafka_common.client_config({**params, "security_protocol": "PLAINTEXT"})
    assert "ssl_cafile" not in plain
