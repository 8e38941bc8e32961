"""The migration runner's logic: pure planning, then the same Runner driven against chdb."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.chplatform.platform.plugins.module_utils.clickhouse_migrations import (
    Migration,
    MigrationError,
    Runner,
    checksum,
    load_migrations,
    plan,
    quote,
    split_statements,
)

from tests.services import ChdbExecutor, chdb_connect, render_init_db

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- splitting


def test_split_respects_quotes_comments_and_counts_lines():
    sql = (
        "-- header; with a semicolon\n"
        "CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory;\n"
        "\n"
        "/* block; comment */\n"
        "INSERT INTO a VALUES ('it''s; fine'), ('back\\'slash;');\n"
        'SELECT "weird;name", `also;weird` FROM a -- trailing; comment\n'
        ";\n"
        "-- only a comment at the end;\n"
    )
    sts = split_statements(sql)
    assert [s.number for s in sts] == [1, 2, 3]
    assert [s.line for s in sts] == [2, 5, 6]
    assert sts[0].text == "CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory"
    assert sts[1].text.endswith("('back\\'slash;')")
    assert sts[2].first_line.startswith('SELECT "weird;name"')


def test_split_rejects_unterminated_quote():
    with pytest.raises(MigrationError, match="unterminated ' quote"):
        split_statements("SELECT 'oops;\n")


def test_checksum_ignores_comments_and_trailing_spaces_only():
    a = split_statements("-- v1\nCREATE DATABASE x;\n")
    b = split_statements("-- reworded comment\n\nCREATE DATABASE x;   \n")
    c = split_statements("CREATE DATABASE y;\n")
    assert checksum(a) == checksum(b)
    assert checksum(a) != checksum(c)
    assert len(checksum(a)) == 64


# --------------------------------------------------------------------------- planning


def migs(**texts: str) -> list[Migration]:
    return [Migration.from_text(name, sql) for name, sql in sorted(texts.items())]


def test_plan_pending_applied_modified_out_of_order_missing():
    ms = migs(**{"001_a.sql": "SELECT 1;", "002_b.sql": "SELECT 2;", "003_c.sql": "SELECT 3;"})
    p = plan(ms, {})
    assert [m.name for m in p.pending] == ["001_a.sql", "002_b.sql", "003_c.sql"]
    assert p.problems() == []

    p = plan(ms, {"001_a.sql": ms[0].checksum, "002_b.sql": "0" * 64})
    assert p.applied == ["001_a.sql", "002_b.sql"]
    assert [m.name for m in p.pending] == ["003_c.sql"]
    [problem] = p.problems()
    assert "002_b.sql was modified" in problem and "0" * 64 in problem and ms[1].checksum in problem

    p = plan(ms, {"001_a.sql": ms[0].checksum, "003_c.sql": ms[2].checksum, "000_gone.sql": "x"})
    assert p.out_of_order == ["002_b.sql"] and p.missing == ["000_gone.sql"]
    assert "002_b.sql sorts before the last applied migration" in p.problems()[0]


def test_load_migrations_refuses_stray_files_and_duplicate_numbers(tmp_path):
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "002_b.sql.j2").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match=r"not migrations .*002_b\.sql\.j2"):
        load_migrations(str(tmp_path))
    (tmp_path / "002_b.sql.j2").rename(tmp_path / "001_b.sql")
    with pytest.raises(MigrationError, match="two migrations share the number 001"):
        load_migrations(str(tmp_path))


def test_every_init_db_file_renders_and_splits(tmp_path):
    for topology in ("single", "replicated"):
        ms = load_migrations(str(render_init_db(tmp_path / topology, topology)))
        assert [m.name for m in ms][:2] == ["001_databases.sql", "002_sensor_data.sql"]
        assert all(m.statements for m in ms), "a migration without statements"


def test_no_drop_of_data_anywhere():
    for src in sorted((ROOT / "files" / "clickhouse" / "init_db").glob("*.sql.j2")):
        for st in split_statements(src.read_text()):
            words = st.text.upper().split()
            assert "DROP" not in words[:2] and "TRUNCATE" not in words[:1], f"{src.name}: {st.first_line}"
            assert "DETACH" not in words[:1], f"{src.name}: {st.first_line}"


# --------------------------------------------------------------------------- against chdb


@pytest.fixture
def chdb_executor(tmp_path):
    conn = chdb_connect(tmp_path / "chdb")
    try:
        yield ChdbExecutor(conn)
    finally:
        conn.close()


def write(d: Path, name: str, sql: str) -> None:
    d.mkdir(exist_ok=True)
    (d / name).write_text(sql)


def test_runner_applies_once_refuses_modified_and_names_failing_statement(chdb_executor, tmp_path):
    ex = chdb_executor
    d = tmp_path / "m"
    write(d, "001_db.sql", "CREATE DATABASE IF NOT EXISTS t1;\n")
    write(d, "002_tbl.sql", "CREATE TABLE IF NOT EXISTS t1.a (x UInt8) ENGINE = MergeTree ORDER BY x;\n")
    runner = Runner(ex)

    # Check mode on a fresh server: lists everything, creates nothing (not even the table).
    assert runner.apply(load_migrations(str(d)), "pytest", check=True) == ["001_db.sql", "002_tbl.sql"]
    assert ex.scalar("SELECT count() FROM system.tables WHERE name = 'schema_migrations'") == 0

    assert runner.apply(load_migrations(str(d)), "pytest") == ["001_db.sql", "002_tbl.sql"]
    rows = ex.execute("SELECT name, checksum, applied_by, statements FROM default.schema_migrations ORDER BY name")
    assert [(r[0], r[2], r[3]) for r in rows] == [("001_db.sql", "pytest", 1), ("002_tbl.sql", "pytest", 1)]
    assert rows[0][1] == load_migrations(str(d))[0].checksum

    # Second run: nothing to do, nothing executed but the bookkeeping reads.
    n = len(ex.executed)
    assert runner.apply(load_migrations(str(d)), "pytest") == []
    assert not [q for q in ex.executed[n:] if q.startswith(("CREATE DATABASE", "INSERT"))]

    # A new file runs alone; check mode names it first.
    write(d, "003_more.sql", "ALTER TABLE t1.a ADD COLUMN IF NOT EXISTS y String;\n")
    assert runner.apply(load_migrations(str(d)), "pytest", check=True) == ["003_more.sql"]
    assert runner.apply(load_migrations(str(d)), "pytest") == ["003_more.sql"]
    assert ex.scalar("SELECT count() FROM system.columns WHERE database = 't1' AND table = 'a'") == 2

    # An applied file edited afterwards: refused, naming the file and both checksums.
    old = load_migrations(str(d))[1].checksum
    write(d, "002_tbl.sql", "CREATE TABLE IF NOT EXISTS t1.a (x UInt16) ENGINE = MergeTree ORDER BY x;\n")
    new = load_migrations(str(d))[1].checksum
    with pytest.raises(MigrationError) as err:
        runner.apply(load_migrations(str(d)), "pytest")
    assert "002_tbl.sql was modified" in str(err.value) and old in str(err.value) and new in str(err.value)
    write(d, "002_tbl.sql", "CREATE TABLE IF NOT EXISTS t1.a (x UInt8) ENGINE = MergeTree ORDER BY x;\n")

    # A broken statement stops the run with file, statement number and first line; the file
    # is not recorded, the one before it is.
    write(d, "004_ok.sql", "CREATE TABLE IF NOT EXISTS t1.b (x UInt8) ENGINE = MergeTree ORDER BY x;\n")
    write(
        d,
        "005_broken.sql",
        "CREATE TABLE IF NOT EXISTS t1.c (x UInt8) ENGINE = MergeTree ORDER BY x;\n\n"
        "INSERT INTO t1.no_such_table\nVALUES (1);\n",
    )
    write(d, "006_after.sql", "CREATE TABLE IF NOT EXISTS t1.d (x UInt8) ENGINE = MergeTree ORDER BY x;\n")
    with pytest.raises(MigrationError) as err:
        runner.apply(load_migrations(str(d)), "pytest")
    msg = str(err.value)
    assert msg.startswith("005_broken.sql: statement 2 (line 3: INSERT INTO t1.no_such_table) failed:"), msg
    assert "applied before it in this run: 004_ok.sql" in msg
    applied = {r[0] for r in ex.execute("SELECT name FROM default.schema_migrations")}
    assert "004_ok.sql" in applied and "005_broken.sql" not in applied and "006_after.sql" not in applied
    assert ex.scalar("SELECT count() FROM system.tables WHERE database = 't1' AND name = 'd'") == 0

    # Fixed file: the run resumes where it stopped (statement 1 is IF NOT EXISTS).
    write(d, "005_broken.sql", "CREATE TABLE IF NOT EXISTS t1.c (x UInt8) ENGINE = MergeTree ORDER BY x;\n")
    assert runner.apply(load_migrations(str(d)), "pytest") == ["005_broken.sql", "006_after.sql"]


def test_an_earlier_form_counts_as_applied_and_is_reported(chdb_executor, tmp_path):
    """An install that applied an earlier form of a migration (superseded/NNN_name~form.sql) is not
    refused as modified; any other checksum still is."""
    ex = chdb_executor
    d = tmp_path / "forms"
    write(d, "001_db.sql", "CREATE DATABASE IF NOT EXISTS t2;\n")
    write(d, "002_q.sql", "CREATE TABLE IF NOT EXISTS t2.q (x UInt8) ENGINE = MergeTree ORDER BY x;\n")
    runner = Runner(ex, table="default.forms_migrations")
    # What an older install applied: 002 in its earlier form.
    write(d / "superseded", "002_q~old.sql", "CREATE TABLE IF NOT EXISTS t2.q (x UInt8) ENGINE = Log;\n")
    old = load_migrations(str(d))[1].superseded[0][1]
    runner.ensure_table()
    first = quote(load_migrations(str(d))[0].checksum)
    ex.execute(
        "INSERT INTO default.forms_migrations (name, checksum, applied_by, statements, duration_ms) VALUES "  # noqa: S608  test values
        f"('001_db.sql', {first}, 'old', 1, 0), ('002_q.sql', {quote(old)}, 'old', 1, 0)"
    )
    assert runner.apply(load_migrations(str(d)), "pytest") == []
    assert runner.superseded == [("002_q.sql", "old")]
    # A checksum that is neither the file's nor an earlier form's is still refused.
    other = quote("f" * 64)
    ex.execute(f"INSERT INTO default.forms_migrations (name, checksum, applied_by) VALUES ('002_q.sql', {other}, 'x')")  # noqa: S608  test values
    with pytest.raises(MigrationError, match=r"002_q\.sql was modified"):
        runner.apply(load_migrations(str(d)), "pytest")


def test_earlier_forms_must_name_a_migration(tmp_path):
    write(tmp_path, "001_a.sql", "SELECT 1;")
    write(tmp_path / "superseded", "007_gone~x.sql", "SELECT 7;")
    with pytest.raises(MigrationError, match=r"earlier form of 007_gone\.sql, which is not a migration"):
        load_migrations(str(tmp_path))
    (tmp_path / "superseded" / "007_gone~x.sql").rename(tmp_path / "superseded" / "notes.txt")
    with pytest.raises(MigrationError, match="not an earlier form"):
        load_migrations(str(tmp_path))


def test_the_earlier_form_of_002_is_the_one_installs_applied(tmp_path):
    """superseded/002_sensor_data~broker-list renders the 002 that installs applied before the brokers
    moved to the named collection: the same statements except the Kafka table's engine clause."""
    ms = load_migrations(str(render_init_db(tmp_path, "replicated")))
    m002 = next(m for m in ms if m.name == "002_sensor_data.sql")
    [(form, checksum)] = m002.superseded
    assert form == "broker-list" and checksum != m002.checksum
    old = (tmp_path / "superseded" / "002_sensor_data~broker-list.sql").read_text()
    assert (
        "kafka_broker_list = 'kafka01:9092'" in old
        and "kafka_broker_list" not in (tmp_path / "002_sensor_data.sql").read_text()
    )
    old_statements = [st.text for st in split_statements(old)]
    new_statements = [st.text for st in m002.statements]
    differ = [i for i, (a, b) in enumerate(zip(old_statements, new_statements, strict=True)) if a != b]
    assert len(differ) == 1 and "streams.sensor_data_queue" in new_statements[differ[0]]
