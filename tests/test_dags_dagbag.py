"""The DAGs in files/airflow/dags import in a real Airflow (DagBag) with the expected ids and
schedules, and a missing connection or variable fails their first task naming it.

Airflow is not installed in the controller's .venv: a separate virtualenv is built once from the
bundle's wheelhouse (keyed by the lock file's hash) under the cache directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import BUNDLE_DIR, CACHE_DIR, ROOT

LOCK = ROOT / "files/bundle/python/airflow.lock"
DAGS = ROOT / "files/airflow/dags"
WHEELS = BUNDLE_DIR / "wheels/airflow-3.3.2"

CH_URI = "clickhouse://etl:pw@ch:8123/default"  # a syntactically valid connection, never contacted
EXPECTED = {
    "pg_to_ch": "@hourly",
    "api_to_ext": "@daily",
    "file_to_ext": "@daily",
    "trips_load": "@daily",
    "clickhouse_backup_full": "0 1 * * 0",
    "clickhouse_backup_incremental": "15 * * * *",
}


def _venv() -> Path:
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    venv = CACHE_DIR / f"airflow-dagbag-{digest}"
    done = venv / ".complete"
    if done.exists():
        return venv
    if not (WHEELS / "requirements.lock").exists():
        pytest.skip(f"no Airflow wheelhouse at {WHEELS} (run bin/bundle build)")
    with open(CACHE_DIR / "airflow-dagbag.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", "--no-index",
                 "--find-links", str(WHEELS), "-r", str(WHEELS / "requirements.lock")],
                check=True, timeout=1800,
            )  # fmt: skip
            done.touch()
    return venv


def _run(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    venv = _venv()
    environ = {
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(DAGS),
        **env,
    }
    return subprocess.run(
        [str(venv / "bin/python"), "-c", textwrap.dedent(script)],
        env=environ, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )  # fmt: skip


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("airflow")
    proc = _run(
        """
        import json, os
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], safe_mode=False)
        print("RESULT" + json.dumps({
            "errors": {k: str(v) for k, v in bag.import_errors.items()},
            "dags": {d.dag_id: str(d.schedule) for d in bag.dags.values()},
            "tasks": {d.dag_id: [t.task_id for t in d.tasks] for d in bag.dags.values()},
            "roots": {d.dag_id: [t.task_id for t in d.roots] for d in bag.dags.values()},
        }))
        """,
        tmp,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_no_import_errors(dagbag: dict) -> None:
    assert dagbag["errors"] == {}


def test_expected_dags_and_schedules(dagbag: dict) -> None:
    assert dagbag["dags"] == EXPECTED


def test_every_dag_starts_with_the_prerequisite_check(dagbag: dict) -> None:
    for dag_id, roots in dagbag["roots"].items():
        assert roots == ["check_prerequisites"], f"{dag_id} starts with {roots}"


def test_helper_package_is_not_parsed_as_dags() -> None:
    assert (DAGS / ".airflowignore").read_text().split() == ["chplatform_common/"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "connection clickhouse_default, variable chplatform_api_quotes_url"),
        ({"AIRFLOW_CONN_CLICKHOUSE_DEFAULT": CH_URI}, "variable chplatform_api_quotes_url"),
        ({"AIRFLOW_VAR_CHPLATFORM_API_QUOTES_URL": "http://x/q.json"}, "connection clickhouse_default"),
    ],
)  # fmt: skip
def test_missing_prerequisites_are_named(tmp_path: Path, env: dict, message: str) -> None:
    proc = _run(
        """
        from airflow.exceptions import AirflowFailException
        from chplatform_common.checks import require
        try:
            require(connections=["clickhouse_default"], variables=["chplatform_api_quotes_url"])
        except AirflowFailException as exc:
            print("FAILED:", exc)
        else:
            print("PASSED")
        """,
        tmp_path,
        **env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"Missing Airflow prerequisites: {message} (" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_all_present_passes(tmp_path: Path) -> None:
    proc = _run(
        """
        from chplatform_common.checks import require
        require(connections=["clickhouse_default"], variables=["chplatform_api_quotes_url"])
        print("PASSED")
        """,
        tmp_path,
        AIRFLOW_CONN_CLICKHOUSE_DEFAULT=CH_URI,
        AIRFLOW_VAR_CHPLATFORM_API_QUOTES_URL="http://x/q.json",
    )
    assert "PASSED" in proc.stdout, proc.stderr[-4000:]


@pytest.mark.parametrize("available", ["true", "false"])
def test_without_clickhouse_every_dag_is_created_paused_and_says_why(tmp_path: Path, available: str) -> None:
    """The airflow role sets CHPLATFORM_CLICKHOUSE_AVAILABLE=false where no ClickHouse server runs."""
    proc = _run(
        """
        import json, os
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], safe_mode=False)
        print("RESULT" + json.dumps({d.dag_id: [d.is_paused_upon_creation, d.description, sorted(d.tags)]
                                     for d in bag.dags.values()}))
        """,
        tmp_path,
        CHPLATFORM_CLICKHOUSE_AVAILABLE=available,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    dags = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))[len("RESULT") :])
    assert set(dags) == set(EXPECTED)
    for dag_id, (paused, description, tags) in dags.items():
        assert "clickhouse" in tags, f"{dag_id} is not tagged clickhouse (the role pauses by that tag)"
        if available == "false":
            assert paused is True, dag_id
            assert description.startswith("Paused by the platform: no ClickHouse server runs"), description
        else:
            assert paused in (None, False) and description is None, (dag_id, paused, description)


def test_the_role_pauses_the_clickhouse_dags_without_a_server_and_unpauses_them_with_one(tmp_path: Path) -> None:
    """airflow_objects.py (the role's reconcile script) against a real metadata database (SQLite)
    holding the platform's DAGs: it pauses the DAGs tagged clickhouse while no server runs, changes
    nothing on a re-run, unpauses them in the run that finds a server, and never unpauses a DAG an
    operator paused while a server runs."""
    script = ROOT / "roles/airflow/files/airflow_objects.py"
    stamp = tmp_path / "clickhouse-dags-paused"
    env = {"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False", "CHPLATFORM_CLICKHOUSE_AVAILABLE": "true"}
    venv = _venv()
    for cmd in (["db", "migrate"], ["dags", "reserialize"]):
        proc = _run(
            f"import sys; from airflow.__main__ import main; sys.argv = ['airflow', *{cmd!r}]; main()", tmp_path, **env
        )
        assert proc.returncode == 0, f"airflow {' '.join(cmd)}: {proc.stderr[-3000:]}"

    def reconcile(available: bool) -> list[str]:
        desired = {"clickhouse_dags": {"available": available, "tag": "clickhouse", "stamp": str(stamp)}}
        proc = subprocess.run(
            [str(venv / "bin/python"), str(script)], input=json.dumps(desired),
            env={"PATH": f"{venv}/bin:/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(DAGS),
                 "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
            capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])["changed"]

    def paused() -> dict[str, bool]:
        proc = _run(
            """
            import json
            from airflow.models import DagModel
            from airflow.utils.session import create_session
            with create_session() as s:
                print("RESULT" + json.dumps({d.dag_id: d.is_paused for d in s.query(DagModel)}))
            """,
            tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))[len("RESULT") :])

    changed = reconcile(available=False)  # the DAGs were created unpaused: every one is paused now
    assert sorted(changed) == sorted(
        [f"DAG {d} paused: no ClickHouse server" for d in EXPECTED]
        + ["recorded that the platform pauses the ClickHouse DAGs"]
    )
    assert paused() == dict.fromkeys(EXPECTED, True) and stamp.exists()
    assert reconcile(available=False) == []

    changed = reconcile(available=True)
    assert len(changed) == len(EXPECTED) + 1 and all("unpaused" in c for c in changed[:-1]), changed
    assert paused() == dict.fromkeys(EXPECTED, False) and not stamp.exists()
    assert reconcile(available=True) == []

    # An operator pauses a DAG while the server runs: the platform leaves it paused.
    proc = _run(
        "import sys; from airflow.__main__ import main; sys.argv = ['airflow', 'dags', 'pause', 'pg_to_ch']; main()",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert reconcile(available=True) == []
    assert paused()["pg_to_ch"] is True
