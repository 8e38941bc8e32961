"""Data written everywhere it can live on the platform, and read back as counts and checksums.

The full-stack scenario writes it before the idempotence run (side_effect.yml runs this file) and
reads it back after the re-run of site.yml and after every host restarted (tests/test_platform.py):
rows in PostgreSQL `prod`, messages in Kafka, objects in MinIO's `datasets` bucket, a variable set
and a DAG run triggered through Airflow's REST API, a chart saved through Superset's API. Every
command runs on the platform's own hosts over SSH, as the deploy user with sudo, like Ansible.
Secrets travel on stdin or in files only readable by root, never on a command line.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("CHPLATFORM_LAB_STATE", "~/.local/share/chplatform/lab")).expanduser()
SSH_CONFIG = STATE / "ssh" / "config"
# The lab's CA on the controller (roles/pki, pki_dir of inventories/lab).
LAB_CA = STATE / "pki" / "ca.crt"
SNAPSHOT = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "platform-data.json"

ROWS = 1000
MESSAGES = 500
OBJECTS = {"rerun-probe/a.bin": 64 * 1024, "rerun-probe/b.bin": 1024 * 1024, "rerun-probe/c.json": 200}
PROBE = "rerun_probe"
CHART = "Rerun probe"


ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "lab" / "hosts.yml"
# The project's configuration and plugins, with absolute paths (molecule's are relative to the
# scenario directory; the tests' own ansible-playbook runs start at the repository root).
ANSIBLE_PATHS = {
    "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
    "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
}


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **ANSIBLE_PATHS)
    env.update(extra)
    return env


def run(cmd: list[str], timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """A command (ansible-playbook …) from the repository root with the project's Ansible settings."""
    return subprocess.run(
        cmd, cwd=ROOT, env=ansible_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


def secret(name: str) -> str:
    return (STATE / "secrets" / name).read_text().split()[0]


# The UIs behind nginx (roles/web_proxy, platform_web_tls): (host, health path, a mark of a healthy
# body, the app's own port, the port the lab publishes the host's 443 on).
UIS = [
    ("airflow01", "/api/v2/monitor/health", '"metadatabase"', 8080, 8443),
    ("superset01", "/health", "OK", 8088, 8444),
]
# Every lab host (inventories/lab/hosts.yml).
HOSTS = ["airflow01", "kafka01", "keeper03", "minio01", "monitor01", "pg01", "replica01", "replica02", "superset01"]
NO_CLICKHOUSE = "no ClickHouse server in the lab: its packages are not in the bundle (cannot be downloaded here)"


def clickhouse_available() -> bool:
    manifest = Path(os.environ.get("CHPLATFORM_CACHE", "/var/cache/chplatform")) / "bundle" / "manifest.json"
    return json.loads(manifest.read_text())["clickhouse"]["available"]


def remote(host: str, script: str, stdin: str = "", timeout: int = 180) -> str:
    """Run a shell script as root on a lab host over SSH (the lab's key and known_hosts)."""
    cmd = ["ssh", "-F", str(SSH_CONFIG), host, "sudo -n bash -euo pipefail -c " + shlex.quote(script)]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{host}: exit {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    return proc.stdout.strip()


def kafka_sasl(user: str, password: str) -> dict:
    """kafka-python settings of a SCRAM user on the lab's external listener (localhost:29092), verified
    against the lab's CA (kafka01's certificate names localhost)."""
    return {
        "bootstrap_servers": "localhost:29092",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
        "ssl_cafile": str(LAB_CA),
    }


def count_since(consumer, parts: list, start: dict, timeout: float = 120) -> tuple[int, dict]:
    """Messages in ``parts`` from the offsets ``start`` to the current end (an assigned kafka-python
    consumer, closed afterwards); returns the count and the end offsets."""
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, start[tp])
    end = consumer.end_offsets(parts)
    got = 0
    deadline = time.monotonic() + timeout
    while any(consumer.position(tp) < end[tp] for tp in parts) and time.monotonic() < deadline:
        got += sum(len(batch) for batch in consumer.poll(timeout_ms=2000).values())
    consumer.close()
    return got, end


# --------------------------------------------------------------------------- PostgreSQL

PG_WRITE = f"""
sudo -u postgres psql -v ON_ERROR_STOP=1 -q -d prod <<'SQL'
-- As the application writes: the database owner creates and fills its tables.
SET ROLE prod_owner;
CREATE TABLE IF NOT EXISTS public.{PROBE} (id integer PRIMARY KEY, payload text NOT NULL);
INSERT INTO public.{PROBE} SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g ON CONFLICT DO NOTHING;
SQL
"""
PG_READ = f"""sudo -u postgres psql -d prod -Atc "SELECT count(*) || ' ' || md5(string_agg(id || ':' || payload, ',' ORDER BY id)) FROM public.{PROBE}" """


def postgresql() -> dict:
    count, digest = remote("pg01", PG_READ).split()
    return {"rows": int(count), "md5": digest}


# --------------------------------------------------------------------------- Kafka

KAFKA_PY = "/opt/kafka-admin-venv/bin/python"
# The Kafka host's admin path: TLS on the brokers' listener with its own certificate (a super user).
KAFKA_TLS = (
    'TLS = dict(bootstrap_servers="kafka01:9094", security_protocol="SSL", ssl_cafile="/etc/chplatform/tls/ca.crt", '
    'ssl_certfile="/etc/chplatform/tls/kafka/host.crt", ssl_keyfile="/etc/chplatform/tls/kafka/host.key")'
)
KAFKA_WRITE = f"""{KAFKA_PY} - <<'PY'
{KAFKA_TLS}
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(**TLS)
if "{PROBE}" not in admin.list_topics():
    admin.create_topics([NewTopic("{PROBE}", num_partitions=1, replication_factor=1)])
admin.close()
p = KafkaProducer(acks="all", **TLS)
for i in range({MESSAGES}):
    p.send("{PROBE}", f"probe-{{i}}".encode())
p.flush()
p.close()
PY"""
KAFKA_READ = f"""{KAFKA_PY} - <<'PY'
{KAFKA_TLS}
import hashlib, json
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=5000, **TLS)
tp = TopicPartition("{PROBE}", 0)
c.assign([tp]); c.seek_to_beginning(tp)
end = c.end_offsets([tp])[tp]
h, n = hashlib.sha256(), 0
while c.position(tp) < end:
    for batch in c.poll(timeout_ms=2000).values():
        for m in batch:
            h.update(m.value + b"\\n"); n += 1
c.close()
print(json.dumps({{"messages": n, "end_offset": end, "sha256": h.hexdigest()}}))
PY"""


def kafka() -> dict:
    return json.loads(remote("kafka01", KAFKA_READ))


# --------------------------------------------------------------------------- MinIO

MINIO_PY = "/opt/minio-admin-venv/bin/python"
MINIO_COMMON = f"""set -a; . /etc/default/minio; set +a
{MINIO_PY} - <<'PY'
import hashlib, io, json, os
import urllib3
from minio import Minio
# HTTPS (minio_tls): under the name the certificate carries, verified against the platform's CA.
http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs="/etc/chplatform/tls/ca.crt")
m = Minio("minio01:9000", access_key=os.environ["MINIO_ROOT_USER"], secret_key=os.environ["MINIO_ROOT_PASSWORD"],
          secure=True, http_client=http)
"""
MINIO_WRITE = (
    MINIO_COMMON
    + "\n".join(
        f"m.put_object('datasets', '{name}', io.BytesIO(hashlib.sha256(b'{name}').digest() * {size // 32}), {size // 32 * 32})"
        for name, size in OBJECTS.items()
    )
    + "\nPY"
)
MINIO_READ = (
    MINIO_COMMON
    + """out = {}
for o in m.list_objects("datasets", prefix="rerun-probe/", recursive=True):
    out[o.object_name] = hashlib.sha256(m.get_object("datasets", o.object_name).read()).hexdigest()
print(json.dumps(out, sort_keys=True))
PY"""
)


def minio() -> dict:
    return json.loads(remote("minio01", MINIO_READ))


# --------------------------------------------------------------------------- Airflow

AIRFLOW = "http://127.0.0.1:8080"


def _airflow(script: str) -> str:
    """curl against the Airflow API on airflow01 with an admin token (password on stdin)."""
    login = f"""body=$(python3 -c 'import json,sys; print(json.dumps({{"username": "admin", "password": sys.stdin.read().strip()}}))')
token=$(curl -fsS -X POST -H 'Content-Type: application/json' -d "$body" {AIRFLOW}/auth/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
api() {{ curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }}
"""
    return remote("airflow01", login + script, stdin=secret("airflow_admin"))


AIRFLOW_WRITE = f"""
api -X POST {AIRFLOW}/api/v2/variables -d '{{"key": "{PROBE}", "value": "set through the API"}}' >/dev/null \\
  || api -X PATCH {AIRFLOW}/api/v2/variables/{PROBE} -d '{{"key": "{PROBE}", "value": "set through the API"}}' >/dev/null
api -X POST {AIRFLOW}/api/v2/dags/pg_to_ch/dagRuns -d '{{"dag_run_id": "{PROBE}", "logical_date": null}}' >/dev/null
"""
AIRFLOW_READ = f"""
v=$(api {AIRFLOW}/api/v2/variables/{PROBE} | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
r=$(api {AIRFLOW}/api/v2/dags/pg_to_ch/dagRuns/{PROBE} | python3 -c 'import json,sys; print(json.load(sys.stdin)["dag_run_id"])')
echo "$v|$r"
"""


def airflow() -> dict:
    value, run = _airflow(AIRFLOW_READ).split("|")
    return {"variable": value, "dag_run": run}


# --------------------------------------------------------------------------- Superset

SUPERSET = "http://127.0.0.1:8088"


def _superset(script: str) -> str:
    login = f"""jar=$(mktemp); trap 'rm -f "$jar"' EXIT
body=$(python3 -c 'import json,sys; print(json.dumps({{"username": "admin", "password": sys.stdin.read().strip(), "provider": "db", "refresh": False}}))')
token=$(curl -fsS -c "$jar" -b "$jar" -X POST -H 'Content-Type: application/json' -d "$body" {SUPERSET}/api/v1/security/login | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
api() {{ curl -fsS -c "$jar" -b "$jar" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }}
csrf=$(api {SUPERSET}/api/v1/security/csrf_token/ | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"])')
"""
    return remote("superset01", login + script, stdin=secret("superset_admin"))


SUPERSET_QUERY = f"""q="(filters:!((col:slice_name,opr:eq,value:'{CHART}')))"
"""
SUPERSET_WRITE = (
    SUPERSET_QUERY
    + f"""n=$(api -G {SUPERSET}/api/v1/chart/ --data-urlencode "q=$q" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
if [ "$n" = 0 ]; then
  ds=$(api {SUPERSET}/api/v1/dataset/ | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"][0]["id"])')
  api -X POST -H "X-CSRFToken: $csrf" -H "Referer: {SUPERSET}" {SUPERSET}/api/v1/chart/ \\
    -d "{{\\"slice_name\\": \\"{CHART}\\", \\"viz_type\\": \\"table\\", \\"datasource_id\\": $ds, \\"datasource_type\\": \\"table\\", \\"params\\": \\"{{\\\\\\"row_limit\\\\\\": 42}}\\"}}" >/dev/null
fi
"""
)
SUPERSET_READ = (
    SUPERSET_QUERY
    + f"""api -G {SUPERSET}/api/v1/chart/ --data-urlencode "q=$q" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({{"charts": d["count"], "ids": sorted(c["id"] for c in d["result"])}}))'
"""
)


def superset() -> dict:
    return json.loads(_superset(SUPERSET_READ))


# --------------------------------------------------------------------------- all of it

READERS = {"postgresql": postgresql, "kafka": kafka, "minio": minio, "airflow": airflow, "superset": superset}


def write_all() -> dict:
    """Write the data (each write is idempotent) and return what was measured afterwards."""
    remote("pg01", PG_WRITE)
    remote("kafka01", KAFKA_WRITE)
    remote("minio01", MINIO_WRITE)
    _airflow(AIRFLOW_WRITE)
    _superset(SUPERSET_WRITE)
    return read_all()


def read_all(attempts: int = 1, delay: float = 5.0) -> dict:
    """Measure every store; retry (after a restart the services take a moment) up to ``attempts``."""
    out = {}
    for name, reader in READERS.items():
        for attempt in range(attempts):
            try:
                out[name] = reader()
                break
            except (RuntimeError, ValueError, json.JSONDecodeError) as exc:
                if attempt == attempts - 1:
                    raise RuntimeError(f"cannot read back the {name} data: {exc}") from exc
                time.sleep(delay)
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["write"]:
        sys.exit("usage: platform_data.py write   (writes the data, saves the measurements to the snapshot)")
    measured = write_all()
    SNAPSHOT.write_text(json.dumps(measured, indent=2, sort_keys=True))
    for store, values in measured.items():
        print(f"{store}: {json.dumps(values, sort_keys=True)}")
    print(f"snapshot: {SNAPSHOT}")
