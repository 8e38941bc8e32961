"""Upload files to a MinIO bucket with Airflow's own MinIO connection (minio_s3), as a DAG would.

Run on the Airflow host as the airflow user: airflow-cli --python upload_datasets.py BUCKET
KEY=PATH [KEY=PATH ...] [--raw-put-bench | --dry-run]. An object whose stored sha256 (object
metadata) and size equal the file's is left alone, so a second run uploads nothing. With --dry-run
(the playbook's check mode) nothing is uploaded: "uploaded" then says which objects would be.
Each object is one S3 upload: it appears whole or not at all. Prints one JSON line:
{"objects": {key: {bytes, uploaded, seconds}}, "raw_put": {...} with --raw-put-bench (the same
bytes in one plain PutObject, then deleted, as are the objects under bench/)}.
Exits 2 with one line naming the fix when the bucket or the connection is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time


def fail(msg: str) -> None:
    print(json.dumps({"error": msg}))
    sys.exit(2)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    bench = "--raw-put-bench" in sys.argv
    dry_run = "--dry-run" in sys.argv
    if len(args) < 2:
        fail("usage: upload_datasets.py BUCKET KEY=PATH [KEY=PATH ...] [--raw-put-bench]")
    bucket, specs = args[0], [a.split("=", 1) for a in args[1:]]

    from airflow.models.connection import Connection

    try:
        # Outside a task, Airflow 3's hooks read connections from the environment only.
        os.environ["AIRFLOW_CONN_MINIO_S3"] = Connection.get_connection_from_secrets("minio_s3").as_json()
    except Exception as exc:  # any lookup failure means the same fix
        fail(f"Airflow has no usable connection minio_s3 ({exc}): run site.yml (the airflow role creates it)")
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id="minio_s3")
    if not hook.check_for_bucket(bucket):
        fail(
            f"bucket {bucket} does not exist in MinIO (or Airflow's key cannot see it): "
            "run site.yml (the minio role creates it)"
        )
    client = hook.get_conn()
    out = {}
    for key, path in specs:
        size, digest = os.path.getsize(path), sha256(path)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            same = head.get("Metadata", {}).get("sha256") == digest and head["ContentLength"] == size
        except client.exceptions.ClientError:
            same = False
        started = time.perf_counter()
        if not same and not dry_run:
            client.upload_file(path, bucket, key, ExtraArgs={"Metadata": {"sha256": digest}})
        out[key] = {"bytes": size, "uploaded": not same, "seconds": round(time.perf_counter() - started, 3)}
    result = {"objects": out}
    if bench and not dry_run:
        key, path = specs[0]
        with open(path, "rb") as f:
            data = f.read()
        started = time.perf_counter()
        client.put_object(Bucket=bucket, Key="bench/raw-put", Body=data)
        result["raw_put"] = {"bytes": len(data), "seconds": round(time.perf_counter() - started, 3)}
        client.delete_object(Bucket=bucket, Key="bench/raw-put")
        started = time.perf_counter()
        client.upload_file(path, bucket, "bench/upload-file")
        result["upload_file"] = {"bytes": len(data), "seconds": round(time.perf_counter() - started, 3)}
        client.delete_object(Bucket=bucket, Key="bench/upload-file")
        for key, _ in specs:  # a benchmark leaves nothing behind
            if key.startswith("bench/"):
                client.delete_object(Bucket=bucket, Key=key)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
