"""A synthetic NYC taxi-trips dataset with the columns of datamart.trips, reproducible from a seed.

Zones (pickup_ntaname, dropoff_ntaname) are the taxi zones the PostgreSQL `prod` database is
seeded with (files/postgresql/prod/002_reference_data.sql), so the trips join the platform's own
reference data. Distributions are chosen to look like the real dataset: more trips at rush hours,
log-normal durations, fares from distance and time, tips mostly on card payments.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
ZONES_SQL = ROOT / "files/postgresql/prod/002_reference_data.sql"

# The columns of datamart.trips that a load writes (pickup_date is MATERIALIZED), in table order,
# with the Arrow type each one is written as.
SCHEMA = pa.schema(
    [
        ("trip_id", pa.uint32()),
        ("pickup_datetime", pa.timestamp("s", tz="UTC")),
        ("dropoff_datetime", pa.timestamp("s", tz="UTC")),
        ("pickup_longitude", pa.float64()),
        ("pickup_latitude", pa.float64()),
        ("dropoff_longitude", pa.float64()),
        ("dropoff_latitude", pa.float64()),
        ("passenger_count", pa.uint8()),
        ("trip_distance", pa.float32()),
        ("fare_amount", pa.float32()),
        ("extra", pa.float32()),
        ("tip_amount", pa.float32()),
        ("tolls_amount", pa.float32()),
        ("total_amount", pa.float32()),
        ("payment_type", pa.string()),
        ("pickup_ntaname", pa.string()),
        ("dropoff_ntaname", pa.string()),
    ]
)
NULLABLE = {"pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude"}

PAYMENT_TYPES = ["CRE", "CSH", "NOC", "DIS", "UNK"]
PAYMENT_WEIGHTS = [0.68, 0.28, 0.02, 0.01, 0.01]
# Relative trip volume per hour of the day (a night low, two rush hours).
HOUR_WEIGHTS = np.array(
    [3, 2, 1.5, 1, 1, 1.5, 3, 5, 6, 5.5, 5, 5.2, 5.5, 5.5, 5.8, 6, 6.2, 6.8, 7, 6.8, 6.2, 5.8, 5, 4], dtype=float
)
DAYS = 30
MAX_ROWS = 100_000_000


@dataclass(frozen=True)
class Zone:
    zone_id: int
    borough_id: int
    name: str


def load_zones(path: Path = ZONES_SQL) -> list[Zone]:
    """The taxi zones of the prod database's reference data (the INSERT INTO public.zones rows)."""
    text = path.read_text()
    block = re.search(r"INSERT INTO public\.zones\s*\([^)]*\)\s*VALUES(.*?)ON CONFLICT", text, re.S)
    if not block:
        raise ValueError(f"{path}: no INSERT INTO public.zones ... ON CONFLICT block")
    zones = [
        Zone(int(zid), int(bid), name.replace("''", "'"))
        for zid, bid, name in re.findall(r"\(\s*(\d+)\s*,\s*(\d+)\s*,\s*'((?:[^']|'')*)'", block.group(1))
    ]
    if not zones:
        raise ValueError(f"{path}: the zones block has no rows")
    return zones


def zone_centres(zones: list[Zone]) -> tuple[np.ndarray, np.ndarray]:
    """A fixed point per zone inside New York City's bounding box, derived from the zone id."""
    lon, lat = [], []
    for z in zones:
        h = hashlib.sha256(f"zone-{z.zone_id}".encode()).digest()
        lon.append(-74.05 + 0.30 * h[0] / 255)
        lat.append(40.58 + 0.32 * h[1] / 255)
    return np.array(lon), np.array(lat)


def generate(rows: int, seed: int = 1, end: datetime | None = None, first_id: int = 1, zones=None) -> pa.Table:
    """``rows`` trips over the 30 days before ``end`` (default: today 00:00 UTC), ids from ``first_id``."""
    if not 0 < rows <= MAX_ROWS:
        raise ValueError(f"rows must be between 1 and {MAX_ROWS}, not {rows}")
    if first_id < 1 or first_id + rows - 1 > 2**32 - 1:
        raise ValueError(f"trip ids {first_id}..{first_id + rows - 1} do not fit UInt32 (ids start at 1)")
    end = end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = int((end - timedelta(days=DAYS)).timestamp())
    zones = zones or load_zones()
    rng = np.random.default_rng(seed)

    day = rng.integers(0, DAYS, rows)
    hour = rng.choice(24, rows, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    pickup = start + day * 86400 + hour * 3600 + rng.integers(0, 3600, rows)
    # In time order, as the table's ORDER BY (pickup_datetime, trip_id): ids grow with time.
    order = np.argsort(pickup, kind="stable")
    pickup, hour = pickup[order], hour[order]
    minutes = np.clip(rng.lognormal(np.log(12), 0.55, rows), 2, 180)
    dropoff = pickup + np.round(minutes * 60).astype(np.int64)
    speed = np.clip(rng.normal(11, 3, rows), 3, 35)  # miles per hour
    distance = np.round(np.maximum(speed * minutes / 60, 0.1), 2)

    fare = np.round(3.0 + 2.5 * distance + 0.5 * minutes, 2)
    extra = np.where((hour >= 16) & (hour < 20), 1.0, np.where((hour >= 20) | (hour < 6), 0.5, 0.0))
    payment = rng.choice(len(PAYMENT_TYPES), rows, p=PAYMENT_WEIGHTS)
    tips = rng.uniform(0.10, 0.25, rows) * fare * (rng.random(rows) < 0.8)
    tip = np.round(np.where(payment == 0, tips, 0.0), 2)
    tolls = np.where(rng.random(rows) < 0.05, 6.94, 0.0)
    total = np.round(fare + extra + tip + tolls, 2)

    names = np.array([z.name for z in zones], dtype=object)
    lon0, lat0 = zone_centres(zones)
    pz = rng.integers(0, len(zones), rows)
    dz = rng.integers(0, len(zones), rows)

    def coord(centre: np.ndarray, idx: np.ndarray, spread: float) -> pa.Array:
        values = centre[idx] + rng.normal(0, spread, rows)
        missing = rng.random(rows) < 0.02  # GPS not recorded on about 2 % of the trips
        return pa.array(np.round(values, 6), type=pa.float64(), mask=missing)

    columns = {
        "trip_id": pa.array(np.arange(first_id, first_id + rows, dtype=np.uint32)),
        "pickup_datetime": pa.array(pickup, type=pa.timestamp("s", tz="UTC")),
        "dropoff_datetime": pa.array(dropoff, type=pa.timestamp("s", tz="UTC")),
        "pickup_longitude": coord(lon0, pz, 0.004),
        "pickup_latitude": coord(lat0, pz, 0.003),
        "dropoff_longitude": coord(lon0, dz, 0.004),
        "dropoff_latitude": coord(lat0, dz, 0.003),
        "passenger_count": pa.array(rng.choice(6, rows, p=[0.70, 0.15, 0.05, 0.03, 0.05, 0.02]) + 1, type=pa.uint8()),
        "trip_distance": pa.array(distance, type=pa.float32()),
        "fare_amount": pa.array(fare, type=pa.float32()),
        "extra": pa.array(extra, type=pa.float32()),
        "tip_amount": pa.array(tip, type=pa.float32()),
        "tolls_amount": pa.array(tolls, type=pa.float32()),
        "total_amount": pa.array(total, type=pa.float32()),
        "payment_type": pa.array(np.array(PAYMENT_TYPES, dtype=object)[payment], type=pa.string()),
        "pickup_ntaname": pa.array(names[pz], type=pa.string()),
        "dropoff_ntaname": pa.array(names[dz], type=pa.string()),
    }
    return pa.table(columns, schema=SCHEMA)


def write_parquet(table: pa.Table, path: Path) -> Path:
    """Write the table as one Parquet file (zstd), atomically: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=256_000)
    tmp.replace(path)
    return path


def estimated_bytes(rows: int) -> int:
    """An upper bound of the Parquet file's size (measured: about 50 bytes a row with zstd)."""
    return 64 * rows + 1_000_000
