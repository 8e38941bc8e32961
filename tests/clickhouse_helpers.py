"""Helpers for tests that render the clickhouse role and load the result into chdb.

chdb (ClickHouse as an in-process library) takes ONE configuration file, while the role writes
config.d/*.xml drop-ins: ``merge_dropins`` merges them the way ClickHouse's config processor does
(alphabetical order, recursive merge by element name, ``replace``/``remove`` attributes).
``for_chdb`` then adapts a merged server configuration to what an in-process engine can use.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import BUNDLE_DIR, ROOT, run_playbook
from tests.services import stop as stop_process

FIXTURES = ROOT / "tests" / "fixtures" / "clickhouse"
# Fixture host names (replica01, keeper03...) must not read or write the lab's fact cache.
ISOLATED = {"ANSIBLE_CACHE_PLUGIN": "memory"}


def render(inventory: str | Path, render_dir: Path) -> Path:
    """Render the roles' configure tasks for every host of a fixture inventory into render_dir/<host>/."""
    inv = Path(inventory)
    if not inv.is_absolute():
        inv = FIXTURES / inv
    proc = run_playbook(
        FIXTURES / "render.yml", "-i", str(inv), "-e", f"render_dir={render_dir}", timeout=900, **ISOLATED
    )
    if proc.returncode != 0:
        raise AssertionError(f"rendering {inv.name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return render_dir


def _merge(base: ET.Element, overlay: ET.Element) -> None:
    used: set[int] = set()
    for child in list(overlay):
        if not isinstance(child.tag, str):  # comments
            continue
        match = next((c for c in base if c.tag == child.tag and id(c) not in used), None)
        if "remove" in child.attrib:
            if match is not None:
                base.remove(match)
            continue
        if match is None or "replace" in child.attrib or len(child) == 0:
            new = copy.deepcopy(child)
            new.attrib.pop("replace", None)
            if match is not None:
                base[list(base).index(match)] = new
            else:
                base.append(new)
            used.add(id(new))
            continue
        used.add(id(match))
        _merge(match, child)


def merge_dropins(*directories: Path, base: Path | None = None) -> ET.Element:
    """Merge every *.xml of the directories (alphabetically, as ClickHouse does) over base (or an empty root)."""
    # Only files rendered by this project's roles are parsed here (hence noqa S314).
    root = ET.parse(base).getroot() if base else ET.Element("clickhouse")  # noqa: S314  files rendered by the roles under test
    for directory in directories:
        for path in sorted(Path(directory).glob("*.xml")):
            _merge(root, ET.parse(path).getroot())  # noqa: S314  files rendered by the roles under test
    return root


# The part of the package's users.xml the role's users.d drop-ins build on (profiles and quota they name).
USERS_BASE = """<clickhouse>
  <profiles><default/><readonly><readonly>1</readonly></readonly></profiles>
  <users><default><password/><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota>
  </default></users>
  <quotas><default/></quotas>
</clickhouse>"""


def users_xml(users_d: Path, path: Path, chdb_session: bool = False) -> Path:
    """users.xml = the package's base users (profiles default/readonly, quota default) + the role's users.d.

    chdb runs every query as ``default``, which the role locks down (localhost, read-only). With
    ``chdb_session`` that user gets back write access and sight of named collections, so that the
    test can create tables; the rendered lock-down itself is checked on the XML by the render tests.
    """
    base = path.with_suffix(".base.xml")
    base.write_text(USERS_BASE)
    root = merge_dropins(users_d, base=base)
    if chdb_session:
        default = root.find("users/default")
        default.find("profile").text = "default"
        for flag in ("show_named_collections", "named_collection_control"):
            ET.SubElement(default, flag).text = "1"
    return write_xml(root, path)


def for_chdb(merged: ET.Element, s3: S3Service | None = None, users: Path | None = None) -> ET.Element:
    """Adapt a merged server configuration to chdb.

    - The Keeper quorum is replaced by ClickHouse's in-memory test coordination
      (``<zookeeper><implementation>testkeeper</implementation></zookeeper>``): chdb cannot reach
      the lab's Keeper hosts, and ReplicatedMergeTree DDL only needs *a* coordination service.
    - The embedded ``<keeper_server>`` is dropped (chdb is a client library, not a Keeper node).
    - ``users`` (a users.xml made by ``users_xml``) replaces the relative users.xml path of
      ``user_directories``; the logger goes to the console.
    - With ``s3``, every S3 endpoint of the rendering (https://<minio>:9000/...) is pointed at a
      local MinIO (plain HTTP) and its keys replaced; the buckets and prefixes stay as rendered.
    """
    root = copy.deepcopy(merged)
    for tag in ("keeper_server", "zookeeper", "logger"):
        for node in root.findall(tag):
            root.remove(node)
    zk = ET.SubElement(root, "zookeeper")
    ET.SubElement(zk, "implementation").text = "testkeeper"
    if users is not None:
        for node in root.iter("users_xml"):
            node.find("path").text = str(users)
    if s3 is not None:
        for parent in [*root.iter("s3_cold"), *root.iter("backups"), *root.iter("s3_datasets")]:
            for key in ("endpoint", "url"):
                node = parent.find(key)
                if node is not None and node.text and "://" in node.text:
                    path = node.text.split("://", 1)[1].split("/", 1)[1]
                    node.text = f"{s3.url}/{path}"
            if parent.find("access_key_id") is not None:
                parent.find("access_key_id").text = s3.access_key
                parent.find("secret_access_key").text = s3.secret_key
    return root


def write_xml(root: ET.Element, path: Path) -> Path:
    ET.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)
    return path


@dataclass
class S3Service:
    url: str
    access_key: str
    secret_key: str


def minio_binary() -> Path | None:
    """The MinIO server binary of the artifact bundle (bin/bundle build), if present."""
    found = sorted((BUNDLE_DIR / "minio").glob("minio-*-linux-amd64"))
    return found[0] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_minio(workdir: Path, buckets: list[str]) -> Iterator[S3Service]:
    """A real MinIO server on 127.0.0.1 (random port and credentials) with the buckets; killed at exit."""
    binary = minio_binary()
    if binary is None:
        raise FileNotFoundError(f"no MinIO binary in {BUNDLE_DIR}/minio: run bin/bundle build")
    import minio  # the S3 admin client, needed only when a MinIO is really started

    port, console = _free_port(), _free_port()
    access, secret = "test" + secrets.token_hex(4), secrets.token_hex(16)
    data = workdir / "minio-data"
    data.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MINIO_ROOT_USER=access, MINIO_ROOT_PASSWORD=secret, MINIO_BROWSER="off")
    log = (workdir / "minio.log").open("w")
    proc = subprocess.Popen(
        [str(binary), "server", "--quiet", "--address", f"127.0.0.1:{port}", "--console-address",
         f"127.0.0.1:{console}", str(data)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        client = minio.Minio(f"127.0.0.1:{port}", access_key=access, secret_key=secret, secure=False)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"MinIO did not start: {(workdir / 'minio.log').read_text()[-2000:]}") from None
                time.sleep(0.5)
        for bucket in buckets:
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
        yield S3Service(f"http://127.0.0.1:{port}", access, secret)
    finally:
        stop_process(proc)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def run_chdb(config: Path, db_dir: Path, queries: dict[str, str], timeout: int = 600) -> dict[str, dict]:
    """Run named queries, in order, in a chdb session loaded with ``config``, in a child process.

    Returns {name: {"rows": [...]}} or {name: {"error": "..."}}. A child process because chdb can
    load one configuration per process, and its global destructors can abort at interpreter exit
    after S3 use or hang in close() (the child leaves with os._exit once its results are written).
    """

    payload = json.dumps({"config": str(config), "db": str(db_dir), "queries": queries})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.clickhouse_helpers"],
            input=payload, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        progress = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise AssertionError(f"the chdb worker hung for {timeout} s; its last steps:\n{progress[-2000:]}") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("CHDB-RESULTS "):
            return json.loads(line.removeprefix("CHDB-RESULTS "))
    raise AssertionError(f"the chdb worker gave no results (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def _chdb_worker() -> None:
    import chdb  # imported in the worker process only: one configuration per process

    job = json.loads(sys.stdin.read())
    results: dict[str, dict] = {}
    try:
        conn = chdb.connect(f"file:{job['db']}?config-file={job['config']}")
    except Exception as exc:
        results = {name: {"error": f"connect: {exc}"} for name in job["queries"]}
    else:
        cur = conn.cursor()
        for name, query in job["queries"].items():
            print(f"chdb worker: {name}", file=sys.stderr, flush=True)
            try:
                cur.execute(query)
                results[name] = {"rows": [list(map(str, row)) for row in (cur.fetchall() or [])]}
            except Exception as exc:
                results[name] = {"error": str(exc)}
        # No conn.close(): with a (read-only) replicated table on the test coordination it can hang;
        # the process ends with os._exit below, MinIO and the data directory are discarded anyway.
    print("CHDB-RESULTS " + json.dumps(results), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    _chdb_worker()


_RENDER_ROOT: Path | None = None
_RENDERED: dict[str, Path] = {}


def rendered(*names: str) -> dict[str, Path]:
    """Render fixture topologies (tests/fixtures/clickhouse/<name>.yml) once per test session, in parallel."""

    global _RENDER_ROOT
    if _RENDER_ROOT is None:
        _RENDER_ROOT = Path(tempfile.mkdtemp(prefix="chrender-"))
    todo = [n for n in names if n not in _RENDERED]
    with ThreadPoolExecutor(max_workers=3) as pool:
        for name, path in zip(todo, pool.map(lambda n: render(f"{n}.yml", _RENDER_ROOT / n), todo), strict=True):
            _RENDERED[name] = path
    return {n: _RENDERED[n] for n in names}
