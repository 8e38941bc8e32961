# Apache-2.0
"""The connection options shared by the MinIO modules (modules minio_bucket and minio_user);
their argument spec is plugins/module_utils/minio_common.py:CONNECTION_ARGS."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  endpoint:
    description: URL of the MinIO server (S3 and admin API).
    type: str
    default: http://127.0.0.1:9000
  login_access_key:
    description: Access key used to connect (the root user, or a user allowed to manage buckets and users).
    type: str
    required: true
  login_secret_key:
    description: Secret key used to connect.
    type: str
    required: true
  validate_certs:
    description: Verify the server's TLS certificate (https endpoints).
    type: bool
    default: true
  ca_file:
    description: CA bundle to verify the server with; the system store by default.
    type: path
  region:
    description: Region name the server uses for request signing.
    type: str
    default: us-east-1
requirements:
  - minio (Python package, 7.2.x)
"""
