"""The messages: {sensor_id:int, temperature:float, humidity:float, timestamp:unix seconds}."""

from __future__ import annotations

import json
import random
import time

# Kinds of malformed message, each one a way real producers break: the pipeline must keep
# them (parsed.sensor_data_errors) and go on.
MALFORMED_KINDS = ("not_json", "truncated", "missing_field", "wrong_type", "empty")


def valid_message(rng: random.Random, sensors: int = 100, now: float | None = None) -> dict:
    return {
        "sensor_id": rng.randrange(1, sensors + 1),
        "temperature": round(rng.gauss(21.0, 4.0), 2),
        "humidity": round(min(100.0, max(0.0, rng.gauss(45.0, 12.0))), 2),
        "timestamp": int(time.time() if now is None else now),
    }


def malformed_message(rng: random.Random, sensors: int = 100, now: float | None = None) -> bytes:
    kind = rng.choice(MALFORMED_KINDS)
    good = valid_message(rng, sensors, now)
    if kind == "not_json":
        return b"sensor says hello"
    if kind == "truncated":
        return json.dumps(good).encode()[: rng.randrange(5, 25)]
    if kind == "missing_field":
        good.pop(rng.choice(list(good)))
        return json.dumps(good).encode()
    if kind == "wrong_type":
        good["temperature"] = "hot"
        return json.dumps(good).encode()
    return b""


def make_message(rng: random.Random, malformed_fraction: float, sensors: int = 100) -> tuple[bytes, bool]:
    """One encoded message and whether it is malformed."""
    if malformed_fraction > 0 and rng.random() < malformed_fraction:
        return malformed_message(rng, sensors), True
    return json.dumps(valid_message(rng, sensors), separators=(",", ":")).encode(), False
