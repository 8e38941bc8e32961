# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bearer token Prometheus reads MinIO's metrics with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

DOCUMENTATION = r"""
name: minio_prometheus_token
short_description: The bearer token of a MinIO user for MinIO's Prometheus metrics
description:
  - Returns the JWT MinIO accepts on its metrics endpoints (C(/minio/v2/metrics/...)) for the user
    named in the input, as C(mc admin prometheus generate) makes it (HS512, subject the access key,
    issuer C(prometheus)), signed with the user's secret key. MinIO then checks that the user may
    do C(admin:Prometheus).
  - The expiry is fixed (O(expires), 2100-01-01 by default), so the same key gives the same token
    and a re-run changes nothing; a new secret key gives a new token.
positional: _input, secret_key
options:
  _input:
    description: The MinIO user's access key (its name).
    type: str
    required: true
  secret_key:
    description: The user's secret key.
    type: str
    required: true
  expires:
    description: Expiry, seconds since the epoch.
    type: int
    default: 4102444800
"""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def minio_prometheus_token(access_key: str, secret_key: str, expires: int = 4102444800) -> str:
    header = _b64(json.dumps({"alg": "HS512", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"exp": int(expires), "iss": "prometheus", "sub": str(access_key)}
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(str(secret_key).encode(), signing_input, hashlib.sha512).digest()
    return f"{header}.{payload}.{_b64(signature)}"


class FilterModule:
    def filters(self) -> dict:
        return {"minio_prometheus_token": minio_prometheus_token}
