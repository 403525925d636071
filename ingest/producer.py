"""Producing to Kafka with every delivery confirmed before the caller moves on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer


class DeliveryFailed(Exception):
    """At least one message was not acknowledged by the broker."""


class ConfirmedProducer:
    """Wraps a confluent-kafka producer: ``send_all`` returns only when the broker acked all."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(config)

    def send_all(
        self,
        topic: str,
        messages: Iterable[tuple[bytes | None, bytes, list[tuple[str, str | bytes | None]] | None]],
        *,
        timeout_s: float = 30.0,
    ) -> int:
        """Produce (key, value, headers) messages; raise ``DeliveryFailed`` unless all are acked."""
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        sent = 0
        for key, value, headers in messages:
            while True:
                try:
                    self._producer.produce(topic, value, key=key, headers=headers, on_delivery=on_delivery)
                    break
                except BufferError:
                    # The local queue is full: let librdkafka drain it, then try again.
                    self._producer.poll(0.05)
            sent += 1
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise DeliveryFailed(f"{remaining} message(s) to {topic} not delivered in {timeout_s}s")
        if errors:
            raise DeliveryFailed(f"{len(errors)} message(s) to {topic} failed: {errors[0]}")
        return sent

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued, then let librdkafka's threads go (they reconnect otherwise)."""
        self._producer.flush(timeout_s)
        del self._producer

    def ping(self, timeout_s: float = 2.0) -> bool:
        try:
            self._producer.list_topics(timeout=timeout_s)
            return True
        except Exception:
            return False
