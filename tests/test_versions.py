"""The exporters of the artifact bundle are pinned once: files/bundle/versions.yml, the roles that
install them (the general versions.yml-against-defaults check is test_foundation's), the Maven
file that fetches the JMX agent, bin/bundle's reading of the keys and, once built, manifest.json."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import yaml

from tests.conftest import BUNDLE_DIR, ROOT

VERSIONS = yaml.safe_load((ROOT / "files/bundle/versions.yml").read_text())
BUNDLE_SCRIPT = (ROOT / "bin/bundle").read_text()
# versions.yml key -> (manifest key, path in the bundle)
EXPORTERS = {
    "kafka_jmx_exporter_version": ("jmx_exporter", "jmx_exporter/jmx_prometheus_javaagent-{v}.jar"),
    "airflow_statsd_exporter_version": ("statsd_exporter", "statsd_exporter/statsd_exporter-{v}-linux-amd64"),
}


def test_the_kafka_role_pins_the_bundled_jmx_agent():
    defaults = yaml.safe_load((ROOT / "roles/kafka/defaults/main.yml").read_text())
    assert defaults["kafka_jmx_exporter_version"] == VERSIONS["kafka_jmx_exporter_version"]
    assert "{{ kafka_jmx_exporter_version }}" in defaults["kafka_jmx_exporter_artifact_url"]
    assert re.fullmatch(r"[0-9a-f]{64}", defaults["kafka_jmx_exporter_artifact_sha256"])


def test_the_maven_file_fetches_the_pinned_agent():
    pom = (ROOT / "files/bundle/jmx_exporter/pom.xml").read_text()
    assert f"<jmx.exporter.version>{VERSIONS['kafka_jmx_exporter_version']}</jmx.exporter.version>" in pom
    assert "<artifactId>jmx_prometheus_javaagent</artifactId>" in pom


def test_the_statsd_exporter_is_a_go_module_version():
    assert re.fullmatch(r"v\d+\.\d+\.\d+", VERSIONS["airflow_statsd_exporter_version"])
    assert "github.com/prometheus/statsd_exporter@$STATSD_EXPORTER_VERSION" in BUNDLE_SCRIPT


@pytest.mark.parametrize("key", sorted(EXPORTERS))
def test_bin_bundle_reads_the_pinned_version(key):
    assert f"$(version {key})" in BUNDLE_SCRIPT


@pytest.mark.parametrize("key", sorted(EXPORTERS))
def test_the_built_manifest_carries_the_pinned_exporter(key):
    manifest_path = BUNDLE_DIR / "manifest.json"
    if not manifest_path.exists():
        pytest.skip(f"the artifact bundle is not built ({manifest_path} missing): run bin/bundle build")
    name, path = EXPORTERS[key]
    entry = json.loads(manifest_path.read_text()).get(name)
    assert entry, f"{manifest_path} has no {name}: run bin/bundle build"
    version = VERSIONS[key]
    assert entry["version"] == version
    assert entry["path"] == path.format(v=version)
    data = (BUNDLE_DIR / entry["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    sums = (BUNDLE_DIR / "SHA256SUMS").read_text()
    assert f"{entry['sha256']}  {entry['path']}" in sums.splitlines()
