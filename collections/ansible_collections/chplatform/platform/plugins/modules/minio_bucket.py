#!/usr/bin/python
# Apache-2.0

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.chplatform.platform.plugins.module_utils.minio_common import (
    CONNECTION_ARGS,
    CONNECTION_ERRORS,
    S3Error,
    bucket_name_problem,
    fail_without_minio,
    s3_client,
)

DOCUMENTATION = r"""
---
module: minio_bucket
short_description: Create, remove and configure versioning of buckets on a MinIO (S3) server
description:
  - Makes sure a bucket exists or is absent, and optionally whether object versioning is enabled,
    through the S3 API with the C(minio) Python package.
  - Idempotent, supports check mode and diff mode. A bucket is only removed when it is empty; a
    non-empty bucket fails the task instead of losing data.
options:
  name:
    description: Bucket name; must follow the S3 naming rules (3-63 lowercase letters, digits, dots, hyphens).
    type: str
    required: true
  state:
    description: Whether the bucket should exist.
    type: str
    choices: [present, absent]
    default: present
  versioning:
    description:
      - C(true) enables object versioning, C(false) suspends it (a never-versioned bucket counts as off).
      - Omitted leaves versioning as it is.
    type: bool
extends_documentation_fragment:
  - chplatform.platform.minio
author: chplatform
"""

EXAMPLES = r"""
- name: Keep backups in a versioned bucket
  minio_bucket:
    name: clickhouse-backups
    versioning: true
    login_access_key: minio-admin
    login_secret_key: "{{ vault_minio_root_password }}"
  vars:
    ansible_python_interpreter: /opt/minio-admin-venv/bin/python

- name: Remove an empty bucket
  minio_bucket:
    name: scratch
    state: absent
    login_access_key: minio-admin
    login_secret_key: "{{ vault_minio_root_password }}"
"""

RETURN = r"""
name:
  description: The bucket name.
  returned: always
  type: str
  sample: clickhouse-backups
exists:
  description: Whether the bucket exists after the task (predicted in check mode).
  returned: always
  type: bool
versioning:
  description: Versioning status after the task (C(Enabled), C(Suspended) or C(Off)).
  returned: when the bucket exists
  type: str
  sample: Enabled
"""


def _versioning_status(client, name):
    status = client.get_bucket_versioning(name).status
    return status or "Off"


def run(module):
    params = module.params
    name = params["name"]
    problem = bucket_name_problem(name)
    if problem:
        module.fail_json(msg=f"Invalid bucket name '{name}': {problem}.")

    client = s3_client(params)
    exists = client.bucket_exists(name)
    before = {"exists": exists}
    if exists:
        before["versioning"] = _versioning_status(client, name)
    after = dict(before)
    changed = False

    if params["state"] == "absent":
        if exists:
            if next(iter(client.list_objects(name, recursive=True, include_version=True)), None) is not None:
                module.fail_json(
                    msg=(
                        f"Bucket '{name}' is not empty; it was left in place. Empty it first (all object versions) "
                        "or keep it with state: present."
                    )
                )
            if not module.check_mode:
                client.remove_bucket(name)
            changed = True
            after = {"exists": False}
    else:
        if not exists:
            if not module.check_mode:
                client.make_bucket(name)
            changed = True
            after = {"exists": True, "versioning": "Off"}
        wanted = params["versioning"]
        if wanted is not None:
            current = after["versioning"]
            satisfied = current == "Enabled" if wanted else current in ("Suspended", "Off")
            if not satisfied:
                target = "Enabled" if wanted else "Suspended"
                if not module.check_mode:
                    from minio.versioningconfig import ENABLED, SUSPENDED, VersioningConfig

                    client.set_bucket_versioning(name, VersioningConfig(ENABLED if wanted else SUSPENDED))
                changed = True
                after["versioning"] = target

    result = {"changed": changed, "name": name, "exists": after["exists"], "diff": {"before": before, "after": after}}
    if "versioning" in after:
        result["versioning"] = after["versioning"]
    module.exit_json(**result)


def main():
    argument_spec = {
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "versioning": {"type": "bool"},
    }
    argument_spec.update(CONNECTION_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    fail_without_minio(module)
    try:
        run(module)
    except S3Error as exc:
        module.fail_json(
            msg=f"S3 error on bucket '{module.params['name']}': {exc.code}: {exc.message}",
            exception=traceback.format_exc(),
        )
    except CONNECTION_ERRORS as exc:
        module.fail_json(
            msg=f"Cannot reach MinIO at {module.params['endpoint']}: {exc}", exception=traceback.format_exc()
        )
    except ValueError as exc:
        module.fail_json(msg=f"MinIO request failed: {exc}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
