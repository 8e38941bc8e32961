#!/usr/bin/python
"""Ansible module: one Kafka SCRAM user and its ACLs, through the Kafka admin API (kafka-python)."""

from __future__ import annotations

import traceback
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.chplatform.platform.plugins.module_utils.kafka_common import (
    CONNECTION_ARGS,
    REQUIRED_IF,
    admin_client,
)

try:
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourcePatternFilter,
        ResourceType,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    HAS_KAFKA = True
    KAFKA_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    HAS_KAFKA = False
    KAFKA_IMPORT_ERROR = traceback.format_exc()

DOCUMENTATION = r"""
---
module: kafka_user
short_description: Create, update or delete a Kafka SCRAM user and the ACLs it is allowed
description:
  - Manages one SCRAM credential (KRaft keeps them in the metadata log) and the ALLOW ACLs of the
    principal C(User:<name>) through the Kafka admin protocol (kafka-python, no shell tools).
  - Kafka never gives a password back. When the user has a credential for O(mechanism), the module
    logs in as the user on O(login_bootstrap_servers) (SASL over TLS, the clients' listener); if that
    works the password is unchanged, else it is set again. Without O(login_bootstrap_servers) an
    existing credential is left alone (O(update_password=on_create)).
  - O(acls) is the complete set of the principal's ACLs when O(purge_acls=true); any other ACL of
    the principal is deleted.
  - Supports check mode and diff mode (ACLs only; the password is never shown).
version_added: "1.1.0"
author: chplatform
options:
  name:
    description: The user name (principal C(User:<name>)).
    type: str
    required: true
  password:
    description: The user's password. Required with O(state=present) and O(credential=true).
    type: str
  credential:
    description:
      - Manage the principal's SCRAM credential. C(false) manages its ACLs only (a principal that
        authenticates otherwise, such as a TLS certificate's).
    type: bool
    default: true
  state:
    description: C(absent) deletes the credential and every ACL of the principal.
    type: str
    choices: [present, absent]
    default: present
  mechanism:
    description: SCRAM mechanism of the credential.
    type: str
    choices: [SCRAM-SHA-256, SCRAM-SHA-512]
    default: SCRAM-SHA-512
  iterations:
    description: PBKDF2 iterations of a new credential (Kafka refuses fewer than 4096).
    type: int
    default: 8192
  update_password:
    description:
      - C(always) checks the password by logging in (needs O(login_bootstrap_servers)).
      - C(on_create) never changes an existing one.
    type: str
    choices: [always, on_create]
    default: always
  login_bootstrap_servers:
    description: The clients' SASL_SSL listener(s), C(host:port), where the password check logs in.
    type: list
    elements: str
  login_timeout_ms:
    description: How long the login check waits for a broker before it takes the password as changed.
    type: int
    default: 10000
  acls:
    description: The operations the principal is allowed (from any host).
    type: list
    elements: dict
    default: []
    suboptions:
      resource_type:
        description: Kind of resource.
        type: str
        choices: [topic, group, cluster, transactional_id]
        required: true
      name:
        description: Resource name (C(kafka-cluster) for the cluster).
        type: str
        default: kafka-cluster
      pattern:
        description: C(literal) matches the name, C(prefixed) every resource starting with it.
        type: str
        choices: [literal, prefixed]
        default: literal
      operations:
        description: Operations allowed, e.g. C(read), C(write), C(describe), C(idempotent_write).
        type: list
        elements: str
        required: true
  purge_acls:
    description: Delete the principal's ACLs not listed in O(acls).
    type: bool
    default: true
extends_documentation_fragment:
  - chplatform.platform.kafka
"""

EXAMPLES = r"""
- name: ClickHouse consumes sensor_data with its group, nothing else
  chplatform.platform.kafka_user:
    name: clickhouse
    password: "{{ vault_kafka_clickhouse_password }}"
    acls:
      - {resource_type: topic, name: sensor_data, operations: [read, describe]}
      - {resource_type: group, name: clickhouse_sensor_data, operations: [read, describe]}
    login_bootstrap_servers: [kafka01:9092]
    bootstrap_servers: [kafka01:9094]
    security_protocol: SSL
    ssl_cafile: /etc/chplatform/tls/ca.crt
    ssl_certfile: /etc/chplatform/tls/kafka/host.crt
    ssl_keyfile: /etc/chplatform/tls/kafka/host.key
"""

RETURN = r"""
actions:
  description: What was (or would be) done.
  returned: always
  type: list
  elements: str
"""


def acl_key(resource_type: str, name: str, pattern: str, operation: str) -> tuple[str, str, str, str]:
    return (resource_type.lower(), name, pattern.lower(), operation.lower())


def wanted_acls(acls: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    wanted = set()
    for acl in acls:
        name = "kafka-cluster" if acl["resource_type"] == "cluster" else acl["name"]
        for op in acl["operations"]:
            if op.upper() not in ACLOperation.__members__ or op.upper() in ("ANY", "UNKNOWN"):
                raise ValueError(f"unknown ACL operation {op!r} for {acl['resource_type']} {name}")
            wanted.add(acl_key(acl["resource_type"], name, acl["pattern"], op))
    return wanted


def principal_filter(principal: str) -> Any:
    return ACLFilter(
        principal=principal,
        host="*",
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )


def current_acls(admin: Any, principal: str) -> dict[tuple[str, str, str, str], Any]:
    acls, error = admin.describe_acls(principal_filter(principal))
    if error is not None and getattr(error, "errno", 0):
        raise RuntimeError(f"describe ACLs of {principal}: {error}")
    found = {}
    for acl in acls:
        if acl.permission_type != ACLPermissionType.ALLOW or acl.host != "*":
            found[("other", str(acl), "", "")] = acl
            continue
        pattern = acl.resource_pattern
        key = acl_key(pattern.resource_type.name, pattern.resource_name, pattern.pattern_type.name, acl.operation.name)
        found[key] = acl
    return found


def make_acl(principal: str, key: tuple[str, str, str, str]) -> Any:
    resource_type, name, pattern, operation = key
    return ACL(
        principal=principal,
        host="*",
        operation=ACLOperation[operation.upper()],
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(
            ResourceType[resource_type.upper()], name, ACLResourcePatternType[pattern.upper()]
        ),
    )


def exact_filter(acl: Any) -> Any:
    pattern = acl.resource_pattern
    return ACLFilter(
        principal=acl.principal,
        host=acl.host,
        operation=acl.operation,
        permission_type=acl.permission_type,
        resource_pattern=ResourcePatternFilter(pattern.resource_type, pattern.resource_name, pattern.pattern_type),
    )


def has_credential(admin: Any, name: str, mechanism: str) -> bool:
    described = admin.describe_user_scram_credentials([name]).get(name, {})
    wanted = ScramMechanism[mechanism.replace("-", "_")]
    return any(ci["mechanism"] == wanted for ci in described.get("credential_infos", []))


def can_log_in(params: dict[str, Any]) -> bool:
    """Whether the user gets in with this password on the clients' listener (TLS verified, SASL)."""
    try:
        client = KafkaAdminClient(
            bootstrap_servers=params["login_bootstrap_servers"],
            client_id="ansible-kafka-user-check",
            security_protocol="SASL_SSL",
            sasl_mechanism=params["mechanism"],
            sasl_plain_username=params["name"],
            sasl_plain_password=params["password"],
            ssl_cafile=params["ssl_cafile"],
            ssl_check_hostname=True,
            request_timeout_ms=params["login_timeout_ms"],
            bootstrap_timeout_ms=params["login_timeout_ms"],
        )
    except Exception:  # refused login, or no broker: the password is set (again)
        return False
    client.close()
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "password": {"type": "str", "no_log": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "mechanism": {"type": "str", "choices": ["SCRAM-SHA-256", "SCRAM-SHA-512"], "default": "SCRAM-SHA-512"},
            "iterations": {"type": "int", "default": 8192},
            "update_password": {
                "type": "str",
                "choices": ["always", "on_create"],
                "default": "always",
                "no_log": False,
            },
            "login_bootstrap_servers": {"type": "list", "elements": "str"},
            "login_timeout_ms": {"type": "int", "default": 10000},
            "acls": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "resource_type": {
                        "type": "str",
                        "required": True,
                        "choices": ["topic", "group", "cluster", "transactional_id"],
                    },
                    "name": {"type": "str", "default": "kafka-cluster"},
                    "pattern": {"type": "str", "choices": ["literal", "prefixed"], "default": "literal"},
                    "operations": {"type": "list", "elements": "str", "required": True},
                },
            },
            "purge_acls": {"type": "bool", "default": True},
            "credential": {"type": "bool", "default": True},
            **CONNECTION_ARGS,
        },
        required_if=REQUIRED_IF,
        supports_check_mode=True,
    )
    if not HAS_KAFKA:
        module.fail_json(msg=missing_required_lib("kafka-python"), exception=KAFKA_IMPORT_ERROR)
    params = module.params
    name, principal = params["name"], f"User:{params['name']}"
    present = params["state"] == "present"
    check_password = params["update_password"] == "always"  # noqa: S105  a mode, not a password
    if present and params["credential"] and not params["password"]:
        module.fail_json(msg=f"Kafka user {name}: state=present needs a password (or credential=false)")
    if present and params["credential"] and check_password and not params["login_bootstrap_servers"]:
        module.fail_json(msg="update_password=always needs login_bootstrap_servers (the clients' SASL_SSL listener)")
    actions: list[str] = []
    admin = None
    try:
        wanted = wanted_acls(params["acls"]) if present else set()
        admin = admin_client(params, "ansible-kafka-user")
        exists = params["credential"] and has_credential(admin, name, params["mechanism"])
        alterations = []
        if params["credential"]:
            if present and not exists:
                actions.append(f"create the {params['mechanism']} credential of {name}")
            elif present and check_password and not can_log_in(params):
                actions.append(f"set the password of {name} (the login with the wanted one failed)")
            elif not present and exists:
                actions.append(f"delete the {params['mechanism']} credential of {name}")
                alterations.append(UserScramCredentialDeletion(name, params["mechanism"]))
            if present and actions:
                alterations.append(
                    UserScramCredentialUpsertion(
                        name, params["mechanism"], params["password"], iterations=params["iterations"]
                    )
                )
        have = current_acls(admin, principal)
        to_add = sorted(wanted - set(have))
        to_delete = sorted(k for k in have if k not in wanted) if (params["purge_acls"] or not present) else []
        actions += [f"allow {principal} {op} on {rt} {n} ({p})" for rt, n, p, op in to_add]
        actions += [f"remove {principal}'s ACL {rt} {n} {p} {op}".strip() for rt, n, p, op in to_delete]
        if actions and not module.check_mode:
            if alterations:
                errors = {u: e for u, e in admin.alter_user_scram_credentials(alterations).items() if e}
                if errors:
                    module.fail_json(msg=f"SCRAM credential of {name} refused: {errors}", actions=actions)
            if to_add:
                result = admin.create_acls([make_acl(principal, k) for k in to_add])
                if result.get("failed"):
                    module.fail_json(msg=f"ACLs of {principal} refused: {result['failed']}", actions=actions)
            if to_delete:
                admin.delete_acls([exact_filter(have[k]) for k in to_delete])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:
        module.fail_json(msg=f"Kafka admin request for user {name} failed: {exc}", exception=traceback.format_exc())
    finally:
        if admin is not None:
            admin.close()
    diff = {
        "before": "\n".join(" ".join(k) for k in sorted(have)) + "\n",
        "after": "\n".join(" ".join(k) for k in sorted(wanted)) + "\n",
    }
    module.exit_json(changed=bool(actions), actions=actions, diff=diff)


if __name__ == "__main__":
    main()
