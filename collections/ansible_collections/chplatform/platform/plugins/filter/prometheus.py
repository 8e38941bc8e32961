# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus' scrape configuration from the platform's inventory."""

from __future__ import annotations

DOCUMENTATION = r"""
name: prometheus_scrape_configs
short_description: Prometheus scrape_configs from the platform's jobs and probes
description:
  - Turns the role's job list (one per component, with the hosts of its inventory group and the
    platform contract's port) into Prometheus C(scrape_configs). Each target is C(host:port) with a
    C(host) label (the inventory name). A job without hosts, or with a non-empty C(skip) reason, is
    left out.
  - The probes become one C(blackbox_http) job, each host of a probe's C(hosts) a target (its
    C(url) with C({host}) replaced by the host's name) with C(host) and C(component) labels,
    scraped through the blackbox exporter at O(blackbox).
positional: _input, probes, blackbox
options:
  _input:
    description: Jobs, each C({job, hosts, port}) and optionally C(path), C(bearer_token_file), C(skip).
    type: list
    elements: dict
    required: true
  probes:
    description: Probes, each C({component, hosts, url}); C({host}) in C(url) stands for each host.
    type: list
    elements: dict
    default: []
  blackbox:
    description: The blackbox exporter's address (host:port) as Prometheus reaches it.
    type: str
    default: 127.0.0.1:9115
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
        if job.get("scheme", "http") != "http":
            config["scheme"] = job["scheme"]
        if job.get("ca_file"):
            config["tls_config"] = {"ca_file": job["ca_file"]}
        if job.get("bearer_token_file"):
            config["authorization"] = {"type": "Bearer", "credentials_file": job["bearer_token_file"]}
        configs.append(config)
    targets = [
        {"targets": [p["url"].replace("{host}", host)], "labels": {"host": host, "component": p["component"]}}
        for p in probes or []
        for host in p["hosts"]
    ]
    if targets:
        configs.append(
            {
                "job_name": "blackbox_http",
                "metrics_path": "/probe",
                "params": {"module": ["http_2xx"]},
                "static_configs": targets,
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": blackbox},
                ],
            }
        )
    return configs


def prometheus_rules_for(text: str, overrides: dict) -> str:
    """A rule file's text with the hold time (``for``) of the named alerts replaced. The file is
    returned unchanged (comments and all) when no alert of it is named; else it is dumped again.
    A name no alert of the file carries is left to the other files (the role checks the union)."""
    if not overrides:
        return text
    import yaml

    doc = yaml.safe_load(text)
    hit = False
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if rule.get("alert") in overrides:
                rule["for"] = str(overrides[rule["alert"]])
                hit = True
    return yaml.safe_dump(doc, sort_keys=False, width=1000) if hit else text


class FilterModule:
    def filters(self) -> dict:
        return {"prometheus_scrape_configs": prometheus_scrape_configs, "prometheus_rules_for": prometheus_rules_for}
