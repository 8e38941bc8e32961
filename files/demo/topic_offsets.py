"""Print the sum of a topic's end offsets (messages ever written) as JSON: {"topic", "end_offsets"}.

Run with the Kafka admin client's virtualenv (kafka-python): topic_offsets.py BOOTSTRAP TOPIC.
"""

from __future__ import annotations

import json
import sys

from kafka import KafkaConsumer, TopicPartition


def main() -> None:
    bootstrap, topic = sys.argv[1], sys.argv[2]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), request_timeout_ms=15000)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts]) if parts else {}
    finally:
        consumer.close()
    print(json.dumps({"topic": topic, "partitions": len(parts), "end_offsets": sum(ends.values())}))


if __name__ == "__main__":
    main()
