"""Sending loop: rate limiting, progress, clean stop."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sensor_producer.messages import make_message


@dataclass
class Stats:
    sent: int = 0
    malformed: int = 0
    # Delivery reports (acks): counted by the producer's I/O thread, hence the lock.
    acknowledged: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def ack(self, _metadata=None) -> None:
        with self._lock:
            self.acknowledged += 1

    def fail(self, _exc=None) -> None:
        with self._lock:
            self.failed += 1

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        return (
            f"sent {self.sent} messages ({self.malformed} malformed) in {self.elapsed:.1f} s, {self.rate:,.0f} msg/s; "
            f"acknowledged {self.acknowledged}, failed {self.failed}"
        )


def send_messages(
    producer,
    topic: str,
    count: int | None,
    rate: float = 0,
    malformed_fraction: float = 0.0,
    rng: random.Random | None = None,
    sensors: int = 100,
    on_progress: Callable[[Stats], None] | None = None,
    progress_every: float = 1.0,
    stats: Stats | None = None,
    stop: Callable[[], bool] | None = None,
) -> Stats:
    """Send ``count`` messages (None: until interrupted) at ``rate`` msg/s (0: as fast as possible).

    ``producer`` is a kafka-python KafkaProducer (anything with ``send(topic, value)`` returning a
    future with ``add_callback``/``add_errback``: the broker's acknowledgements and failures are
    counted in ``stats``). The caller flushes and closes it; ``stats`` may be passed in so that the
    caller still has the numbers after an interruption; ``stop`` is asked before each message (the CLI's Ctrl-C).
    """
    rng = rng or random.Random()  # noqa: S311  demo data, not cryptography
    stats = stats or Stats()
    next_progress = time.monotonic() + progress_every
    while (count is None or stats.sent < count) and not (stop is not None and stop()):
        value, bad = make_message(rng, malformed_fraction, sensors)
        future = producer.send(topic, value=value)
        future.add_callback(stats.ack)
        future.add_errback(stats.fail)
        stats.sent += 1
        stats.malformed += bad
        now = time.monotonic()
        if rate > 0:
            ahead = stats.sent / rate - (now - stats.started)
            if ahead > 0:
                time.sleep(ahead)
        if on_progress is not None and now >= next_progress:
            on_progress(stats)
            next_progress = now + progress_every
    stats.finished = time.monotonic()
    return stats
