# Copyright: the chplatform project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: S608  (identifiers come from the module's parameters, values go through quote())
"""Ordered, checksummed, apply-once SQL migrations for ClickHouse.

Pure planning logic (statement splitting, checksums, pending vs applied, modified files) plus
a runner that talks to ClickHouse only through an *executor* (anything with
``execute(sql) -> list of rows``). The Ansible module plugs in clickhouse-driver (native
protocol); the tests plug in chdb, the ClickHouse engine as a library, so that the very same
code is proven against the real engine without a server.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field

MIGRATION_NAME = re.compile(r"^(\d{3,})_[A-Za-z0-9_.-]+\.sql$")
# Earlier forms of a migration that an install may have applied: superseded/<name>~<form>.sql.
SUPERSEDED_DIR = "superseded"
SUPERSEDED_NAME = re.compile(r"^(\d{3,}_[A-Za-z0-9_.-]+?)~([A-Za-z0-9_.-]+)\.sql$")
DEFAULT_TABLE = "default.schema_migrations"


class MigrationError(Exception):
    """A migration cannot be applied; the message says which file and why."""


@dataclass(frozen=True)
class Statement:
    number: int  # 1-based position in its file
    line: int  # 1-based line of the file where the statement starts
    text: str

    @property
    def first_line(self) -> str:
        return self.text.strip().splitlines()[0].strip()


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str
    statements: tuple[Statement, ...] = field(default=())
    # Checksums of earlier forms of this file that count as applied: form name -> checksum.
    superseded: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def from_text(cls, name: str, sql: str) -> Migration:
        return cls(name=name, sql=sql, statements=tuple(split_statements(sql)))

    @property
    def checksum(self) -> str:
        return checksum(self.statements)


@dataclass
class Plan:
    pending: list[Migration]
    applied: list[str]
    modified: list[tuple[str, str, str]]  # (name, recorded checksum, checksum on disk)
    missing: list[str]  # recorded as applied, no longer on disk
    out_of_order: list[str]  # not applied, but sorts before an applied migration
    superseded: list[tuple[str, str]] = field(default_factory=list)  # (name, form): applied in an earlier form

    def problems(self) -> list[str]:
        msgs = [
            f"{name} was modified after it was applied (applied checksum {old}, file now {new}); "
            f"restore the applied content and put the change in a new migration"
            for name, old, new in self.modified
        ]
        msgs += [
            f"{name} sorts before the last applied migration but was never applied; "
            f"rename it so that it comes after {self.applied[-1] if self.applied else 'the applied ones'}"
            for name in self.out_of_order
        ]
        return msgs


def split_statements(sql: str) -> list[Statement]:
    """Split SQL on top-level semicolons, aware of quotes, backquotes and comments.

    Comment-only chunks are dropped; comments and blank lines before a statement are not part
    of it. Each statement keeps the line number where its first code line is.
    """
    statements: list[Statement] = []
    buf: list[str] = []
    i, n, line = 0, len(sql), 1
    start_line = None
    has_code = False
    quote = None
    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if quote:
            buf.append(c)
            if c == "\\" and nxt:
                buf.append(nxt)
                line += nxt == "\n"
                i += 2
                continue
            if c == quote:
                if nxt == quote:  # doubled quote inside a literal
                    buf.append(nxt)
                    i += 2
                    continue
                quote = None
            line += c == "\n"
            i += 1
            continue
        if (c == "-" and nxt == "-") or (c == "#" and nxt in ("!", " ")):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            if has_code:
                buf.append(sql[i:end])
            i = end
            continue
        if c == "/" and nxt == "*":
            end = sql.find("*/", i + 2)
            if end == -1:
                raise MigrationError(f"unterminated /* comment starting at line {line}")
            chunk = sql[i : end + 2]
            if has_code:
                buf.append(chunk)
            line += chunk.count("\n")
            i = end + 2
            continue
        if c == ";":
            if has_code:
                statements.append(Statement(len(statements) + 1, start_line or line, _clean("".join(buf))))
            buf, has_code, start_line = [], False, None
            i += 1
            continue
        if c in ("'", '"', "`"):
            quote = c
        if not c.isspace() and not has_code:
            has_code, start_line = True, line
        if has_code:
            buf.append(c)
        line += c == "\n"
        i += 1
    if quote:
        raise MigrationError(f"unterminated {quote} quote at the end of the file")
    if has_code:
        statements.append(Statement(len(statements) + 1, start_line or line, _clean("".join(buf))))
    return statements


def _clean(text: str) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines()]
    return "\n".join(ln for ln in lines if ln)


def checksum(statements) -> str:
    """sha256 of the statements as executed: comments between statements and whitespace at the
    ends of lines do not count, every character of every statement does."""
    h = hashlib.sha256()
    for st in statements:
        h.update(st.text.encode("utf-8"))
        h.update(b"\n;\n")
    return h.hexdigest()


def load_migrations(path: str) -> list[Migration]:
    """The ``NNN_name.sql`` files of a directory, in order. Other files are an error (a stray
    ``.j2`` or a typo would otherwise be silently skipped).

    ``superseded/NNN_name~form.sql`` holds an earlier form of ``NNN_name.sql`` that installs may
    have applied (e.g. 002 before its Kafka brokers moved to a named collection): a recorded
    checksum equal to that form's counts as applied, and is reported, instead of as modified."""
    if not os.path.isdir(path):
        raise MigrationError(f"migrations directory {path} does not exist")
    names = sorted(n for n in os.listdir(path) if n != SUPERSEDED_DIR)
    bad = [n for n in names if not MIGRATION_NAME.match(n)]
    if bad:
        raise MigrationError(f"{path} holds files that are not migrations (NNN_name.sql): {', '.join(bad)}")
    numbers: dict[str, str] = {}
    for name in names:
        num = MIGRATION_NAME.match(name).group(1)
        if num in numbers:
            raise MigrationError(f"two migrations share the number {num}: {numbers[num]} and {name}")
        numbers[num] = name
    forms = _load_superseded(os.path.join(path, SUPERSEDED_DIR), set(names))
    migrations = []
    for name in names:
        with open(os.path.join(path, name), encoding="utf-8") as f:
            m = Migration.from_text(name, f.read())
        migrations.append(Migration(m.name, m.sql, m.statements, tuple(forms.get(name, ()))))
    return migrations


def _load_superseded(path: str, migrations: set[str]) -> dict[str, list[tuple[str, str]]]:
    """migration name -> [(form, checksum)] from superseded/NNN_name~form.sql."""
    forms: dict[str, list[tuple[str, str]]] = {}
    if not os.path.isdir(path):
        return forms
    for entry in sorted(os.listdir(path)):
        found = SUPERSEDED_NAME.match(entry)
        if not found:
            raise MigrationError(f"{path} holds {entry}, which is not an earlier form (NNN_name~form.sql)")
        base = found.group(1) + ".sql"
        if base not in migrations:
            raise MigrationError(f"{path}/{entry} is an earlier form of {base}, which is not a migration")
        with open(os.path.join(path, entry), encoding="utf-8") as f:
            forms.setdefault(base, []).append((found.group(2), checksum(split_statements(f.read()))))
    return forms


def plan(migrations: list[Migration], applied: dict[str, str]) -> Plan:
    """Compare the files with what the migrations table records (name -> checksum)."""
    on_disk = {m.name for m in migrations}
    last_applied = max(applied) if applied else None
    p = Plan(pending=[], applied=[], modified=[], missing=sorted(set(applied) - on_disk), out_of_order=[])
    for m in migrations:
        if m.name in applied:
            p.applied.append(m.name)
            earlier = [form for form, cs in m.superseded if cs == applied[m.name]]
            if applied[m.name] == m.checksum:
                pass
            elif earlier:
                p.superseded.append((m.name, earlier[0]))
            else:
                p.modified.append((m.name, applied[m.name], m.checksum))
        elif last_applied is not None and m.name < last_applied:
            p.out_of_order.append(m.name)
        else:
            p.pending.append(m)
    return p


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_ddl(table: str = DEFAULT_TABLE, replicated: bool = False, cluster: str | None = None) -> str:
    on_cluster = f" ON CLUSTER {quote(cluster)}" if cluster else ""
    if replicated:
        engine = "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
    else:
        engine = "MergeTree"
    return (
        f"CREATE TABLE IF NOT EXISTS {table}{on_cluster}\n"
        "(\n    name String,\n    checksum FixedString(64),\n    applied_at DateTime64(3) DEFAULT now64(3),\n"
        "    applied_by String,\n    statements UInt32,\n    duration_ms UInt64\n)\n"
        f"ENGINE = {engine}\nORDER BY name\n"
        "COMMENT 'init_db migrations applied to this server (clickhouse_migrations module)'"
    )


class Runner:
    """Apply pending migrations through an executor, recording each one."""

    def __init__(self, executor, table: str = DEFAULT_TABLE, replicated: bool = False, cluster: str | None = None):
        self.executor = executor
        self.table = table
        self.replicated = replicated
        self.cluster = cluster
        self.superseded: list[tuple[str, str]] = []

    def ensure_table(self) -> None:
        self.executor.execute(table_ddl(self.table, self.replicated, self.cluster))

    def applied(self) -> dict[str, str]:
        rows = self.executor.execute(f"SELECT name, argMax(checksum, applied_at) FROM {self.table} GROUP BY name")
        return {str(name): str(cs) for name, cs in rows}

    def table_exists(self) -> bool:
        db, _, tbl = self.table.rpartition(".")
        rows = self.executor.execute(
            f"SELECT count() FROM system.tables WHERE database = {quote(db or 'default')} AND name = {quote(tbl)}"
        )
        return int(rows[0][0]) > 0

    def plan(self, migrations: list[Migration], create_table: bool = True) -> Plan:
        if create_table:
            self.ensure_table()
        elif not self.table_exists():
            return plan(migrations, {})
        p = plan(migrations, self.applied())
        problems = p.problems()
        if problems:
            raise MigrationError("; ".join(problems))
        return p

    def apply(self, migrations: list[Migration], applied_by: str, check: bool = False) -> list[str]:
        """Apply what is pending, in order; return the names applied (or that would be).
        ``self.superseded`` lists afterwards the migrations applied in an earlier form."""
        p = self.plan(migrations, create_table=not check)
        self.superseded = p.superseded
        if check:
            return [m.name for m in p.pending]
        done = []
        for m in p.pending:
            t0 = time.monotonic()
            for st in m.statements:
                try:
                    self.executor.execute(st.text)
                except Exception as exc:
                    raise MigrationError(
                        f"{m.name}: statement {st.number} (line {st.line}: {st.first_line}) failed: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                        + (f"; applied before it in this run: {', '.join(done)}" if done else "")
                    ) from exc
            ms = int((time.monotonic() - t0) * 1000)
            self.executor.execute(
                f"INSERT INTO {self.table} (name, checksum, applied_by, statements, duration_ms) VALUES "
                f"({quote(m.name)}, {quote(m.checksum)}, {quote(applied_by)}, {len(m.statements)}, {ms})"
            )
            done.append(m.name)
        return done
