"""The whole platform, checked across hosts as its components use it, over the production path.

Runs in the full-stack scenario's verify step, after converge, side_effect (platform_data.py
wrote data everywhere) and idempotence (site.yml again, changed=0). Every command on a host goes
over SSH as the deploy user with sudo (the lab's key and recorded host keys), as Ansible does.
The restart test comes last: it restarts every host and checks the platform comes back by itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # platform_data, beside this file

import platform_data as data

from tests.converge_check import check_diff_is_clean

ROOT = data.ROOT
INVENTORY = data.INVENTORY
HOSTS = data.HOSTS
NO_CLICKHOUSE = data.NO_CLICKHOUSE
clickhouse_available = data.clickhouse_available
ansible_env = data.ansible_env
run = data.run
kafka_sasl = data.kafka_sasl


@pytest.fixture(scope="module")
def snapshot() -> dict:
    assert data.SNAPSHOT.exists(), (
        f"{data.SNAPSHOT} is missing: the side_effect step writes it (platform_data.py write)"
    )
    return json.loads(data.SNAPSHOT.read_text())


# --------------------------------------------------------------------------- the production path


@pytest.fixture(scope="module")
def site_check_in_background():
    """The operator's preview, site.yml --check --diff, started by the first test of this module and
    checked by test_site_in_check_mode_... before the tests that break SSH or restart hosts: it runs
    while the read-only checks in between do (CI time). It keeps its facts in memory: the demo's run
    writes the lab's fact cache meanwhile."""
    result: dict = {}

    def preview() -> None:
        try:
            result["out"] = check_diff_is_clean(
                playbook="site.yml", inventory=str(INVENTORY), cwd=str(ROOT), ANSIBLE_CACHE_PLUGIN="memory",
                **data.ANSIBLE_PATHS,
            )  # fmt: skip
        except BaseException as exc:  # re-raised in the test that checks the preview
            result["error"] = exc

    thread = threading.Thread(target=preview, name="site-check", daemon=True)
    thread.start()
    return thread, result


def test_the_hosts_were_administered_over_ssh_as_a_sudo_user(site_check_in_background):
    """The connection that ran is SSH as deploy, with become: Ansible's view of a host, and sshd's
    own journal on every host."""
    inv = json.loads(run(["ansible-inventory", "-i", str(INVENTORY), "--host", "replica01"]).stdout)
    assert inv["ansible_user"] == "deploy" and inv["ansible_become"] is True
    assert "ansible_connection" not in inv or inv["ansible_connection"] in ("ssh", "ansible.builtin.ssh")
    for host in HOSTS:
        logins = data.remote(
            host, "journalctl _COMM=sshd --no-pager -o cat | grep -c '^Accepted publickey for deploy ' || true"
        )
        root = data.remote(host, "journalctl _COMM=sshd --no-pager -o cat | grep -c '^Accepted .* for root ' || true")
        print(f"{host}: {logins} SSH logins as deploy, {root} as root")
        assert int(logins) > 0 and int(root) == 0, host


# --------------------------------------------------------------------------- data survives the re-run


def test_the_data_written_before_the_rerun_is_still_there(snapshot):
    now = data.read_all()
    for store in data.READERS:
        print(f"{store}: before {json.dumps(snapshot[store], sort_keys=True)}")
        print(f"{store}: after  {json.dumps(now[store], sort_keys=True)}")
    assert now == snapshot
    assert snapshot["postgresql"]["rows"] == data.ROWS and snapshot["kafka"]["messages"] == data.MESSAGES
    assert sorted(snapshot["minio"]) == sorted(data.OBJECTS) and snapshot["superset"]["charts"] == 1


# --------------------------------------------------------------------------- each component, with its own credentials


@pytest.mark.parametrize("conn_id", ["postgres_airflow_metadata", "postgres_prod", "kafka_default"])
def test_airflow_tests_its_connections(conn_id):
    out = data.remote("airflow01", f"/usr/local/sbin/airflow-cli connections test {conn_id} 2>&1 | tail -n 3")
    print(f"airflow connections test {conn_id}: {out}")
    assert "Connection success!" in out, out


MINIO_HOOK = """cat > /tmp/s3probe.py <<'PY'
import os
from airflow.models.connection import Connection
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
# Outside a task, Airflow 3's hooks read connections from the environment only: hand them the one
# stored in the metadata database, as a task would get it.
os.environ["AIRFLOW_CONN_MINIO_S3"] = Connection.get_connection_from_secrets("minio_s3").as_json()
hook = S3Hook(aws_conn_id="minio_s3")
print(hook.check_for_bucket("datasets"), len(hook.list_keys("datasets", prefix="rerun-probe/") or []))
PY
chmod 644 /tmp/s3probe.py
/usr/local/sbin/airflow-cli --python /tmp/s3probe.py; rm -f /tmp/s3probe.py"""


def test_airflow_reaches_minio_with_its_connection():
    """minio_s3 through the Amazon provider's own S3 hook (its `connections test` asks AWS STS for
    the caller's identity, which MinIO does not implement: it cannot pass against any MinIO)."""
    out = data.remote("airflow01", MINIO_HOOK).splitlines()[-1]
    print(f"airflow minio_s3: bucket datasets exists, objects under rerun-probe/: {out}")
    exists, objects = out.split()
    assert exists == "True" and int(objects) == len(data.OBJECTS)


def test_airflow_connection_to_clickhouse():
    if not clickhouse_available():
        pytest.skip(f"airflow connections test clickhouse_default: {NO_CLICKHOUSE}")
    out = data.remote("airflow01", "/usr/local/sbin/airflow-cli connections test clickhouse_default 2>&1 | tail -n 3")
    assert "Connection success!" in out, out


CLICKHOUSE_DAGS = """cat > /tmp/dagstate.py <<'PY'
import json
from airflow import settings
from airflow.models import DagModel, DagRun, DagTag
from airflow.utils.session import create_session
if settings.Session is None:
    settings.configure_orm()
with create_session() as s:
    dags = s.query(DagModel).filter(DagModel.tags.any(DagTag.name == "clickhouse")).all()
    print(json.dumps({d.dag_id: [d.is_paused, d.description,
                                 s.query(DagRun).filter(DagRun.dag_id == d.dag_id, DagRun.state == "failed").count()]
                      for d in dags}))
PY
chmod 644 /tmp/dagstate.py
/usr/local/sbin/airflow-cli --python /tmp/dagstate.py; rm -f /tmp/dagstate.py"""


def test_the_clickhouse_dags_are_paused_with_their_reason_when_no_server_runs():
    """Without a ClickHouse server the DAGs that need one are paused and say why (no failed runs
    fill the UI); with one, none of them is held paused by the platform."""
    dags = clickhouse_dags()
    print(f"DAGs tagged clickhouse (paused, failed runs): { {k: (v[0], v[2]) for k, v in dags.items()} }")
    assert {"pg_to_ch", "trips_load", "file_to_ext", "api_to_ext"} <= set(dags), sorted(dags)
    held = data.remote("airflow01", "test -e /opt/airflow/run/clickhouse-dags-paused && echo held || echo free")
    if clickhouse_available():
        assert held == "free" and not any(paused for paused, _, _ in dags.values()), dags
        return
    assert held == "held"
    for dag_id, (paused, description, failed) in dags.items():
        assert paused is True, f"{dag_id} is not paused although no ClickHouse server runs"
        assert (description or "").startswith("Paused by the platform: no ClickHouse server runs"), description
        assert failed == 0, f"{dag_id} has {failed} failed runs"


def clickhouse_dags() -> dict:
    """{dag_id: [paused, description, failed runs]} of the DAGs tagged clickhouse, from Airflow's database."""
    return json.loads(data.remote("airflow01", CLICKHOUSE_DAGS).splitlines()[-1])


DEMO_OBJECTS = (
    data.MINIO_COMMON
    + """from minio.error import S3Error
for key in ("trips/trips_sample.parquet", "netflix_titles.csv"):
    try:
        st = m.stat_object("datasets", key)
        print(key, st.size, st.metadata.get("x-amz-meta-sha256", "-"))
    except S3Error:
        print(key, 0, "-")
PY"""
)


def demo_objects() -> dict[str, tuple[int, str]]:
    """The demo's objects in the datasets bucket: {key: (size, sha256 recorded at upload)}."""
    out = {}
    for line in data.remote("minio01", DEMO_OBJECTS).splitlines():
        key, size, digest = line.split()
        out[key] = (int(size), digest)
    return out


# Results as JSON, not YAML: YAML folds the summary's long lines.
JSON_RESULTS = {"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}


def recap_changes(out: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", out, flags=re.MULTILINE)}


def test_the_demo_shows_the_platform_at_work_and_a_second_run_changes_nothing(tmp_path):
    """playbooks/demo.yml (bin/lab demo) on the lab with 100 000 trips: the files reach the datasets
    bucket whole (sizes and checksums), the producer service delivers (offsets grow), the ClickHouse
    DAGs stay paused with no failed run where no server runs, and the summary is printed; a second
    run changes nothing, and so does its --check --diff preview; `demo stop` stops the producer."""
    import hashlib

    demo_dir = tmp_path / "demo"
    args = ["ansible-playbook", "-i", str(INVENTORY), "playbooks/demo.yml", "-e", "demo_rows=100000",
            "-e", f"demo_dir={demo_dir}"]  # fmt: skip
    before = demo_objects()
    try:
        first = run(args, timeout=900, **JSON_RESULTS)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        summary = first.stdout[first.stdout.rindex("TASK [Show where the data went") :]
        print(summary[: summary.find("PLAY RECAP")])
        uploaded = re.search(r"MiB in the datasets bucket, (\d) uploaded by this run", summary)
        assert uploaded, summary[:2000]
        offsets = re.search(r"sensor_data: end offsets (\d+) -> (\d+)", first.stdout)
        assert offsets and int(offsets[2]) > int(offsets[1]), "the demo producer delivered nothing"
        charts = re.findall(r'"Chart (Trips|Sensors) / ([^:]+): ([^"]+)"', summary)
        assert {d for d, _, _ in charts} == {"Trips", "Sensors"} and len(charts) >= 10, charts
        if not clickhouse_available():
            # Superset's own query layer answers for every chart: no rows, the database unreachable.
            assert all(a.startswith("no rows (") and "8443: Connection refused" in a for _, _, a in charts), charts
            assert "ClickHouse: NOT installed, the loading DAGs were skipped" in summary
            for dag_id, (paused, _, failed) in clickhouse_dags().items():
                assert paused is True and failed == 0, f"{dag_id}: paused {paused}, {failed} failed runs"

        stored = demo_objects()
        local = {
            "trips/trips_sample.parquet": demo_dir / "trips.parquet",
            "netflix_titles.csv": demo_dir / "titles.csv",
        }
        for key, path in local.items():
            want = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
            print(f"s3://datasets/{key}: {want[0]} bytes, sha256 {want[1][:16]}...")
            assert stored[key] == want, f"{key}: MinIO holds {stored[key]}, the demo wrote {want}"
        # Uploaded: exactly the objects that were missing or held other bytes (both on a fresh lab).
        assert int(uploaded[1]) == sum(before[k] != stored[k] for k in local), (before, stored, uploaded[0])
        assert data.remote("kafka01", "systemctl is-active chplatform-demo-producer") == "active"
        # A bucket that does not exist: one line naming the fix, nothing uploaded.
        bad = data.remote(
            "airflow01",
            "/usr/local/sbin/airflow-cli --python /var/tmp/chplatform-demo/upload_datasets.py no-such-bucket "
            "k=/var/tmp/chplatform-demo/titles.csv && echo rc=0 || echo rc=$?",
        ).splitlines()
        print(f"upload to a missing bucket: {bad[-2]} ({bad[-1]})")
        assert bad[-1] == "rc=2" and "bucket no-such-bucket does not exist" in bad[-2], bad[-3:]
        assert "run site.yml (the minio role creates it)" in bad[-2]

        second = run(args, timeout=900, **JSON_RESULTS)
        assert second.returncode == 0, second.stdout[-4000:]
        changes = recap_changes(second.stdout)
        assert changes and not any(changes.values()), f"the second demo run changed something: {changes}"
        # The operator's preview on the demo as it runs: exit 0, nothing would change, and the
        # summary says it is a preview.
        preview = run([*args, "--check", "--diff"], timeout=900, **JSON_RESULTS)
        assert preview.returncode == 0, preview.stdout[-4000:] + preview.stderr[-2000:]
        changes = recap_changes(preview.stdout)
        assert changes and not any(changes.values()), f"demo.yml --check --diff would change: {changes}"
        assert "CHANGE SUMMARY (check mode" in preview.stdout, preview.stdout[-2000:]
    finally:
        # Stopped even when a check above failed: the checks after this one count sensor_data's messages.
        stop = run([*args, "-e", "demo_state=stopped"], timeout=300)
    assert stop.returncode == 0, stop.stdout[-3000:]
    state = data.remote("kafka01", "systemctl is-active chplatform-demo-producer || true")
    assert state == "inactive", state


def test_the_airflow_dag_list_in_the_browser():
    """The DAG list as a user sees it (Chromium screenshot in artifacts/screenshots/): every DAG
    listed; without a ClickHouse server the database check above shows them paused, unfailed."""
    from tests.browser import chromium_page, fab_login, screenshot, wait_for_texts

    ids = sorted(clickhouse_dags())
    # Through airflow01's nginx, published on the controller (lab_publish); Chromium pins the host's
    # key, test_web_tls.py verifies the same URL's chain and name with curl and the lab's CA.
    with chromium_page(trust=data.STATE / "pki" / "hosts" / "airflow01.crt") as page:
        fab_login(page, "https://localhost:8443/auth/login/", "admin", data.secret("airflow_admin"))
        page.goto("https://localhost:8443/dags", wait_until="domcontentloaded")
        body = wait_for_texts(page, ids, "airflow-dags-full-stack")
        shot = screenshot(page, "airflow-dags-full-stack")
    assert all(d in body for d in ids), [d for d in ids if d not in body]
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


SUPERSET_DB = """
cd /etc/superset && sudo -u superset /opt/superset/venv/bin/python - <<'PY'
import importlib.util
from sqlalchemy import create_engine, text
spec = importlib.util.spec_from_file_location("superset_config", "/etc/superset/superset_config.py")
cfg = importlib.util.module_from_spec(spec); spec.loader.exec_module(cfg)
with create_engine(cfg.SQLALCHEMY_DATABASE_URI).connect() as c:
    print(c.execute(text("SELECT current_user, current_database(), count(*) FROM ab_user")).fetchone())
PY"""


def test_superset_reaches_its_metadata_database():
    out = data.remote("superset01", SUPERSET_DB)
    print(f"superset metadata: {out}")
    assert out.startswith("('superset', 'superset', ") and int(out.rstrip(")").split(", ")[-1]) >= 1


def collection(host: str, name: str) -> dict[str, str]:
    """A named collection of the server configuration the clickhouse role rendered on ``host``."""
    script = f"""python3 - <<'PY'
import json, xml.etree.ElementTree as ET
c = ET.parse("/etc/clickhouse-server/config.d/named_collections.xml").getroot().find("named_collections/{name}")
print(json.dumps({{e.tag: e.text for e in c}}))
PY"""
    return json.loads(data.remote(host, script))


# What the platform's PostgreSQL clients pass (platform_postgresql_tls; ClickHouse through its unit's
# PGSSLMODE / PGSSLROOTCERT): TLS, the server's certificate and name verified against the platform CA.
PG_VERIFY_FULL = "sslmode=verify-full sslrootcert=/etc/chplatform/tls/ca.crt"


@pytest.mark.parametrize("host", ["replica01", "replica02"])
def test_clickhouse_hosts_reach_postgresql_as_the_clickhouse_user(host):
    """The path of the PostgreSQL engine tables and dictionaries: pg_prod's host, user and password,
    over TLS verified against the platform's CA; plain text is refused."""
    pg = collection(host, "pg_prod")
    assert pg["user"] == "clickhouse"
    # psql is a test tool here, installed for this check (ClickHouse itself speaks the protocol).
    data.remote(
        host,
        "command -v psql >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null",
    )
    # The password travels from the root-only configuration into psql's environment, never argv.
    script = """cfg=/etc/clickhouse-server/config.d/named_collections.xml
export PGPASSWORD="$(python3 -c 'import sys, xml.etree.ElementTree as E; print(E.parse(sys.argv[1]).getroot().findtext("named_collections/pg_prod/password"))' "$cfg")"
psql "host=%s port=%s user=clickhouse dbname=prod %s" -Atc "%s" %s
"""
    sql = "SELECT current_user, count(*), (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()) FROM zones"
    out = data.remote(host, script % (pg["host"], pg["port"], PG_VERIFY_FULL, sql, ""))
    print(f"{host} -> PostgreSQL {pg['host']}:{pg['port']} as clickhouse ({PG_VERIFY_FULL}): {out}")
    user, zones, tls = out.split("|")
    assert user == "clickhouse" and int(zones) > 0 and tls in ("TLSv1.2", "TLSv1.3")
    denied = data.remote(
        host, script % (pg["host"], pg["port"], PG_VERIFY_FULL, "CREATE TABLE t_denied (x int)", "2>&1 || true")
    )
    assert "permission denied" in denied, denied
    # Plain text is refused: pg_hba takes TLS connections only (hostssl).
    plain = data.remote(host, script % (pg["host"], pg["port"], "sslmode=disable", "SELECT 1", "2>&1 || true"))
    print(f"{host} -> PostgreSQL without TLS: {plain.strip()}")
    assert "no pg_hba.conf entry" in plain and "no encryption" in plain, plain


# What ClickHouse may do in Airflow's metadata database through pg_airflow: read the tables init_db
# 005 reads (platform_clickhouse_airflow_tables), nothing else; None means the statement must succeed.
AIRFLOW_PROBES = {
    "SELECT count(*) FROM dag": None,
    "SELECT count(*) FROM task_instance": None,
    "SELECT count(*) FROM connection": "permission denied for table connection",
    "SELECT count(*) FROM variable": "permission denied for table variable",
    "INSERT INTO dag_run (dag_id) VALUES ('probe')": "permission denied for table dag_run",
    "DELETE FROM dag": "permission denied for table dag",
    "CREATE TABLE t_denied (x int)": "permission denied for schema public",
}

# One statement per line on stdin, one "statement<TAB>first line of psql's answer" per line out; the
# password travels from the root-only configuration into psql's environment, never argv.
AIRFLOW_PROBE_SCRIPT = """cfg=/etc/clickhouse-server/config.d/named_collections.xml
export PGPASSWORD="$(python3 -c 'import sys, xml.etree.ElementTree as E; print(E.parse(sys.argv[1]).getroot().findtext("named_collections/pg_airflow/password"))' "$cfg")"
while IFS= read -r sql; do
  out=$(psql "host=@HOST@ port=@PORT@ user=clickhouse dbname=airflow sslmode=verify-full sslrootcert=/etc/chplatform/tls/ca.crt" -Atc "$sql" </dev/null 2>&1 || true)
  printf '%s\\t%s\\n' "$sql" "$(printf '%s' "$out" | head -n 1)"
done
"""


@pytest.mark.parametrize("host", ["replica01", "replica02"])
def test_clickhouse_hosts_read_airflows_tables_as_the_clickhouse_user_and_nothing_else(host):
    """The path of the airflow_metadata tables (init_db 005): pg_airflow's host, user and password,
    over TLS. Airflow's owner account is not used, and the secrets of connection and variable stay closed."""
    pg = collection(host, "pg_airflow")
    assert pg["user"] == "clickhouse" and pg["database"] == "airflow", pg
    data.remote(
        host,
        "command -v psql >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null",
    )
    script = AIRFLOW_PROBE_SCRIPT.replace("@HOST@", pg["host"]).replace("@PORT@", pg["port"])
    out = data.remote(host, script, stdin="\n".join(AIRFLOW_PROBES) + "\n")
    seen = dict(line.split("\t", 1) for line in out.splitlines())
    for sql, result in seen.items():
        print(f"{host} -> PostgreSQL {pg['host']}:{pg['port']}/airflow as clickhouse: {sql} -> {result}")
    assert set(seen) == set(AIRFLOW_PROBES), out
    for sql, denied in AIRFLOW_PROBES.items():
        if denied is None:
            assert seen[sql].isdigit(), (sql, seen[sql])
        else:
            assert denied in seen[sql], (sql, seen[sql])
    assert int(seen["SELECT count(*) FROM dag"]) > 0, "the platform's DAGs are in the dag table"


S3_LIST = """cfg=/etc/clickhouse-server/config.d/storage.xml
key=$(python3 -c 'import xml.etree.ElementTree as E; print(E.parse("'$cfg'").getroot().findtext(".//disks/s3_cold/access_key_id"))')
secret=$(python3 -c 'import xml.etree.ElementTree as E; print(E.parse("'$cfg'").getroot().findtext(".//disks/s3_cold/secret_access_key"))')
printf 'user = "%s:%s"\\n' "$key" "$secret" > /run/s3-probe.curlrc; chmod 600 /run/s3-probe.curlrc
for b in {buckets}; do
  code=$(curl -s -o /dev/null -w '%{{http_code}}' -K /run/s3-probe.curlrc --cacert /etc/chplatform/tls/ca.crt \
    --aws-sigv4 aws:amz:us-east-1:s3 "{endpoint}/$b/?list-type=2")
  echo "$b $code"
done
rm -f /run/s3-probe.curlrc"""


@pytest.mark.parametrize("host", ["replica01", "replica02"])
def test_clickhouse_hosts_list_their_minio_buckets_with_the_clickhouse_key(host):
    endpoint = collection(host, "s3_datasets")["url"].split("/datasets")[0]
    assert endpoint == "https://minio01:9000", endpoint
    out = data.remote(host, S3_LIST.format(buckets="clickhouse-cold clickhouse-backups datasets", endpoint=endpoint))
    print(f"{host} -> MinIO {endpoint} with the clickhouse key: {out}")
    assert out.split("\n") == ["clickhouse-cold 200", "clickhouse-backups 200", "datasets 200"]


KAFKA_SASL_HANDSHAKE = r"""python3 - <<'PY'
import socket, ssl, struct
# TLS to the first broker of the collection, verified against the platform's CA and by name (what
# librdkafka does with config.d/kafka.xml), then a SaslHandshake request v1 naming the collection's
# mechanism: the broker answers with its error code and the mechanisms its listener accepts.
host, port = "%s".split(",")[0].rsplit(":", 1)
mechanism = b"%s"
ctx = ssl.create_default_context(cafile="/etc/chplatform/tls/ca.crt")
body = struct.pack(">hhih", 17, 1, 7, 5) + b"probe" + struct.pack(">h", len(mechanism)) + mechanism
with socket.create_connection((host, int(port)), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=host) as s:
    s.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", s.recv(4))[0]
    buf = b""
    while len(buf) < size:
        buf += s.recv(size - len(buf))
    version = s.version()
corr, err, n = struct.unpack_from(">ihi", buf, 0)
pos, mechanisms = 10, []
for _ in range(n):
    (ln,) = struct.unpack_from(">h", buf, pos)
    mechanisms.append(buf[pos + 2:pos + 2 + ln].decode()); pos += 2 + ln
print(f"{version}|{err}|{' '.join(mechanisms)}")
PY"""


@pytest.mark.parametrize("host", ["replica01", "replica02"])
def test_clickhouse_hosts_reach_kafka_over_verified_tls_with_the_collections_mechanism(host):
    kafka = collection(host, "kafka_sensor_data")
    assert kafka["kafka_security_protocol"] == "sasl_ssl" and kafka["kafka_sasl_username"] == "clickhouse"
    out = data.remote(host, KAFKA_SASL_HANDSHAKE % (kafka["kafka_broker_list"], kafka["kafka_sasl_mechanism"]))
    version, err, mechanisms = out.split("|")
    print(f"{host} -> Kafka {kafka['kafka_broker_list']}: {version}, SASL mechanisms {mechanisms} (error {err})")
    assert version in ("TLSv1.2", "TLSv1.3") and err == "0" and kafka["kafka_sasl_mechanism"] in mechanisms.split()


def test_the_kafka_collections_user_reads_the_sensor_topic_with_its_group():
    """The credentials ClickHouse's named collection carries log in and may read the sensor topic with
    its group (the ACLs of kafka_users); the Kafka engine itself is not run here."""
    from kafka import KafkaConsumer, TopicPartition

    kafka = collection("replica01", "kafka_sensor_data")
    consumer = KafkaConsumer(
        group_id=kafka["kafka_group_name"],
        enable_auto_commit=False,
        **kafka_sasl(kafka["kafka_sasl_username"], kafka["kafka_sasl_password"]),
    )
    try:
        parts = [
            TopicPartition(kafka["kafka_topic_list"], p)
            for p in consumer.partitions_for_topic(kafka["kafka_topic_list"])
        ]
        committed = {tp.partition: consumer.committed(tp) for tp in parts}
    finally:
        consumer.close()
    print(f"user {kafka['kafka_sasl_username']}, group {kafka['kafka_group_name']}: committed offsets {committed}")
    if not clickhouse_available():
        print(f"skipped: ClickHouse's Kafka engine consuming with these settings: {NO_CLICKHOUSE}")
    assert len(parts) == 3


def test_the_producer_on_the_controller_delivers_every_message():
    from kafka import KafkaConsumer, TopicPartition

    n = 2000
    consumer = KafkaConsumer(
        enable_auto_commit=False, consumer_timeout_ms=10000, **kafka_sasl("clickhouse", data.secret("kafka_clickhouse"))
    )
    parts = [TopicPartition("sensor_data", p) for p in consumer.partitions_for_topic("sensor_data")]
    start = consumer.end_offsets(parts)
    producer = shutil.which("sensor-producer") or str(Path(sys.executable).parent / "sensor-producer")
    sent = subprocess.run(
        [producer, "--bootstrap-servers", "localhost:29092", "--topic", "sensor_data", "--count", str(n), "--rate", "0",
         "--security-protocol", "SASL_SSL", "--sasl-username", "producer", "--ssl-cafile", str(data.LAB_CA)],
        env={**os.environ, "KAFKA_SASL_PASSWORD": data.secret("kafka_producer")},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr[-2000:]
    got, _ = data.count_since(consumer, parts, start)
    print(
        f"producer on the controller (SASL_SSL, user producer, acks=all): sent {n}, consumed {got} from localhost:29092"
    )
    assert got == n


def inventory_ports() -> dict[str, dict[str, list[str]]]:
    """The ports each host's services listen on, as the inventory says (validate_inventory's view)."""
    out = run(
        ["ansible-playbook", "-i", str(INVENTORY), "playbooks/validate.yml"],
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.junit",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(out.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["ports"]


def test_every_service_listens_only_where_the_inventory_says():
    declared = inventory_ports()
    for host in HOSTS:
        sockets = data.remote(host, "ss -Hltn | awk '{print $4}'").split()
        public = {s.rpartition(":")[2] for s in sockets if not re.match(r"^(127\.|\[::1\])", s)}
        expected = set(declared.get(host, {})) | {"22"}
        print(f"{host}: listens on {sorted(public, key=int)}; the inventory says {sorted(expected, key=int)}")
        assert public <= expected, f"{host} listens on {sorted(public - expected)} that no inventory variable declares"
    pg = data.remote("pg01", "ss -Hltn | awk '{print $4}'").split()
    wildcard = [s for s in pg if s.endswith(":5432") and s.startswith(("0.0.0.0:", "*:", "[::]:"))]
    assert not wildcard, f"PostgreSQL listens on a wildcard address: {wildcard}"


# --------------------------------------------------------------------------- bad SSH and sudo set-ups


def preflight(**env: str) -> str:
    proc = run(
        ["ansible-playbook", "-i", str(INVENTORY), "playbooks/preflight.yml"],
        ANSIBLE_SSH_ARGS="-o ControlMaster=no",
        **env,
    )
    assert proc.returncode != 0, proc.stdout[-3000:]
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if "msg:" in line or "—" in line]
    return " ".join(" ".join(lines).split())


def test_site_in_check_mode_on_the_converged_platform_changes_nothing_and_shows_no_secret(site_check_in_background):
    """The operator's preview (README): site.yml --check --diff over SSH reports changed=0 on every
    host, and no lab secret appears in its output (started in the background by the first test)."""
    thread, result = site_check_in_background
    thread.join(timeout=1200)
    assert not thread.is_alive(), "site.yml --check --diff still runs after 20 minutes"
    if "error" in result:
        raise result["error"]
    assert "out" in result


def test_a_lab_key_with_a_loose_mode_stops_with_its_fix():
    key = data.STATE / "ssh" / "id_ed25519"
    key.chmod(0o644)
    try:
        out = preflight()
        bare = run([str(ROOT / "bin" / "lab"), "converge"])
    finally:
        key.chmod(0o600)
    assert f"chmod 600 {key}" in out, out
    assert bare.returncode != 0 and f"chmod 600 {key}" in bare.stderr, bare.stderr[-1000:]


def test_a_changed_host_key_stops_with_its_fix():
    known = data.STATE / "ssh" / "known_hosts"
    saved = known.read_text()
    other = next(line for line in saved.splitlines() if line.startswith("kafka01 ")).split(" ", 1)[1]
    known.write_text(re.sub(r"(?m)^pg01 .*$", "pg01 " + other, saved))
    try:
        out = preflight()
    finally:
        known.write_text(saved)
    assert "pg01: its SSH host key is not the one recorded in known_hosts" in out, out


def test_a_user_without_sudo_stops_with_its_fix():
    data.remote("minio01", "mv /etc/sudoers.d/deploy /root/deploy.sudoers")
    try:
        out = preflight()
    finally:
        subprocess.run(
            ["docker", "exec", "lab-minio01", "mv", "/root/deploy.sudoers", "/etc/sudoers.d/deploy"], check=True
        )
    assert "minio01: deploy cannot become root without a password" in out, out


# --------------------------------------------------------------------------- restart every host (last)


def test_every_host_restarts_cleanly_and_the_platform_comes_back_with_its_data(snapshot):
    times = {}
    since = int(time.time())
    for host in HOSTS:
        t0 = time.monotonic()
        subprocess.run(["docker", "restart", f"lab-{host}"], check=True, capture_output=True, timeout=120)
        times[host] = time.monotonic() - t0
    print("docker restart (stop with systemd's signal, start): " + ", ".join(f"{h} {t:.1f}s" for h, t in times.items()))
    # bin/lab create finds the running hosts and records their (possibly new) addresses.
    created = run([str(ROOT / "bin" / "lab"), "create"], timeout=600)
    assert created.returncode == 0, created.stderr[-2000:]
    # A container shares the host's boot id: the stop is the journal's part since the restarts.
    for host in HOSTS:
        journal = data.remote(host, f"journalctl --since @{since} --no-pager -o cat")
        assert "Activating special unit halt.target" in journal, (
            f"{host} did not stop through systemd:\n{journal[-3000:]}"
        )
        killed = [line for line in journal.splitlines() if "timed out. Killing" in line or "SIGKILL" in line]
        assert not killed, f"{host}: killed at shutdown: {killed}"
        stopped = [line for line in journal.splitlines() if line.startswith("Stopped ") and ".service" in line]
        print(f"{host}: clean stop, {len(stopped)} services stopped by systemd, none killed")
    back = data.read_all(attempts=40, delay=6)
    for store in data.READERS:
        print(f"{store} after the restart: {json.dumps(back[store], sort_keys=True)}")
    assert back == snapshot
