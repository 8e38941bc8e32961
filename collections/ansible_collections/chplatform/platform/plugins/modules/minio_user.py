#!/usr/bin/python
# Apache-2.0

from __future__ import annotations

import json
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.chplatform.platform.plugins.module_utils.minio_common import (
    CONNECTION_ARGS,
    CONNECTION_ERRORS,
    MinioAdminException,
    S3Error,
    admin_client,
    admin_error_code,
    fail_without_minio,
    normalize_policy,
    policies_equal,
    s3_client,
)

DOCUMENTATION = r"""
---
module: minio_user
short_description: Manage a MinIO user, its secret key and its IAM policy
description:
  - Creates, updates or removes a user of MinIO's built-in identity provider through the admin
    API (the C(minio) Python package's C(MinioAdmin)), with the root credentials.
  - With O(policy), keeps a canned policy named O(policy_name) with exactly that document and
    attaches it to the user. Policies are compared by meaning (parsed JSON, order of statements
    and list items ignored), so a re-run reports no change.
  - MinIO never returns a secret key. The module checks the stored one by signing an S3 request
    as the user; only when that request is rejected (wrong signature) does it set the secret again
    and report a change. A disabled user cannot be checked this way; its secret is left alone.
  - Supports check mode and diff mode; the diff never contains the secret.
options:
  name:
    description: The user's access key (3-20 characters).
    type: str
    required: true
  secret_key:
    description: The user's secret key (8-40 characters). Required with O(state=present).
    type: str
  state:
    description: Whether the user should exist.
    type: str
    choices: [present, absent]
    default: present
  enabled:
    description: Whether the user may sign in.
    type: bool
    default: true
  policy:
    description:
      - IAM policy document (a dict, or its JSON text) for this user. Stored as the canned policy
        O(policy_name) and attached to the user.
      - Omitted leaves the canned policy alone.
    type: raw
  policy_name:
    description: Name of the canned policy that holds O(policy). Defaults to C(<name>-policy).
    type: str
  policies:
    description:
      - Other canned policies (existing ones, e.g. C(readonly)) to attach besides O(policy_name).
      - The user ends up with exactly these plus O(policy_name) (with O(policy)); other attachments are removed.
    type: list
    elements: str
    default: []
  update_secret:
    description:
      - C(on_mismatch) verifies the stored secret by authenticating as the user and sets it when it differs.
      - C(on_create) sets the secret only when the user is created.
    type: str
    choices: [on_mismatch, on_create]
    default: on_mismatch
notes:
  - O(state=absent) removes the user and, when it exists, its canned policy O(policy_name).
extends_documentation_fragment:
  - chplatform.platform.minio
author: chplatform
"""

EXAMPLES = r"""
- name: A ClickHouse user that may only use its buckets
  minio_user:
    name: clickhouse
    secret_key: "{{ vault_minio_clickhouse_secret_key }}"
    policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: [s3:ListBucket, s3:GetBucketLocation]
          Resource: [arn:aws:s3:::clickhouse-backups]
        - Effect: Allow
          Action: [s3:GetObject, s3:PutObject, s3:DeleteObject]
          Resource: [arn:aws:s3:::clickhouse-backups/*]
    login_access_key: minio-admin
    login_secret_key: "{{ vault_minio_root_password }}"
  no_log: true
  vars:
    ansible_python_interpreter: /opt/minio-admin-venv/bin/python

- name: Remove a user
  minio_user:
    name: old-service
    state: absent
    login_access_key: minio-admin
    login_secret_key: "{{ vault_minio_root_password }}"
"""

RETURN = r"""
name:
  description: The user's access key.
  returned: always
  type: str
created:
  description: Whether the user was created by this task.
  returned: always
  type: bool
secret_updated:
  description: Whether the secret key was (or, in check mode, would be) set on an existing user.
  returned: always
  type: bool
policy_updated:
  description: Whether the canned policy document was created or changed.
  returned: always
  type: bool
policies:
  description: Canned policies attached to the user after the task.
  returned: when state is present
  type: list
  elements: str
enabled:
  description: Whether the user is enabled after the task.
  returned: when state is present
  type: bool
"""


# S3 error codes meaning "these credentials are not what the server has".
_BAD_CREDENTIALS = ("SignatureDoesNotMatch", "InvalidAccessKeyId")


def _user_info(admin, name):
    try:
        return json.loads(admin.user_info(name))
    except MinioAdminException as exc:
        if admin_error_code(exc) == "XMinioAdminNoSuchUser":
            return None
        raise


def _policy_document(admin, policy_name):
    try:
        raw = json.loads(admin.policy_info(policy_name))
    except MinioAdminException as exc:
        if admin_error_code(exc) == "XMinioAdminNoSuchPolicy":
            return None
        raise
    # Newer servers wrap the document: {"PolicyName": ..., "Policy": {...}}.
    return raw.get("Policy", raw) if isinstance(raw, dict) else raw


def _secret_matches(params, name, secret):
    """True when the server accepts a request signed with this secret (AccessDenied still proves the key)."""
    try:
        s3_client(params, access_key=name, secret_key=secret).list_buckets()
    except S3Error as exc:
        if exc.code in _BAD_CREDENTIALS:
            return False
        if exc.code == "AccessDenied":
            return True
        raise
    return True


def _attached(info):
    return sorted(p for p in (info or {}).get("policyName", "").split(",") if p)


def present(module, admin):
    params = module.params
    name = params["name"]
    secret = params["secret_key"]
    policy_name = params["policy_name"] or f"{name}-policy"
    check = module.check_mode
    result = {"created": False, "secret_updated": False, "policy_updated": False}
    before = {"exists": False}
    after = {"exists": True}

    # 1. The canned policy document, first: it must exist before it is attached.
    wanted_policies = set(params["policies"])
    if params["policy"] is not None:
        document = params["policy"]
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError as exc:
                module.fail_json(msg=f"policy for user '{name}' is not valid JSON: {exc}")
        current = _policy_document(admin, policy_name)
        before["policy_document"] = normalize_policy(current) if current is not None else None
        after["policy_document"] = normalize_policy(document)
        if current is None or not policies_equal(current, document):
            if not check:
                admin.policy_add(policy_name, policy=document)
            result["policy_updated"] = True
        wanted_policies.add(policy_name)

    # 2. The user and its secret.
    info = _user_info(admin, name)
    if info is None:
        if not check:
            admin.user_add(name, secret)
        result["created"] = True
        current_attached, current_enabled = [], True
    else:
        before["exists"] = True
        current_attached = _attached(info)
        current_enabled = info.get("status", "enabled") == "enabled"
        if params["update_secret"] == "on_mismatch":  # noqa: S105 - a mode name, not a secret
            if current_enabled:
                if not _secret_matches(params, name, secret):
                    if not check:
                        admin.user_add(name, secret)  # sets the secret; keeps the policies, enables the user
                    result["secret_updated"] = True
            elif params["enabled"]:
                # Enabling and setting the secret are one call; afterwards the secret is the wanted one.
                if not check:
                    admin.user_add(name, secret)
                result["secret_updated"] = True
                current_enabled = True
            else:
                module.warn(f"MinIO user '{name}' is disabled: its secret key cannot be verified and was left alone.")
    before["enabled"] = info.get("status", "enabled") == "enabled" if info else None
    before["policies"] = current_attached
    after["enabled"] = params["enabled"]
    after["policies"] = sorted(wanted_policies)

    # 3. Exactly the wanted policies attached.
    if sorted(wanted_policies) != current_attached:
        if not check:
            if wanted_policies:
                admin.policy_set(",".join(sorted(wanted_policies)), user=name)
            else:
                admin.detach_policy(current_attached, user=name)
        result["policies_changed"] = True

    # 4. Enabled or disabled.
    if params["enabled"] != current_enabled and not check:
        if params["enabled"]:
            admin.user_enable(name)
        else:
            admin.user_disable(name)

    changed = (
        result["created"]
        or result["secret_updated"]
        or result["policy_updated"]
        or result.pop("policies_changed", False)
        or before["enabled"] != after["enabled"]
    )
    # Secrets never appear in the diff; a secret change shows as a marker.
    if result["secret_updated"]:
        before["secret_key"], after["secret_key"] = "(differs)", "(set)"
    module.exit_json(
        changed=bool(changed),
        name=name,
        policies=after["policies"],
        enabled=after["enabled"],
        diff={"before": before, "after": after},
        **result,
    )


def absent(module, admin):
    params = module.params
    name = params["name"]
    policy_name = params["policy_name"] or f"{name}-policy"
    info = _user_info(admin, name)
    document = _policy_document(admin, policy_name)
    changed = info is not None or document is not None
    if not module.check_mode:
        if info is not None:
            admin.user_remove(name)
        if document is not None:
            admin.policy_remove(policy_name)
    module.exit_json(
        changed=changed,
        name=name,
        created=False,
        secret_updated=False,
        policy_updated=document is not None,
        diff={"before": {"exists": info is not None}, "after": {"exists": False}},
    )


def main():
    argument_spec = {
        "name": {"type": "str", "required": True},
        "secret_key": {"type": "str", "no_log": True},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "enabled": {"type": "bool", "default": True},
        "policy": {"type": "raw"},
        "policy_name": {"type": "str"},
        "policies": {"type": "list", "elements": "str", "default": []},
        "update_secret": {"type": "str", "choices": ["on_mismatch", "on_create"], "default": "on_mismatch"},
    }
    argument_spec.update(CONNECTION_ARGS)
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ["secret_key"])],
    )
    fail_without_minio(module)
    name = module.params["name"]
    if not 3 <= len(name) <= 20:
        module.fail_json(msg=f"MinIO user name (access key) '{name}' must be 3 to 20 characters long.")
    secret = module.params["secret_key"]
    if module.params["state"] == "present" and not 8 <= len(secret) <= 40:
        module.fail_json(msg=f"The secret key of MinIO user '{name}' must be 8 to 40 characters long.")
    admin = admin_client(module.params)
    try:
        if module.params["state"] == "present":
            present(module, admin)
        else:
            absent(module, admin)
    except MinioAdminException as exc:
        module.fail_json(msg=f"MinIO admin API error for user '{name}': {exc}", exception=traceback.format_exc())
    except S3Error as exc:
        module.fail_json(
            msg=f"S3 error while checking user '{name}': {exc.code}: {exc.message}", exception=traceback.format_exc()
        )
    except CONNECTION_ERRORS as exc:
        module.fail_json(
            msg=f"Cannot reach MinIO at {module.params['endpoint']}: {exc}", exception=traceback.format_exc()
        )
    except ValueError as exc:
        module.fail_json(msg=f"MinIO request failed: {exc}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
