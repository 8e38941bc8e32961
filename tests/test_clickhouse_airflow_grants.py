# ruff: noqa: S608  (SQL built from test constants)
"""ClickHouse reads Airflow's metadata database as its own PostgreSQL user, clickhouse, with SELECT on
exactly the tables init_db 005 reads, never as the database's owner.

- The contract's platform_clickhouse_airflow_tables is the set of tables the init_db migrations read
  through the pg_airflow named collection, and both named collections use the one user clickhouse
  (the password of Airflow's owner account never reaches the ClickHouse hosts).
- The airflow role's own tasks (tasks/clickhouse_grants.yml, run by ansible-playbook) against a real
  PostgreSQL 15 (tests/services.py) holding the real metadata schema of the pinned Airflow, created
  by `airflow db migrate` as in the role: afterwards clickhouse reads dag, is refused connection and
  variable, may not write or create tables; a stray grant is revoked; a second run and a --check run
  change nothing; without a clickhouse group the tasks are skipped.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, local_inventory, run_concurrently, run_playbook
from tests.services import PG_CLICKHOUSE_PASSWORD, PG_CLICKHOUSE_USER, Postgres

CONTRACT = yaml.safe_load((ROOT / "roles/platform/defaults/main.yml").read_text())
TABLES = CONTRACT["platform_clickhouse_airflow_tables"]
INIT_DB = ROOT / "files/clickhouse/init_db"
COLLECTION = "{{ clickhouse_schema_pg_airflow_collection }}"

# The metadata database of the test, its owner (Airflow's `airflow` user in the platform) and password.
DB = "airflow_grants"
OWNER = "airflow_grants_owner"
OWNER_PASSWORD = "chplatform-test-airflow-owner"  # noqa: S105  test-only service on 127.0.0.1


def airflow_tables_read_by_init_db() -> set[str]:
    """Every table of an init_db migration's PostgreSQL engine over the pg_airflow collection."""
    found = set()
    for path in sorted(INIT_DB.glob("*.sql.j2")):
        text = path.read_text()
        tables = re.findall(r"PostgreSQL\(\s*" + re.escape(COLLECTION) + r"\s*,\s*table\s*=\s*'(\w+)'", text)
        # No other use of the collection (a dictionary source, say) that this pattern would miss.
        assert text.count(COLLECTION) == len(tables), f"{path.name} uses pg_airflow in a form this test does not read"
        found.update(tables)
    return found


def test_the_contract_lists_exactly_the_tables_init_db_reads_from_airflow():
    assert set(TABLES) == airflow_tables_read_by_init_db() == {"dag", "dag_run", "import_error", "task_instance"}
    assert len(TABLES) == len(set(TABLES))
    text = (INIT_DB / "005_airflow_metadata.sql.j2").read_text()
    assert sorted(re.findall(r"table = '(\w+)'", text)) == sorted(TABLES)


def test_clickhouse_uses_one_postgresql_identity_and_never_airflows_owner():
    clickhouse = yaml.safe_load((ROOT / "roles/clickhouse/defaults/main.yml").read_text())
    airflow = yaml.safe_load((ROOT / "roles/airflow/defaults/main.yml").read_text())
    assert clickhouse["clickhouse_pg_prod_user"] == clickhouse["clickhouse_pg_airflow_user"] == PG_CLICKHOUSE_USER
    assert airflow["airflow_db_clickhouse_user"] == PG_CLICKHOUSE_USER
    source = "{{ vault_postgresql_clickhouse_password }}"
    assert CONTRACT["clickhouse_pg_prod_password"] == CONTRACT["clickhouse_pg_airflow_password"] == source
    assert not any("vault_postgresql_airflow_password" in str(v) for k, v in CONTRACT.items() if "clickhouse" in k)
    access = [(a["group"], a["database"], a["user"]) for a in CONTRACT["postgresql_hba_group_access"]]
    assert [a for a in access if a[0] == "clickhouse"] == [
        ("clickhouse", "prod", "clickhouse"),
        ("clickhouse", "airflow", "clickhouse"),
    ]
    # select_on would grant every table of the schema (connection and variable too): never on airflow.
    user = next(u for u in CONTRACT["postgresql_users"] if u["name"] == PG_CLICKHOUSE_USER)
    assert [g["database"] for g in user["select_on"]] == ["prod"]
    # The grants follow the migrations (which create the tables), in the airflow role.
    database_tasks = (ROOT / "roles/airflow/tasks/database.yml").read_text()
    assert database_tasks.rstrip().endswith("ansible.builtin.import_tasks: clickhouse_grants.yml")


# --------------------------------------------------------------------------- the grants, for real

PLAYBOOK = """\
- name: The airflow role's grants for ClickHouse
  hosts: airflow
  gather_facts: false
  tasks:
    - name: Run the role's tasks/clickhouse_grants.yml
      ansible.builtin.include_role:
        name: airflow
        tasks_from: clickhouse_grants
"""


def airflow_venv() -> Path:
    # The pinned Airflow's virtualenv, built once from the bundle's wheelhouse (shared with the DagBag tests).
    from tests.test_dags_dagbag import _venv

    return _venv()


def migrate(pg: Postgres, tmp: Path) -> None:
    """`airflow db migrate` (as the role runs it) into a fresh database of its owner, with CONNECT
    and TEMPORARY taken from PUBLIC (as the postgresql role does): 3 s on a fresh database."""
    venv = airflow_venv()
    pg.psql("postgres", f"DROP DATABASE IF EXISTS {DB}")
    pg.psql("postgres", f"DROP ROLE IF EXISTS {OWNER}")
    pg.psql("postgres", f"CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER_PASSWORD}'")
    pg.psql("postgres", f"CREATE DATABASE {DB} OWNER {OWNER}")
    pg.psql(DB, f"REVOKE CONNECT, TEMPORARY ON DATABASE {DB} FROM PUBLIC")
    conn = f"postgresql+psycopg2://{OWNER}:{OWNER_PASSWORD}@127.0.0.1:{pg.port}/{DB}"
    cli = "import sys; from airflow.__main__ import main; sys.argv = ['airflow', 'db', 'migrate']; main()"
    proc = subprocess.run(
        [str(venv / "bin/python"), "-c", cli],
        env={"PATH": f"{venv}/bin:/usr/bin:/bin", "AIRFLOW_HOME": str(tmp), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
             "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn},
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def recap(result: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    return {
        host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
        for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", out, flags=re.MULTILINE)
    }


def grants(pg: Postgres) -> dict:
    """What clickhouse holds in the database, as the superuser sees it."""
    relations = pg.psql(
        DB,
        f"""SELECT n.nspname || '.' || c.relname || ' ' || a.privilege_type FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a
            WHERE a.grantee = '{PG_CLICKHOUSE_USER}'::regrole ORDER BY 1""",
    ).split("\n")
    database = pg.psql(
        DB,
        f"SELECT has_database_privilege('{PG_CLICKHOUSE_USER}', '{DB}', 'CONNECT'),"
        f" has_database_privilege('{PG_CLICKHOUSE_USER}', '{DB}', 'TEMPORARY'),"
        f" has_database_privilege('{PG_CLICKHOUSE_USER}', '{DB}', 'CREATE'),"
        f" has_schema_privilege('{PG_CLICKHOUSE_USER}', 'public', 'CREATE')",
    ).strip()
    return {"relations": [r for r in relations if r], "connect, temporary, create, create in public": database}


def as_clickhouse(pg: Postgres, sql: str) -> str:
    """Run one statement as clickhouse over TCP with its password; the result or the error."""
    import psycopg2

    try:
        conn = psycopg2.connect(
            host="127.0.0.1", port=pg.port, user=PG_CLICKHOUSE_USER, password=PG_CLICKHOUSE_PASSWORD, dbname=DB
        )
    except psycopg2.OperationalError as exc:
        return str(exc).strip()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return str(cur.fetchone()[0]) if cur.description else "OK"
    except psycopg2.Error as exc:
        return (exc.pgerror or str(exc)).strip()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def granted(pg_service: Postgres, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("grants")
    migrate(pg_service, tmp)
    before = {"connect": as_clickhouse(pg_service, "SELECT 1")}
    # Grants made by hand, or from an older, longer table list: the role takes them back.
    pg_service.psql(
        DB, f"GRANT SELECT ON variable TO {PG_CLICKHOUSE_USER}; GRANT INSERT ON dag TO {PG_CLICKHOUSE_USER}"
    )
    before["stray"] = grants(pg_service)["relations"]

    (tmp / "play.yml").write_text(PLAYBOOK)
    role_vars = {
        "airflow_db_host": "pgx",
        "airflow_db_port": pg_service.port,
        "airflow_db_name": DB,
        "__airflow_db_socket_dir": pg_service._sockdir,
        # What tasks/install.yml and database.yml registered on a converged host (used in check mode only).
        "__airflow_bin": {"stat": {"exists": True}},
    }
    (tmp / "vars.json").write_text(json.dumps(role_vars))
    hosts = {"airflow": {"af1": {}}, "postgres": {"pgx": {}}}
    (tmp / "with").mkdir()
    (tmp / "without").mkdir()
    with_clickhouse = local_inventory(tmp / "with", {**hosts, "clickhouse": {"ch1": {}}})
    # Without a clickhouse group, pointed at a database that does not exist: only a skip passes.
    without = local_inventory(tmp / "without", hosts)

    def play(inventory: str, *args: str, database: str = DB):
        return lambda: run_playbook(tmp / "play.yml", "-i", inventory, "-e", f"@{tmp / 'vars.json'}",
                                    "-e", f"airflow_db_name={database}", *args)  # fmt: skip

    first = run_concurrently({"first": play(with_clickhouse), "without": play(without, database="no_such_db")})
    after_first = grants(pg_service)
    again = run_concurrently({"again": play(with_clickhouse), "check": play(with_clickhouse, "--check", "--diff")})
    return {
        "before": before,
        "first": first["first"],
        "without": first["without"],
        "again": again["again"],
        "check": again["check"],
        "grants": after_first,
    }


def test_without_the_grant_clickhouse_cannot_even_connect(granted):
    # The postgresql role took CONNECT away from PUBLIC: the role's grant is what lets it in.
    assert f'permission denied for database "{DB}"' in granted["before"]["connect"], granted["before"]


def test_the_grants_are_select_on_the_listed_tables_and_connect_only(granted):
    print(json.dumps(granted["grants"], indent=1))
    assert granted["before"]["stray"] == ["public.dag INSERT", "public.variable SELECT"]
    assert recap(granted["first"])["af1"]["changed"] == 3
    # The stray grants were revoked by the role's own task, nothing else.
    revoked = re.findall(r"^changed: \[af1 -> pgx\] => \(item=(.*)\)$", granted["first"].stdout, flags=re.MULTILINE)
    assert revoked == ["INSERT on public.dag", "SELECT on public.variable"], revoked
    assert granted["grants"] == {
        "relations": sorted(f"public.{t} SELECT" for t in TABLES),
        "connect, temporary, create, create in public": "t|f|f|f",
    }


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT count(*) FROM dag", "0"),
        ("SELECT count(*) FROM task_instance", "0"),
        ("SELECT count(*) FROM connection", "permission denied for table connection"),
        ("SELECT count(*) FROM variable", "permission denied for table variable"),
        ("INSERT INTO dag (dag_id) VALUES ('x')", "permission denied for table dag"),
        ("DELETE FROM dag_run", "permission denied for table dag_run"),
        ("CREATE TABLE mine (x int)", "permission denied for schema public"),
    ],
)
def test_as_clickhouse(granted, pg_service, sql, expected):
    seen = as_clickhouse(pg_service, sql)
    print(f"as {PG_CLICKHOUSE_USER}: {sql} -> {seen}")
    assert seen == expected if expected == "0" else expected in seen, seen


def test_a_second_run_and_a_check_run_change_nothing(granted):
    for run in ("again", "check"):
        counts = recap(granted[run])
        assert counts["af1"]["changed"] == 0, (run, counts)
        # The grants and the look for other privileges ran on the PostgreSQL host (not skipped);
        # only the revoke, with nothing to revoke, was.
        assert granted[run].stdout.count("ok: [af1 -> pgx]") == 3, granted[run].stdout[-3000:]


def test_without_a_clickhouse_group_the_tasks_are_skipped(granted):
    counts = recap(granted["without"])
    assert counts["af1"]["changed"] == 0 and counts["af1"]["skipped"] == 5, counts
    assert "-> pgx" not in granted["without"].stdout
