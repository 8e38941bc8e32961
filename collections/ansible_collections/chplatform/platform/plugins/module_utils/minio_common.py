# Shared code of the minio_bucket and minio_user modules: connection options, clients,
# S3 naming rules and semantic comparison of IAM policy documents.
# Apache-2.0

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import urlsplit

try:
    import urllib3
    from minio import Minio, MinioAdmin
    from minio.credentials import StaticProvider
    from minio.error import MinioAdminException, S3Error

    HAS_MINIO = True
    MINIO_IMPORT_ERROR = None
    # Network and TLS failures: the server is down, the name is wrong, the certificate is not trusted.
    CONNECTION_ERRORS: tuple[type[Exception], ...] = (OSError, urllib3.exceptions.HTTPError)
except ImportError as exc:  # pragma: no cover - depends on the interpreter the module runs under
    HAS_MINIO = False
    MINIO_IMPORT_ERROR = exc
    Minio = MinioAdmin = StaticProvider = None
    MinioAdminException = S3Error = Exception
    CONNECTION_ERRORS = (OSError,)

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# Options every module of this family takes to reach the server.
CONNECTION_ARGS: dict[str, dict[str, Any]] = {
    "endpoint": {"type": "str", "default": "http://127.0.0.1:9000"},
    "login_access_key": {"type": "str", "required": True},
    "login_secret_key": {"type": "str", "required": True, "no_log": True},
    "validate_certs": {"type": "bool", "default": True},
    "ca_file": {"type": "path"},
    "region": {"type": "str", "default": "us-east-1"},
}

_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def bucket_name_problem(name: str) -> str | None:
    """The S3 naming rule a bucket name breaks, or None when the name is valid."""
    if not 3 <= len(name) <= 63:
        return "S3 bucket names are 3 to 63 characters long"
    if not _BUCKET_CHARS.match(name):
        return (
            "S3 bucket names use only lowercase letters, digits, dots and hyphens, "
            "and begin and end with a letter or digit (no uppercase, no underscores)"
        )
    if ".." in name or ".-" in name or "-." in name:
        return "S3 bucket names have no two adjacent dots and no dot next to a hyphen"
    if _IPV4.match(name):
        return "S3 bucket names must not be formatted as an IP address"
    if name.startswith("xn--") or name.endswith("-s3alias"):
        return "S3 bucket names must not start with xn-- or end with -s3alias"
    return None


def _as_sorted_list(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return sorted(value, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def _normalize(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "Sid" and not value:
            continue
        if key == "Statement":
            statements = value if isinstance(value, list) else [value]
            out[key] = sorted((_normalize(s) for s in statements), key=lambda s: json.dumps(s, sort_keys=True))
        elif key in ("Action", "NotAction", "Resource", "NotResource"):
            out[key] = _as_sorted_list(value)
        elif key == "Principal" and isinstance(value, dict):
            out[key] = {k: _as_sorted_list(v) for k, v in value.items()}
        elif key == "Condition" and isinstance(value, dict):
            out[key] = {op: {k: _as_sorted_list(v) for k, v in cond.items()} for op, cond in value.items()}
        else:
            out[key] = value
    return out


def normalize_policy(document: Any) -> Any:
    """A canonical form of an IAM policy: the same meaning gives the same value.

    Single strings and one-element lists are the same (Action, Resource, ...), order of list
    items and statements does not matter, and an empty Sid is the same as none.
    """
    if isinstance(document, str):
        document = json.loads(document) if document.strip() else {}
    return _normalize(document)


def policies_equal(a: Any, b: Any) -> bool:
    return json.dumps(normalize_policy(a), sort_keys=True) == json.dumps(normalize_policy(b), sort_keys=True)


def _http_client(params: dict[str, Any]) -> Any:
    ca_file = params.get("ca_file") or (SYSTEM_CA_BUNDLE if os.path.exists(SYSTEM_CA_BUNDLE) else None)
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=60),
        cert_reqs="CERT_REQUIRED" if params["validate_certs"] else "CERT_NONE",
        ca_certs=ca_file,
        retries=urllib3.Retry(total=3, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]),
    )


def _split_endpoint(endpoint: str) -> tuple[str, bool]:
    parts = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"endpoint '{endpoint}' must look like http://host:port or https://host:port")
    return parts.netloc, parts.scheme == "https"


def s3_client(params: dict[str, Any], access_key: str | None = None, secret_key: str | None = None) -> Any:
    """An S3 client, with the login credentials unless others are given."""
    netloc, secure = _split_endpoint(params["endpoint"])
    return Minio(
        netloc,
        access_key=access_key if access_key is not None else params["login_access_key"],
        secret_key=secret_key if secret_key is not None else params["login_secret_key"],
        secure=secure,
        region=params["region"],
        http_client=_http_client(params),
    )


def admin_client(params: dict[str, Any]) -> Any:
    """A client of MinIO's admin API with the login (root) credentials."""
    netloc, secure = _split_endpoint(params["endpoint"])
    return MinioAdmin(
        endpoint=netloc,
        credentials=StaticProvider(params["login_access_key"], params["login_secret_key"]),
        secure=secure,
        http_client=_http_client(params),
    )


def admin_error_code(exc: Exception) -> str:
    """The MinIO error code (e.g. XMinioAdminNoSuchUser) of an admin API exception."""
    body = getattr(exc, "_body", "") or ""
    try:
        return json.loads(body).get("Code", "")
    except ValueError:
        return ""


def fail_without_minio(module: Any) -> None:
    if not HAS_MINIO:
        module.fail_json(
            msg=(
                "The Python package 'minio' (7.2.x) is needed on the host that runs this module: "
                "run it with an interpreter that has it (the minio role uses /opt/minio-admin-venv/bin/python)."
            ),
            exception=str(MINIO_IMPORT_ERROR),
        )
