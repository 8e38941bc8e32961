# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Monitoring: Prometheus' scrape configuration from the inventory, and the bearer token
Prometheus reads MinIO's metrics with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

DOCUMENTATION = r"""
name: prometheus_scrape_configs
short_description: Prometheus scrape_configs from the platform's jobs and probes
description:
  - Turns the role's job list (one per component, with the hosts of its inventory group and the
    platform contract's port) into Prometheus C(scrape_configs). Each target is C(host:port) with a
    C(host) label (the inventory name). A job without hosts, or with a non-empty C(skip) reason, is
    left out.
  - The probes become one C(blackbox_http) job: each probed URL a target with C(host) and
    C(component) labels, scraped through the blackbox exporter at O(blackbox).
positional: _input, probes, blackbox
options:
  _input:
    description: Jobs, each C({job, hosts, port}) and optionally C(path), C(bearer_token_file), C(skip).
    type: list
    elements: dict
    required: true
  probes:
    description: Probes, each C({host, component, url}).
    type: list
    elements: dict
    default: []
  blackbox:
    description: The blackbox exporter's address (host:port) as Prometheus reaches it.
    type: str
    default: 127.0.0.1:9115
"""

DOCUMENTATION_TOKEN = r"""
name: minio_prometheus_token
short_description: The bearer token of a MinIO user for MinIO's Prometheus metrics
description:
  - Returns the JWT MinIO accepts on its metrics endpoints (C(/minio/v2/metrics/...)) for the user
    named in the input, as C(mc admin prometheus generate) makes it - HS512, subject the access key,
    issuer C(prometheus) - signed with the user's secret key. MinIO then checks that the user may
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


def prometheus_scrape_configs(
    jobs: list[dict], probes: list[dict] | None = None, blackbox: str = "127.0.0.1:9115"
) -> list[dict]:
    configs = []
    for job in jobs:
        if not job.get("hosts") or job.get("skip"):
            continue
        config: dict = {
            "job_name": job["job"],
            "metrics_path": job.get("path") or "/metrics",
            "static_configs": [
                {"targets": [f"{host}:{int(job['port'])}"], "labels": {"host": host}} for host in job["hosts"]
            ],
        }
        if job.get("bearer_token_file"):
            config["authorization"] = {"type": "Bearer", "credentials_file": job["bearer_token_file"]}
        configs.append(config)
    if probes:
        configs.append(
            {
                "job_name": "blackbox_http",
                "metrics_path": "/probe",
                "params": {"module": ["http_2xx"]},
                "static_configs": [
                    {"targets": [p["url"]], "labels": {"host": p["host"], "component": p["component"]}}
                    for p in probes
                ],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": blackbox},
                ],
            }
        )
    return configs


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
        return {
            "minio_prometheus_token": minio_prometheus_token,
            "prometheus_scrape_configs": prometheus_scrape_configs,
        }
