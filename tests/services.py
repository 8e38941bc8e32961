"""Real services on the controller for the engine-level tests (no mocks).

Session-scoped pytest fixtures start, on 127.0.0.1 and free ports, in temporary directories:

- ``pg_service``: PostgreSQL 15 from Debian's ``postgresql`` package (initdb + pg_ctl as the
  ``postgres`` user); databases ``prod`` (the files/postgresql/ schema when present, otherwise a
  small taxi schema) and ``airflow`` (the Airflow metadata tables ClickHouse reads), and a
  read-only user ``clickhouse``.
- ``kafka_service``: Kafka from the bundle's tarball, KRaft combined node, ``java -cp libs/*``.
- ``minio_service``: the bundle's MinIO binary with buckets for datasets, cold tier and backups.

Each waits for its port with a timeout and fails with a message naming the log file; each is
stopped at the end of the session. A service whose software is missing makes its dependants
skip with the reason (``pytest.skip``), never pass.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("CHPLATFORM_CACHE", "/var/cache/chplatform"))
BUNDLE_DIR = CACHE_DIR / "bundle"
PG_BIN = Path(os.environ.get("CHPLATFORM_PG_BIN", "/usr/lib/postgresql/15/bin"))
STARTUP_TIMEOUT = float(os.environ.get("CHPLATFORM_SERVICE_TIMEOUT", "90"))

# Test credentials of throw-away services (generated per session would add nothing: the
# services listen on 127.0.0.1 only and live for one pytest session).
PG_CLICKHOUSE_USER = "clickhouse"
PG_CLICKHOUSE_PASSWORD = "chplatform-test-pg"  # noqa: S105  test-only service on 127.0.0.1
MINIO_USER = "chplatform-test"
MINIO_PASSWORD = "chplatform-test-minio"  # noqa: S105  test-only service on 127.0.0.1
MINIO_BUCKETS = ("datasets", "clickhouse-cold", "clickhouse-backups")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, what: str, proc: subprocess.Popen | None, log: Path, timeout: float = STARTUP_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening; see {log}:\n{tail(log)}")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s; see {log}:\n{tail(log)}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def bundle_manifest() -> dict:
    path = BUNDLE_DIR / "manifest.json"
    if not path.exists():
        pytest.skip(f"the artifact bundle is not built ({path} missing): run bin/bundle build")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- TLS


def tls_pair(
    directory: Path, address: str, owner: str | None = None, ca_name: str = "test CA", dns_names: tuple[str, ...] = ()
) -> tuple[Path, Path, Path]:
    """A CA and a server key and certificate for ``address`` (an IP SAN) and ``dns_names`` (DNS SANs, as the
    platform's host certificates carry), P-256, valid one day: (ca.crt, server.crt, server.key); the key 0600,
    owned by ``owner`` when running as root."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (
        x509.CertificateBuilder().subject_name(ca_subject).issuer_name(ca_subject).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(name) for name in dns_names] + [x509.IPAddress(ipaddress.ip_address(address))]
        ), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_file, cert_file, key_file = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    if owner and os.geteuid() == 0:
        for path in (directory, cert_file, key_file):
            shutil.chown(path, owner, owner)
    return ca_file, cert_file, key_file


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    port: int
    host: str = "127.0.0.1"
    user: str = PG_CLICKHOUSE_USER
    password: str = PG_CLICKHOUSE_PASSWORD
    prod_db: str = "prod"
    airflow_db: str = "airflow"
    prod_tables: list[str] = field(default_factory=list)
    # The CA that signed the server's certificate: every libpq client of this process verifies the
    # server against it (PGSSLMODE=verify-full, PGSSLROOTCERT), as the platform's clients do.
    ca_file: str = ""

    def psql(self, db: str, sql: str) -> str:
        """Run SQL as the superuser (over the socket directory) and return psql's output."""
        return _psql(self._sockdir, self.port, db, sql)

    _sockdir: str = ""


def _as_postgres(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def _psql(sockdir: str, port: int, db: str, sql: str) -> str:
    r = _as_postgres(
        [str(PG_BIN / "psql"), "-h", sockdir, "-p", str(port), "-d", db, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]
    )
    if r.returncode:
        raise RuntimeError(f"psql on {db} failed: {r.stderr.strip()}\nSQL: {sql[:300]}")
    return r.stdout


def _psql_file(sockdir: str, port: int, db: str, path: Path) -> None:
    r = _as_postgres(
        [str(PG_BIN / "psql"), "-h", sockdir, "-p", str(port), "-d", db, "-v", "ON_ERROR_STOP=1", "-q", "-f", str(path)]
    )
    if r.returncode:
        raise RuntimeError(f"loading {path} into {db} failed: {r.stderr.strip()}")


# The ClickHouse side reads these (the dictionaries, prod and airflow_metadata tables); used
# only when files/postgresql/ does not ship the prod schema yet.
FALLBACK_PROD_SQL = ROOT / "tests" / "fixtures" / "init_db" / "pg_prod.sql"
AIRFLOW_SQL = ROOT / "tests" / "fixtures" / "init_db" / "pg_airflow.sql"


def prod_sql_files() -> list[Path]:
    """The prod schema and data shipped by the postgresql role, else the test fallback."""
    d = ROOT / "files" / "postgresql"
    found = sorted(p for p in d.rglob("*.sql") if "prod" in p.as_posix()) if d.is_dir() else []
    return found or [FALLBACK_PROD_SQL]


@pytest.fixture(scope="session")
def pg_service(tmp_path_factory) -> Iterator[Postgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(
            f"PostgreSQL 15 is not installed on the controller ({PG_BIN}/initdb missing): apt-get install postgresql"
        )
    base = Path(tempfile.mkdtemp(prefix="chplatform-pg-"))
    base.chmod(0o755)
    data, log = base / "data", base / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    r = _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    if r.returncode:
        raise RuntimeError(f"initdb failed: {r.stderr.strip()}")
    # Over TCP, TLS and a password for every user, as the postgresql role's pg_hba (hostssl); trust
    # only on the socket. The server's certificate comes from a CA of this session.
    (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
    ca_file, cert_file, key_file = tls_pair(base / "tls", "127.0.0.1", owner="postgres")
    port = free_port()
    opts = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file={cert_file}"
        f" -c ssl_key_file={key_file} -c ssl_min_protocol_version=TLSv1.2"
    )
    r = _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"])
    if r.returncode:
        raise RuntimeError(f"PostgreSQL did not start: {r.stderr.strip()}; see {log}:\n{tail(log)}")
    try:
        wait_for_port(port, "PostgreSQL", None, log)
        sock = str(base)
        _psql(sock, port, "postgres", f"CREATE ROLE {PG_CLICKHOUSE_USER} LOGIN PASSWORD '{PG_CLICKHOUSE_PASSWORD}'")
        for db in ("prod", "airflow"):
            _psql(sock, port, "postgres", f"CREATE DATABASE {db}")
        for path in prod_sql_files():
            _psql_file(sock, port, "prod", path)
        _psql_file(sock, port, "airflow", AIRFLOW_SQL)
        for db in ("prod", "airflow"):
            _psql(
                sock,
                port,
                db,
                f"GRANT USAGE ON SCHEMA public TO {PG_CLICKHOUSE_USER};"
                f" GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PG_CLICKHOUSE_USER};",
            )
        tables = _psql(sock, port, "prod", "SELECT tablename FROM pg_tables WHERE schemaname='public' ORDER BY 1")
        saved = {k: os.environ.get(k) for k in ("PGSSLMODE", "PGSSLROOTCERT")}
        os.environ.update(PGSSLMODE="verify-full", PGSSLROOTCERT=str(ca_file))
        try:
            yield Postgres(port=port, prod_tables=tables.split(), _sockdir=sock, ca_file=str(ca_file))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- Kafka


@dataclass
class Kafka:
    port: int
    home: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


KAFKA_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={logdir}
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
"""

KAFKA_LOG4J = """\
Configuration:
  Appenders:
    File:
      name: F
      fileName: "{log}"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        ref: F
"""


def kafka_distribution(cache: Path) -> Path:
    manifest = bundle_manifest()
    tgz = BUNDLE_DIR / manifest["kafka"]["path"]
    if not tgz.exists():
        pytest.skip(f"the Kafka tarball {tgz} is missing from the bundle: run bin/bundle build")
    home = cache / tgz.name.removesuffix(".tgz")
    if not (home / "libs").is_dir():
        with tarfile.open(tgz) as tf:
            tf.extractall(cache, filter="data")
    return home


@pytest.fixture(scope="session")
def kafka_service(tmp_path_factory) -> Iterator[Kafka]:
    if shutil.which("java") is None:
        pytest.skip("Java is not installed on the controller: apt-get install openjdk-17-jre-headless")
    base = tmp_path_factory.mktemp("kafka")
    home = kafka_distribution(tmp_path_factory.mktemp("kafka-dist"))
    port, cport = free_port(), free_port()
    props, log = base / "server.properties", base / "kafka.log"
    props.write_text(KAFKA_PROPERTIES.format(port=port, cport=cport, logdir=base / "data"))
    (base / "log4j2.yaml").write_text(KAFKA_LOG4J.format(log=log))
    cp = f"{home}/libs/*"
    jvm = ["java", "-Xms256m", "-Xmx512m", f"-Dlog4j2.configurationFile={base / 'log4j2.yaml'}", "-cp", cp]
    r = subprocess.run(
        [*jvm, "kafka.tools.StorageTool", "format", "-t", "chplatform-test-cluster0", "-c", str(props), "--standalone"],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode:
        raise RuntimeError(f"Kafka storage format failed: {r.stdout}{r.stderr}")
    with (base / "stdout.log").open("w") as out:
        proc = subprocess.Popen([*jvm, "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, "Kafka", proc, base / "stdout.log")
        yield Kafka(port=port, home=home)
    finally:
        stop(proc)


def create_topic(kafka: Kafka, topic: str, partitions: int = 1) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


# --------------------------------------------------------------------------- MinIO


@dataclass
class Minio:
    port: int
    access_key: str = MINIO_USER
    secret_key: str = MINIO_PASSWORD

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        from minio import Minio as MinioClient

        return MinioClient(f"127.0.0.1:{self.port}", self.access_key, self.secret_key, secure=False)


@pytest.fixture(scope="session")
def minio_service(tmp_path_factory) -> Iterator[Minio]:
    manifest = bundle_manifest()
    binary = BUNDLE_DIR / manifest["minio"]["path"]
    if not binary.exists():
        pytest.skip(f"the MinIO binary {binary} is missing from the bundle: run bin/bundle build")
    base = tmp_path_factory.mktemp("minio")
    port, cport, log = free_port(), free_port(), base / "minio.log"
    env = dict(os.environ, MINIO_ROOT_USER=MINIO_USER, MINIO_ROOT_PASSWORD=MINIO_PASSWORD, MINIO_BROWSER="off")
    exe = base / "minio"
    shutil.copy(binary, exe)
    exe.chmod(0o755)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(exe), "server", str(base / "data"), "--address", f"127.0.0.1:{port}",
             "--console-address", f"127.0.0.1:{cport}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
    try:
        wait_for_port(port, "MinIO", proc, log)
        svc = Minio(port=port)
        client = svc.client()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                for bucket in MINIO_BUCKETS:
                    if not client.bucket_exists(bucket):
                        client.make_bucket(bucket)
                break
            except Exception as exc:  # the server answers 503 while it initialises
                if time.monotonic() > deadline:
                    raise RuntimeError(f"MinIO did not accept bucket creation: {exc}; see {log}") from exc
                time.sleep(0.5)
        yield svc
    finally:
        stop(proc)


# --------------------------------------------------------------------------- init_db rendering + chdb

INIT_DB = ROOT / "files" / "clickhouse" / "init_db"

# The two topologies the role renders (the role computes the same variables, see
# roles/clickhouse_schema/vars/main.yml). on_cluster: the ON CLUSTER form for run-once installs.
RENDER_VARS = {
    "clickhouse_schema_kafka_collection": "kafka_sensor_data",
    # The earlier form of 002 (superseded/), as an install of the lab applied it.
    "clickhouse_schema_legacy_kafka_broker_list": "kafka01:9092",
    "platform_kafka_sensor_topic": "sensor_data",
    "platform_kafka_clickhouse_group": "clickhouse_sensor_data",
    "clickhouse_schema_pg_prod_collection": "pg_prod",
    "clickhouse_schema_pg_airflow_collection": "pg_airflow",
    "clickhouse_schema_storage_policy": "tiered",
}
TOPOLOGIES = {
    "single": {"clickhouse_schema_replicated": False, "__clickhouse_schema_on_cluster": ""},
    "replicated": {"clickhouse_schema_replicated": True, "__clickhouse_schema_on_cluster": ""},
    "replicated_on_cluster": {
        "clickhouse_schema_replicated": True,
        "__clickhouse_schema_on_cluster": " ON CLUSTER '{cluster}'",
    },
}


def render_init_db(dest: Path, topology: str, **overrides) -> Path:
    """Render files/clickhouse/init_db/*.sql.j2 (and the earlier forms in superseded/) like the
    role's template tasks (trim_blocks, strict): the one init_db renderer of the tests."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(INIT_DB)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701  SQL, not HTML
    )
    variables = {**RENDER_VARS, **TOPOLOGIES[topology], **overrides}
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(INIT_DB.glob("*.sql.j2")):
        (dest / src.name.removesuffix(".j2")).write_text(env.get_template(src.name).render(**variables))
    (dest / "superseded").mkdir(exist_ok=True)
    for src in sorted((INIT_DB / "superseded").glob("*.sql.j2")):
        text = env.get_template(f"superseded/{src.name}").render(**variables)
        (dest / "superseded" / src.name.removesuffix(".j2")).write_text(text)
    return dest


class ChdbExecutor:
    """The runner's executor interface over a chdb connection (the ClickHouse engine in-process)."""

    def __init__(self, conn, rewrite=None):
        self.conn = conn
        self.cursor = conn.cursor()
        self.rewrite = rewrite
        self.executed: list[str] = []

    def execute(self, sql: str) -> list[tuple]:
        if self.rewrite is not None:
            sql = self.rewrite(sql)
        self.executed.append(sql)
        self.cursor.execute(sql)
        return list(self.cursor.fetchall() or [])

    def scalar(self, sql: str):
        return self.execute(sql)[0][0]


def chdb_connect(workdir: Path, config: str | None = None):
    """A chdb session on its own data directory, optionally with a ClickHouse config file."""
    chdb = pytest.importorskip("chdb", reason="chdb-core is not installed in the venv (requirements.txt)")
    workdir.mkdir(parents=True, exist_ok=True)
    if config is None:
        return chdb.connect(f"file:{workdir / 'data'}")
    cfg = workdir / "config.xml"
    cfg.write_text(config)
    return chdb.connect(f"file:{workdir / 'data'}?config-file={cfg}")


RBAC_PREFIXES = ("CREATE ROLE", "CREATE USER", "CREATE QUOTA", "CREATE SETTINGS PROFILE", "CREATE ROW POLICY", "GRANT")


def is_rbac(sql: str) -> bool:
    return sql.lstrip().upper().startswith(RBAC_PREFIXES)


def is_kafka_table(sql: str) -> bool:
    return sql.lstrip().upper().startswith("CREATE TABLE") and "ENGINE = KAFKA" in " ".join(sql.upper().split())


KAFKA_VIRTUAL_COLUMNS = (
    "_topic LowCardinality(String), _key String, _offset UInt64, _partition UInt64, "
    "_timestamp_ms Nullable(DateTime64(3)), _error String, _raw_message String"
)


def kafka_standin(sql: str) -> str:
    """chdb cannot run the Kafka engine (no message-broker schedule pool: creating the table raises
    "Shutdown was called"). Replace the Kafka table by a Null-engine table with the same columns
    plus the Kafka engine's virtual columns as real ones, so the materialized view over it is the
    unchanged one from the migration and the test feeds it real messages (with their real topic,
    partition, offset and timestamp) consumed from a real broker."""
    if not is_kafka_table(sql):
        return sql
    import re

    head, _, _ = re.split(r"\bENGINE\s*=\s*Kafka\b", sql, maxsplit=1, flags=re.IGNORECASE)[0].rpartition(")")
    return f"{head}, {KAFKA_VIRTUAL_COLUMNS}) ENGINE = Null"
