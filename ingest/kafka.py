"""Kafka client settings and topic set-up, in one place for the consumer and producers."""

from __future__ import annotations

from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from config.settings import Settings


def consumer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Offsets are ours to commit, after the store said yes (DESIGN: delivery guarantee)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": settings.consumer_group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "max.poll.interval.ms": settings.kafka_max_poll_interval_ms,
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": max(500, settings.kafka_session_timeout_ms // 4),
        "fetch.max.bytes": 16 * 1024 * 1024,
        # The broker answers a fetch with what it has after 50 ms instead of librdkafka's 500:
        # a quiet partition must not hold a warning's reading back (settings: batch_max_wait_s).
        "fetch.wait.max.ms": 50,
        "log_level": 3,
        **overrides,
    }


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "linger.ms": 5,
        "acks": "all",
        "enable.idempotence": False,
        "compression.type": "lz4",
        "log_level": 3,
        **overrides,
    }


def ensure_topics(settings: Settings, *, timeout_s: float = 15.0) -> None:
    """Create citywarn's topics if they are missing; existing ones are left as they are."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 3})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = {
        settings.topic_readings: settings.topic_partitions,
        settings.topic_reports: settings.topic_partitions,
        settings.topic_deadletter: 1,
    }
    new = [
        NewTopic(t, num_partitions=n, replication_factor=settings.topic_replication)
        for t, n in wanted.items()
        if t not in existing
    ]
    for topic, future in admin.create_topics(new, request_timeout=timeout_s).items() if new else []:
        try:
            future.result(timeout_s)
        except Exception as exc:  # another process may have created it in between
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"could not create topic {topic}: {exc}") from exc
