# Apache-2.0
"""The connection options shared by the Kafka modules (kafka_topic, kafka_user); their argument spec
is plugins/module_utils/kafka_common.py:CONNECTION_ARGS."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  bootstrap_servers:
    description: Brokers to contact, as C(host:port) strings.
    type: list
    elements: str
    required: true
  security_protocol:
    description:
      - C(SSL) connects with TLS, verifies the brokers against O(ssl_cafile) and their names, and
        presents O(ssl_certfile) as the client's identity (the platform's admin listener,
        kafka_broker_port, where the Kafka hosts' certificates are super users).
    type: str
    choices: [PLAINTEXT, SSL]
    default: PLAINTEXT
  ssl_cafile:
    description: CA certificate (PEM) the brokers' certificates are verified against. Required with C(SSL).
    type: path
  ssl_certfile:
    description: The client's certificate (PEM). Required with C(SSL).
    type: path
  ssl_keyfile:
    description: The client's private key (PEM). Required with C(SSL).
    type: path
  request_timeout_ms:
    description: Timeout of each admin request, in milliseconds.
    type: int
    default: 30000
requirements:
  - kafka-python >= 3.0 on the host that runs the module
"""
