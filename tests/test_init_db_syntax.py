"""Every statement of every init_db migration, in every rendering, passes ClickHouse's parser.

chdb's ``formatQuery`` is ClickHouse 26.9's own parser: it accepts RBAC and ON CLUSTER
statements (which chdb cannot execute) and raises a syntax error with the position otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ansible_collections.chplatform.platform.plugins.module_utils.clickhouse_migrations import (
    Migration,
    load_migrations,
    quote,
)

from tests.services import TOPOLOGIES, ChdbExecutor, chdb_connect, render_init_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def parser(tmp_path_factory):
    conn = chdb_connect(tmp_path_factory.mktemp("chdb-parser"))
    try:
        yield ChdbExecutor(conn)
    finally:
        conn.close()


def test_parser_rejects_a_syntax_error(parser):
    with pytest.raises(Exception, match="Syntax error"):
        parser.execute("SELECT formatQuery(" + quote("CREATE TABLE x (a UInt8 ENGINE = MergeTree") + ")")


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_every_statement_parses(parser, tmp_path, topology):
    rendered = render_init_db(tmp_path, topology)
    migrations = load_migrations(str(rendered))
    # The earlier forms in superseded/ too: a runner compares their checksums, they must be real SQL.
    earlier = [Migration.from_text(p.name, p.read_text()) for p in sorted((rendered / "superseded").glob("*.sql"))]
    assert earlier, "no earlier form rendered"
    failures, count = [], 0
    for m in migrations + earlier:
        for st in m.statements:
            count += 1
            try:
                formatted = parser.scalar("SELECT formatQuery(" + quote(st.text) + ")")
                assert formatted.split()[0].upper() == st.text.split()[0].upper()
            except Exception as exc:
                failures.append(f"{m.name} statement {st.number} (line {st.line}: {st.first_line}): {exc}")
    assert not failures, "\n".join(failures)
    assert count > 80, f"only {count} statements: did a template render empty?"


def test_renderings_differ_only_where_the_topology_does(tmp_path):
    single = render_init_db(tmp_path / "s", "single")
    repl = render_init_db(tmp_path / "r", "replicated")
    oc = render_init_db(tmp_path / "o", "replicated_on_cluster")
    for f in sorted(single.glob("*.sql")):
        s, r, o = f.read_text(), (repl / f.name).read_text(), (oc / f.name).read_text()
        assert "ON CLUSTER" not in s + r and "Replicated" not in s
        assert o.replace(" ON CLUSTER '{cluster}'", "") == r, f"{f.name}: ON CLUSTER rendering differs otherwise"
        engines = len(re.findall(r"ENGINE = \w*MergeTree\(", s))
        assert r.count("MergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}'") == engines, f.name
    assert "ON CLUSTER '{cluster}'" in (oc / "009_rbac.sql").read_text()
