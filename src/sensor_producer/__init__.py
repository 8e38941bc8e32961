"""Kafka producer of demo sensor readings for the ClickHouse platform (topic sensor_data)."""

from sensor_producer.messages import make_message, malformed_message, valid_message
from sensor_producer.producer import Stats, send_messages

__all__ = ["Stats", "make_message", "malformed_message", "send_messages", "valid_message"]
__version__ = "1.0.0"
