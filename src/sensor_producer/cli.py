"""sensor-producer: send demo sensor readings to Kafka."""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import threading
import time

from sensor_producer.producer import Stats, send_messages

# The SASL password never goes on the command line (other users see it there).
PASSWORD_ENV = "KAFKA_SASL_PASSWORD"  # noqa: S105  the name of a variable, not a password


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="sensor-producer",
        description="Send JSON sensor readings {sensor_id, temperature, humidity, timestamp} to a Kafka topic.",
    )
    p.add_argument("--bootstrap-servers", default="localhost:29092", help="host:port[,host:port] (default %(default)s)")
    p.add_argument("--topic", default="sensor_data", help="topic (default %(default)s)")
    p.add_argument("--rate", type=float, default=1000, help="messages per second, 0 = as fast as possible")
    amount = p.add_mutually_exclusive_group(required=True)
    amount.add_argument("--count", type=int, help="number of messages to send")
    amount.add_argument("--forever", action="store_true", help="send until interrupted (Ctrl-C)")
    p.add_argument("--malformed-fraction", type=float, default=0.0, help="share of malformed messages, 0..1")
    p.add_argument("--sensors", type=int, default=100, help="number of distinct sensor ids (default %(default)s)")
    p.add_argument("--seed", type=int, help="random seed, for reproducible message contents")
    p.add_argument("--connect-timeout", type=float, default=5.0, help="seconds to wait for a broker")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--acks", default="all", choices=["all", "1", "0"], help="acknowledgements awaited (default all)")
    sec = p.add_argument_group("security", "TLS and SASL (the password from the environment, KAFKA_SASL_PASSWORD)")
    sec.add_argument("--security-protocol", default="PLAINTEXT", choices=["PLAINTEXT", "SSL", "SASL_SSL"])
    sec.add_argument("--sasl-mechanism", default="SCRAM-SHA-512", help="default %(default)s")
    sec.add_argument("--sasl-username", help="the producer's Kafka user (SASL_SSL)")
    sec.add_argument("--ssl-cafile", help="CA certificate the brokers are verified against (SSL, SASL_SSL)")
    args = p.parse_args(argv)
    if args.security_protocol == "SASL_SSL" and not (args.sasl_username and os.environ.get(PASSWORD_ENV)):
        p.error(f"--security-protocol SASL_SSL needs --sasl-username and the password in {PASSWORD_ENV}")
    if args.security_protocol != "PLAINTEXT" and not args.ssl_cafile:
        p.error(f"--security-protocol {args.security_protocol} needs --ssl-cafile (the brokers' CA)")
    if args.count is not None and args.count < 0:
        p.error("--count must be >= 0")
    if not 0 <= args.malformed_fraction <= 1:
        p.error("--malformed-fraction must be between 0 and 1")
    if args.rate < 0:
        p.error("--rate must be >= 0")
    return args


def bootstrap_timeout(timeout: float) -> dict:
    """The client option that bounds the wait for a first broker (renamed in kafka-python 3)."""
    from kafka import KafkaProducer

    key = (
        "bootstrap_timeout_ms"
        if "bootstrap_timeout_ms" in KafkaProducer.DEFAULT_CONFIG
        else "api_version_auto_timeout_ms"
    )
    return {key: int(timeout * 1000)}


def unreachable_errors() -> tuple[type[Exception], ...]:
    """What the client raises when no broker answers: NoBrokersAvailable (kafka-python 2),
    KafkaTimeoutError "Unable to bootstrap" (kafka-python 3)."""
    from kafka import errors

    return tuple(e for e in (getattr(errors, "NoBrokersAvailable", None), errors.KafkaTimeoutError) if e)


def security_config(args: argparse.Namespace) -> dict:
    """kafka-python's TLS/SASL settings from the options (brokers verified against the CA and by name)."""
    config: dict = {"security_protocol": args.security_protocol}
    if args.security_protocol != "PLAINTEXT":
        config.update(ssl_cafile=args.ssl_cafile, ssl_check_hostname=True)
    if args.security_protocol == "SASL_SSL":
        config.update(
            sasl_mechanism=args.sasl_mechanism,
            sasl_plain_username=args.sasl_username,
            sasl_plain_password=os.environ[PASSWORD_ENV],
        )
    return config


def make_producer(bootstrap: str, timeout: float, acks: str = "all", security: dict | None = None):
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks=acks if acks == "all" else int(acks),
        **(security or {}),
        linger_ms=20,
        batch_size=256 * 1024,
        request_timeout_ms=30000,
        **bootstrap_timeout(timeout),
        **delivery_config(acks),
        client_id="sensor-producer",
    )


def delivery_config(acks: str) -> dict:
    """With acks=all, a message is retried until it is acknowledged or two minutes have passed (a
    broker's rolling restart or a leader change in between), without duplicates: the idempotent
    producer (kafka-python 2.1 and later; older ones retry five times and may duplicate)."""
    from kafka import KafkaProducer

    if acks == "all" and "delivery_timeout_ms" in KafkaProducer.DEFAULT_CONFIG:
        return {"enable_idempotence": True, "delivery_timeout_ms": 120_000}
    return {"retries": 5}


class Interrupts:
    """Ctrl-C and SIGTERM, handled without KeyboardInterrupt: kafka-python's network loop can swallow
    that exception, which would leave the producer running after a Ctrl-C.

    Before the producer exists nothing has been sent, so the process exits at once. Afterwards the first
    signal asks the sending loop to stop (what was sent is then flushed); a second one exits at once."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.connected = False

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.handle)

    def handle(self, _signum, _frame) -> None:
        if not self.connected:
            self.exit("interrupted before a broker answered; nothing was sent")
        if self.stop.is_set():
            self.exit("interrupted again: exiting without waiting for buffered messages")
        self.stop.set()

    @staticmethod
    def exit(message: str) -> None:
        print(f"\nsensor-producer: {message}", file=sys.stderr, flush=True)
        os._exit(130)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # kafka-python logs every failed connection attempt; the one-line message below is enough.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    from kafka.errors import KafkaError

    interrupts = Interrupts()
    interrupts.install()
    try:
        producer = make_producer(args.bootstrap_servers, args.connect_timeout, args.acks, security_config(args))
    except unreachable_errors():
        print(
            f"sensor-producer: no Kafka broker answered at {args.bootstrap_servers} "
            f"within {args.connect_timeout:g} s (check --bootstrap-servers and that Kafka is running)",
            file=sys.stderr,
        )
        return 2
    interrupts.connected = True

    tty = sys.stderr.isatty()

    def progress(s: Stats) -> None:
        total = f"/{args.count}" if args.count is not None else ""
        line = f"sent {s.sent}{total} ({s.malformed} malformed), {s.rate:,.0f} msg/s"
        print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    stats = Stats()
    try:
        send_messages(
            producer,
            args.topic,
            None if args.forever else args.count,
            rate=args.rate,
            malformed_fraction=args.malformed_fraction,
            rng=random.Random(args.seed),  # noqa: S311  demo data, not cryptography
            sensors=args.sensors,
            on_progress=None if args.quiet else progress,
            stats=stats,
            stop=interrupts.stop.is_set,
        )
    except KafkaError as exc:
        print(f"\nsensor-producer: Kafka error after {stats.sent} messages: {exc}", file=sys.stderr)
        producer.close(timeout=5)
        return 1
    try:
        producer.flush(timeout=30)
    except KafkaError as exc:
        print(f"\nsensor-producer: could not deliver buffered messages: {exc}", file=sys.stderr)
        return 1
    finally:
        producer.close(timeout=5)
    stats.finished = stats.finished or time.monotonic()
    if tty and not args.quiet:
        print(file=sys.stderr)
    print(("interrupted: " if interrupts.stop.is_set() else "") + stats.summary())
    if stats.failed or stats.acknowledged + stats.failed < stats.sent:
        print(
            f"sensor-producer: {stats.sent - stats.acknowledged} of {stats.sent} messages were not acknowledged",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
