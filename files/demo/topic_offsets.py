"""Print the sum of a topic's end offsets (messages ever written) as JSON: {"topic", "end_offsets"}.

Run with the Kafka admin client's virtualenv (kafka-python): topic_offsets.py BOOTSTRAP TOPIC
[CAFILE CERTFILE KEYFILE] (TLS with the Kafka host's certificate, on the brokers' admin listener).
"""

from __future__ import annotations

import json
import sys

from kafka import KafkaConsumer, TopicPartition


def main() -> None:
    bootstrap, topic, *tls_files = sys.argv[1:]
    tls = (
        dict(zip(("ssl_cafile", "ssl_certfile", "ssl_keyfile"), tls_files, strict=True), security_protocol="SSL")
        if tls_files
        else {}
    )
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), request_timeout_ms=15000, **tls)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts]) if parts else {}
    finally:
        consumer.close()
    print(json.dumps({"topic": topic, "partitions": len(parts), "end_offsets": sum(ends.values())}))


if __name__ == "__main__":
    main()
