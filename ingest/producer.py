"""Producing to Kafka with every delivery confirmed before the caller moves on."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer


class DeliveryFailed(Exception):
    """At least one message was not acknowledged by the broker."""


UNASSIGNED = -1  # librdkafka's RD_KAFKA_PARTITION_UA: its own partitioner decides

# (key, number of partitions) -> the partition, or None for the client's own hash of the key.
Partitioner = Callable[[bytes | None, int], int | None]


class ConfirmedProducer:
    """Wraps a confluent-kafka producer: ``send_all`` returns only when the broker acked all.

    With a ``partitioner`` (``ingest.keys.AreaPartitioner``) it picks each message's
    partition itself; confluent-kafka's Python client takes no partitioner callback.
    """

    def __init__(self, config: dict[str, Any], *, partitioner: Partitioner | None = None) -> None:
        self._producer = Producer(config)
        self._partitioner = partitioner
        self._partitions: dict[str, int] = {}

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
        place = self._placement(topic, timeout_s)
        for key, value, headers in messages:
            partition = place(key) if place is not None else None
            while True:
                try:
                    self._producer.produce(
                        topic,
                        value,
                        key=key,
                        headers=headers,
                        on_delivery=on_delivery,
                        partition=UNASSIGNED if partition is None else partition,
                    )
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

    def _placement(self, topic: str, timeout_s: float) -> Callable[[bytes | None], int | None] | None:
        """The partitioner bound to the topic's partition count (asked of the broker once per topic).

        A broker that cannot say is a delivery failure, as an unacknowledged message
        is: placing by the client's hash instead would split an area over two partitions.
        """
        partitioner = self._partitioner
        if partitioner is None:
            return None
        count = self._partitions.get(topic)
        if count is None:
            try:
                found = self._producer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            except KafkaException as exc:
                raise DeliveryFailed(f"no partition count for {topic}: {exc}") from exc
            if found is None or found.error is not None or not found.partitions:
                return None  # not created yet: the broker's default placement, by key hash
            count = self._partitions[topic] = len(found.partitions)
        return lambda key: partitioner(key, count)

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
