"""chplatform-demo-data: write the lab's demo datasets (trips as Parquet, titles as CSV)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from chplatform_demo import titles, trips


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="chplatform-demo-data", description=__doc__)
    p.add_argument("--out-dir", type=Path, required=True, help="directory for the files (must exist)")
    p.add_argument("--rows", type=int, default=1_000_000, help="trips to generate (default %(default)s)")
    p.add_argument("--title-rows", type=int, default=500, help="titles to generate (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed and end give the same data")
    p.add_argument("--end", help="last day of the 30 days of trips, YYYY-MM-DD (default: today, UTC)")
    args = p.parse_args(argv)
    if not 0 < args.rows <= trips.MAX_ROWS:
        p.error(f"--rows must be between 1 and {trips.MAX_ROWS}")
    if args.end:
        try:
            args.end = datetime.strptime(args.end, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            p.error(f"--end {args.end!r} is not a date YYYY-MM-DD")
    if not args.out_dir.is_dir():
        p.error(f"--out-dir {args.out_dir} is not a directory: create it first")
    need, free = trips.estimated_bytes(args.rows), shutil.disk_usage(args.out_dir).free
    if need > free:
        p.error(
            f"{args.rows} trips need about {need // 2**20} MiB and {args.out_dir} has {free // 2**20} MiB free: "
            "lower --rows or free space"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    table = trips.generate(args.rows, seed=args.seed, end=args.end)
    generated = time.perf_counter() - t0
    trips_path = trips.write_parquet(table, args.out_dir / "trips.parquet")
    written = time.perf_counter() - t0 - generated
    titles_path = titles.write_csv(titles.generate(args.title_rows, seed=args.seed), args.out_dir / "titles.csv")
    report = {
        "trips": {"path": str(trips_path), "rows": table.num_rows, "bytes": trips_path.stat().st_size,
                  "generate_s": round(generated, 3), "write_s": round(written, 3),
                  "rows_per_s": round(table.num_rows / generated)},
        "titles": {"path": str(titles_path), "rows": args.title_rows, "bytes": titles_path.stat().st_size},
        "seed": args.seed,
    }  # fmt: skip
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
