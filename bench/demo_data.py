#!/usr/bin/env python3
"""The demo data's numbers: the trips generator's rows/s and Parquet size on this machine, and,
when a lab is up, the upload to MinIO through Airflow's connection next to a raw PutObject of the
same bytes (both from airflow01, the host playbooks/demo.yml uploads from).

    .venv/bin/python bench/demo_data.py [ROWS ...]        (default 100000 1000000)

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from chplatform_demo import trips  # the venv's editable install of src/ (bin/lib.sh)

ROOT = Path(__file__).resolve().parents[1]


def generator(rows: int, work: Path) -> Path:
    end = datetime(2026, 11, 30, tzinfo=UTC)
    t0 = time.perf_counter()
    table = trips.generate(rows, seed=1, end=end)
    t1 = time.perf_counter()
    path = trips.write_parquet(table, work / f"trips-{rows}.parquet")
    t2 = time.perf_counter()
    size = path.stat().st_size
    print(
        f"generate {rows:>10,} trips: {t1 - t0:6.2f} s ({rows / (t1 - t0):>12,.0f} rows/s), "
        f"write Parquet {t2 - t1:5.2f} s, {size / 2**20:7.1f} MiB ({size / rows:4.1f} bytes/row)"
    )
    return path


def lab_upload(path: Path) -> None:
    ssh = ["bash", str(ROOT / "bin/lab"), "ssh", "-o", "ConnectTimeout=5", "airflow01"]
    try:
        up = subprocess.run([*ssh, "true"], capture_output=True, timeout=30, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        up = False
    if not up:
        print("upload: skipped (no lab answers on airflow01: bin/lab up)")
        return
    staging = "/var/tmp/chplatform-demo-bench"
    script = ROOT / "files/demo/upload_datasets.py"
    subprocess.run([*ssh, f"sudo install -d -m 0750 -g airflow {staging}"], check=True, timeout=60)
    for src in (path, script):
        dest = f"{staging}/{src.name}"
        with open(src, "rb") as f:
            put = f"sudo sh -c 'cat > {dest} && chgrp airflow {dest} && chmod 0640 {dest}'"
            subprocess.run([*ssh, put], stdin=f, check=True, timeout=300)
    out = subprocess.run(
        [*ssh, f"sudo /usr/local/sbin/airflow-cli --python {staging}/{script.name} datasets "
               f"bench/{path.name}={staging}/{path.name} --raw-put-bench; sudo rm -rf {staging}"],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    r = json.loads(out)
    size = path.stat().st_size / 2**20
    obj = next(iter(r["objects"].values()))
    for label, s in (("upload (the demo's: upload_file, new object)", obj["seconds"]),
                     ("upload_file alone", r["upload_file"]["seconds"]),
                     ("raw PutObject of the same bytes", r["raw_put"]["seconds"])):  # fmt: skip
        print(f"{label:44s} {size:7.1f} MiB in {s:6.2f} s = {size / max(s, 1e-9):7.1f} MiB/s")


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [generator(n, Path(tmp)) for n in sizes]
        lab_upload(paths[-1])


if __name__ == "__main__":
    main()
