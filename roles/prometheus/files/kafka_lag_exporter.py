#!/usr/bin/python3
"""Consumer-group lag of Kafka, for Prometheus.

For each watched (consumer group, topic), at every scrape: the group's committed offset and the
partition's high watermark, read through Kafka's protocol (librdkafka, Debian's
python3-confluent-kafka). The exporter only reads: it never subscribes, so it never joins the
group and never moves its offsets. A partition the group has not committed on counts from the
oldest retained message (everything there is still to be read).

Series: kafka_consumergroup_lag{consumergroup,topic,partition}, kafka_consumergroup_lag_sum
{consumergroup,topic}, kafka_consumergroup_current_offset{...}, kafka_topic_partition_current_offset
{topic,partition}, and kafka_lag_exporter_up (0 when Kafka did not answer the last scrape).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily

LOG = logging.getLogger("kafka-lag-exporter")


def read_properties(path: str | None) -> dict[str, str]:
    """librdkafka settings (key=value lines, # comments): how to connect (TLS, SASL user and password)."""
    if not path:
        return {}
    settings = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, sep, value = line.partition("=")
                if not sep:
                    raise SystemExit(f"{path}: {line!r} is not key=value")
                settings[key.strip()] = value.strip()
    return settings


def read_lag(
    bootstrap: str, group: str, topic: str, timeout: float, settings: dict[str, str] | None = None
) -> dict[int, tuple[int, int, int]]:
    """{partition: (committed offset or -1, high watermark, lag)} of one group on one topic."""
    consumer = Consumer(
        {
            **(settings or {}),
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "socket.timeout.ms": int(timeout * 1000),
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        result = {}
        for tp in consumer.committed(partitions, timeout=timeout):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout)
            position = tp.offset if tp.offset >= 0 else low
            result[tp.partition] = (tp.offset, high, max(high - position, 0))
        return result
    finally:
        consumer.close()


class LagCollector:
    def __init__(
        self, bootstrap: str, watches: list[tuple[str, str]], timeout: float, settings: dict[str, str] | None = None
    ) -> None:
        self.bootstrap, self.watches, self.timeout, self.settings = bootstrap, watches, timeout, settings
        self.lock = threading.Lock()

    def collect(self):
        labels = ["consumergroup", "topic", "partition"]
        lag = GaugeMetricFamily(
            "kafka_consumergroup_lag", "Messages of the partition the group has not read", labels=labels
        )
        lag_sum = GaugeMetricFamily(
            "kafka_consumergroup_lag_sum", "Messages of the topic the group has not read", labels=labels[:2]
        )
        committed = GaugeMetricFamily(
            "kafka_consumergroup_current_offset", "The group's committed offset (-1: none)", labels=labels
        )
        high = GaugeMetricFamily(
            "kafka_topic_partition_current_offset", "The partition's high watermark", labels=["topic", "partition"]
        )
        up = 1
        with self.lock:  # one scrape at a time: each opens its own connections
            for group, topic in self.watches:
                try:
                    partitions = read_lag(self.bootstrap, group, topic, self.timeout, self.settings)
                except KafkaException as exc:
                    LOG.warning("group %s, topic %s: %s", group, topic, exc)
                    up = 0
                    continue
                for partition, (offset, watermark, behind) in partitions.items():
                    lag.add_metric([group, topic, str(partition)], behind)
                    committed.add_metric([group, topic, str(partition)], offset)
                    high.add_metric([topic, str(partition)], watermark)
                lag_sum.add_metric([group, topic], sum(v[2] for v in partitions.values()))
        yield from (lag, lag_sum, committed, high)
        yield GaugeMetricFamily("kafka_lag_exporter_up", "1 when Kafka answered for every watch", value=up)


def watch(text: str) -> tuple[str, str]:
    group, sep, topic = text.partition(":")
    if not (group and sep and topic):
        raise argparse.ArgumentTypeError(f"{text!r}: write GROUP:TOPIC")
    return group, topic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", required=True, help="host:port[,host:port...]")
    parser.add_argument("--watch", type=watch, action="append", required=True, help="GROUP:TOPIC (repeatable)")
    parser.add_argument("--listen-address", default="")
    parser.add_argument("--port", type=int, default=9308)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per Kafka request")
    parser.add_argument("--client-config", help="librdkafka settings file (key=value): TLS and the SASL user")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    REGISTRY.register(
        LagCollector(args.bootstrap_servers, args.watch, args.timeout, read_properties(args.client_config))
    )
    start_http_server(args.port, addr=args.listen_address or "0.0.0.0")  # noqa: S104  "" means every address
    LOG.info("serving on %s:%s, watching %s", args.listen_address or "*", args.port, args.watch)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
