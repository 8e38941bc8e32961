#!/usr/bin/env python3
"""Kafka -> ClickHouse ingestion throughput, next to the raw consume rate and the producer's rate.

Three numbers for the same topic and the same messages (default 1 000 000, 5 % malformed):

1. producer: the sensor producer's own send rate (kafka-python, as fast as it can);
2. raw consume: a kafka-python consumer reading the whole topic, doing nothing with it;
3. Kafka -> parsed: batches consumed from the topic and inserted, with their Kafka coordinates,
   into the init_db Kafka table's stand-in in chdb, through the migrations' own materialized
   views (raw.sensor_data -> parsed.sensor_data / parsed.sensor_data_errors), until every message
   is in raw and parsed+errors. chdb cannot run the Kafka engine itself (no message-broker pool),
   so this measures the SQL path of the views, with the consumer in Python; a ClickHouse server's
   own librdkafka consumer reads faster than kafka-python.

Starts its own Kafka (bundle tarball) unless --bootstrap-servers is given. Prints numbers; it
asserts nothing about speed and is not run in CI.

    python bench/ingest_benchmark.py [--messages 1000000] [--batch 50000] [--bootstrap-servers host:port]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "collections"), str(ROOT / "src")]

from ansible_collections.chplatform.platform.plugins.module_utils.clickhouse_migrations import (  # noqa: E402  after sys.path above: the benchmark runs as a script
    Runner,
    load_migrations,
    quote,
)

from sensor_producer import send_messages  # noqa: E402  after sys.path above: the benchmark runs as a script
from tests.services import (  # noqa: E402  after sys.path above: the benchmark runs as a script
    KAFKA_LOG4J,
    KAFKA_PROPERTIES,
    ChdbExecutor,
    chdb_connect,
    free_port,
    is_rbac,
    kafka_distribution,
    kafka_standin,
    render_init_db,
    stop,
    wait_for_port,
)


@contextlib.contextmanager
def local_kafka(work: Path):
    home = kafka_distribution(work)
    port, cport = free_port(), free_port()
    props = work / "server.properties"
    props.write_text(KAFKA_PROPERTIES.format(port=port, cport=cport, logdir=work / "data"))
    (work / "log4j2.yaml").write_text(KAFKA_LOG4J.format(log=work / "kafka.log"))
    jvm = ["java", "-Xmx1g", f"-Dlog4j2.configurationFile={work / 'log4j2.yaml'}", "-cp", f"{home}/libs/*"]
    subprocess.run(
        [*jvm, "kafka.tools.StorageTool", "format", "-t", "chplatform-bench-cluster", "-c", str(props), "--standalone"],
        check=True,
        capture_output=True,
    )
    with (work / "stdout.log").open("w") as out:
        proc = subprocess.Popen([*jvm, "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, "Kafka", proc, work / "stdout.log")
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)


def produce(bootstrap: str, topic: str, n: int, fraction: float) -> float:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=50, batch_size=512 * 1024)
    t0 = time.monotonic()
    send_messages(p, topic, n, rate=0, malformed_fraction=fraction, rng=random.Random(1))  # noqa: S311  seeded test data, not cryptography
    p.flush(120)
    rate = n / (time.monotonic() - t0)
    p.close(10)
    return rate


def consumer(bootstrap: str, topic: str, group: str):
    from kafka import KafkaConsumer

    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        max_poll_records=50000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )


def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    c = consumer(bootstrap, topic, "bench-raw")
    got, t0 = 0, time.monotonic()
    while got < n:
        got += sum(len(b) for b in c.poll(timeout_ms=1000).values())
    rate = n / (time.monotonic() - t0)
    c.close()
    return rate


def ingest(bootstrap: str, topic: str, n: int, batch: int, work: Path) -> tuple[float, dict]:
    sql = render_init_db(work / "init_db", "single")
    conn = chdb_connect(work / "chdb")

    def rewrite(s: str) -> str:
        return "SELECT formatQuery(" + quote(s) + ")" if is_rbac(s) else kafka_standin(s)

    ex = ChdbExecutor(conn, rewrite=rewrite)
    ex.executed = _NoLog()
    # Only the Kafka path (001 databases, 002 sensor data): the rest needs PostgreSQL/MinIO.
    Runner(ex).apply([m for m in load_migrations(str(sql)) if m.name < "003"], "bench")
    c = consumer(bootstrap, topic, "bench-ingest")
    got, t0, pending = 0, time.monotonic(), []
    while got < n:
        for records in c.poll(timeout_ms=1000).values():
            pending.extend(records)
        while len(pending) >= batch or (pending and got + len(pending) >= n):
            chunk, pending = pending[:batch], pending[batch:]
            rows = "\n".join(
                json.dumps(
                    {
                        "message": m.value.decode("utf-8", "replace"),
                        "_topic": m.topic,
                        "_offset": m.offset,
                        "_partition": m.partition,
                        "_timestamp_ms": m.timestamp / 1000,
                        "_error": "",
                        "_raw_message": "",
                    }
                )
                for m in chunk
            )
            ex.execute(f"INSERT INTO streams.sensor_data_queue FORMAT JSONEachRow\n{rows}")
            got += len(chunk)
    elapsed = time.monotonic() - t0
    counts = {
        "raw": ex.scalar("SELECT count() FROM raw.sensor_data"),
        "parsed": ex.scalar("SELECT count() FROM parsed.sensor_data"),
        "errors": ex.scalar("SELECT count() FROM parsed.sensor_data_errors"),
    }
    c.close()
    conn.close()
    return n / elapsed, counts


class _NoLog(list):
    def append(self, _item) -> None:  # keep memory flat over a million rows
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=50_000, help="rows per INSERT (the Kafka engine's block size)")
    ap.add_argument("--malformed-fraction", type=float, default=0.05)
    ap.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    ap.add_argument("--topic", default=f"bench_sensor_data_{int(time.time())}")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="chplatform-bench-") as tmp:
        work = Path(tmp)
        ctx = contextlib.nullcontext(args.bootstrap_servers) if args.bootstrap_servers else local_kafka(work)
        with ctx as bootstrap:
            n = args.messages
            print(f"topic {args.topic}, {n:,} messages, {args.malformed_fraction:.0%} malformed", flush=True)
            p = produce(bootstrap, args.topic, n, args.malformed_fraction)
            print(f"producer send rate (kafka-python):            {p:>12,.0f} msg/s", flush=True)
            r = raw_consume(bootstrap, args.topic, n)
            print(f"raw consume rate (kafka-python, no work):     {r:>12,.0f} msg/s", flush=True)
            i, counts = ingest(bootstrap, args.topic, n, args.batch, work)
            print(f"Kafka -> raw -> parsed (consume + chdb views): {i:>12,.0f} msg/s", flush=True)
            print(f"rows: raw {counts['raw']:,}, parsed {counts['parsed']:,}, errors {counts['errors']:,}")
            if counts["raw"] != n or counts["parsed"] + counts["errors"] != n:
                print("MISMATCH: not every message reached raw and parsed/errors", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
