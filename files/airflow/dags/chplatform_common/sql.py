"""SQL of the DAGs as pure functions, so tests can run it in an embedded ClickHouse (chdb).

Every identifier goes through ident() and every value through literal(): the f-strings below
only assemble checked parts.
"""

# ruff: noqa: S608

from __future__ import annotations

import re

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def ident(name: str) -> str:
    """A safe identifier (letters, digits, underscore) or ValueError."""
    if not _IDENT.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def literal(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- pg_to_ch: PostgreSQL prod -> ClickHouse prod through the pg_prod named collection ----------


def watermark_sql(table: str) -> str:
    """Highest updated_at already in ClickHouse (1970 when empty)."""
    return f"SELECT toString(max(updated_at)) FROM prod.{ident(table)}"


def incremental_copy_sql(
    table: str, columns: list[str], watermark: str, source: str = "postgresql(pg_prod, table={t})"
) -> str:
    """Copy rows changed since the watermark (>=: re-copying the boundary is harmless,
    ReplacingMergeTree(updated_at) keeps one version)."""
    cols = ", ".join(ident(c) for c in columns)
    src = source.format(t=literal(ident(table)))
    return (
        f"INSERT INTO prod.{ident(table)} ({cols}) SELECT {cols} FROM {src} "
        f"WHERE updated_at >= parseDateTime64BestEffort({literal(watermark)}, 6, 'UTC')"
    )


def count_sql(table: str, final: bool = True) -> str:
    """Distinct rows of a ReplacingMergeTree table."""
    return f"SELECT count() FROM prod.{ident(table)}{' FINAL' if final else ''}"


def source_count_sql(table: str, source: str = "postgresql(pg_prod, table={t})") -> str:
    """Rows in the PostgreSQL source table."""
    return f"SELECT count() FROM {source.format(t=literal(ident(table)))}"


# --- api_to_ext --------------------------------------------------------------------------------

API_QUOTES_COLUMNS = ["quote_id", "quote", "author", "tags", "source"]


def optimize_final_sql(table: str) -> str:
    """Merge away replaced versions (ReplacingMergeTree)."""
    db, _, name = table.partition(".")
    return f"OPTIMIZE TABLE {ident(db)}.{ident(name)} FINAL"


def duplicates_sql(table: str, key: str) -> str:
    """Keys present more than once (FINAL view): must be 0 after a load."""
    db, _, name = table.partition(".")
    return (
        f"SELECT count() FROM (SELECT {ident(key)} FROM {ident(db)}.{ident(name)} FINAL "
        f"GROUP BY {ident(key)} HAVING count() > 1)"
    )


# --- file_to_ext and trips_load: files in the datasets bucket via the s3_datasets collection ----


def s3_source(filename: str, fmt: str, collection: str = "s3_datasets") -> str:
    """The s3 table function over a file of the datasets bucket."""
    if not _NAME.match(filename.replace("/", "")):
        raise ValueError(f"unexpected file name: {filename!r}")
    if fmt not in {"CSVWithNames", "Parquet", "TSVWithNames", "JSONEachRow"}:
        raise ValueError(f"unsupported format: {fmt!r}")
    return f"s3({ident(collection)}, filename = {literal(filename)}, format = {literal(fmt)})"


# Read CSV columns as text (no type guessing): the load converts them explicitly.
_ALL_STRINGS = "input_format_csv_use_best_effort_in_schema_inference = 0"

NETFLIX_COLUMNS = [
    "show_id",
    "type",
    "title",
    "director",
    "cast",
    "country",
    "date_added",
    "release_year",
    "rating",
    "duration",
    "listed_in",
    "description",
]


def netflix_load_sql(source: str) -> str:
    """Load the Netflix titles CSV; dates like 'September 25, 2021' parsed best effort."""
    cols = ", ".join(NETFLIX_COLUMNS)
    return (
        f"INSERT INTO ext.netflix_titles ({cols}) "
        "SELECT show_id, type, title, nullIf(director, ''), nullIf(cast, ''), nullIf(country, ''), "
        "toDate(parseDateTimeBestEffortOrNull(trim(date_added))), toUInt16(release_year), "
        "nullIf(rating, ''), nullIf(duration, ''), listed_in, description "
        f"FROM {source} WHERE show_id != '' SETTINGS {_ALL_STRINGS}"
    )


def bad_rows_sql(source: str) -> str:
    """Rows a load would reject (no id or an impossible year): must be 0."""
    return (
        f"SELECT count() FROM {source} WHERE show_id = '' "
        f"OR toUInt16OrZero(toString(release_year)) NOT BETWEEN 1900 AND 2100 SETTINGS {_ALL_STRINGS}"
    )


TRIPS_COLUMNS = [
    "trip_id",
    "pickup_datetime",
    "dropoff_datetime",
    "pickup_longitude",
    "pickup_latitude",
    "dropoff_longitude",
    "dropoff_latitude",
    "passenger_count",
    "trip_distance",
    "fare_amount",
    "extra",
    "tip_amount",
    "tolls_amount",
    "total_amount",
    "payment_type",
    "pickup_ntaname",
    "dropoff_ntaname",
]


def trips_load_sql(source: str) -> str:
    """Insert trips not yet present (anti-join on trip_id): re-running loads nothing twice."""
    cols = ", ".join(TRIPS_COLUMNS)
    return (
        f"INSERT INTO datamart.trips ({cols}) SELECT {cols} FROM {source} "
        "WHERE trip_id NOT IN (SELECT trip_id FROM datamart.trips)"
    )


def rows_sql(source: str) -> str:
    """Rows in a source."""
    return f"SELECT count() FROM {source}"


def trips_bad_rows_sql(source: str) -> str:
    """Trips that make no sense (drop-off before pick-up, negative totals): must be 0."""
    return f"SELECT count() FROM {source} WHERE dropoff_datetime < pickup_datetime OR total_amount < 0 OR trip_id = 0"


# --- clickhouse_backup -------------------------------------------------------------------------


def backup_sql(databases: list[str], name: str, disk: str = "backups", base: str | None = None) -> str:
    """BACKUP the databases to Disk(disk, name), incremental on base when given; ASYNC."""
    if not _NAME.match(name) or (base is not None and not _NAME.match(base)):
        raise ValueError(f"bad backup name: {name!r} / {base!r}")
    what = ", ".join(f"DATABASE {ident(d)}" for d in databases)
    sql = f"BACKUP {what} TO Disk({literal(disk)}, {literal(name)})"
    if base:
        sql += f" SETTINGS base_backup = Disk({literal(disk)}, {literal(base)})"
    return sql + " ASYNC"


def backup_status_sql(backup_id: str) -> str:
    """Status and error of one backup operation."""
    return f"SELECT status, error, num_files, total_size FROM system.backups WHERE id = {literal(backup_id)}"


def last_backup_sql(disk: str = "backups", prefix: str = "") -> str:
    """Name of the newest successful backup on the disk (optionally with a name prefix)."""
    return (
        "SELECT extract(name, 'Disk\\\\([^,]+,\\\\s*\\'([^\\']+)\\'\\\\)') AS n FROM system.backups "
        f"WHERE status = 'BACKUP_CREATED' AND name LIKE {literal('Disk(' + literal(disk) + '%')} "
        f"AND n LIKE {literal(prefix + '%')} ORDER BY end_time DESC LIMIT 1"
    )


def restore_sql(databases: list[str], name: str, disk: str = "backups") -> str:
    """RESTORE the databases from a named backup (an incremental one restores its chain)."""
    if not _NAME.match(name):
        raise ValueError(f"bad backup name: {name!r}")
    what = ", ".join(f"DATABASE {ident(d)}" for d in databases)
    return f"RESTORE {what} FROM Disk({literal(disk)}, {literal(name)})"
