"""Produce and consume throughput of confluent-kafka against kafka-python on the Tansu broker.

Run: ``python -m bench.kafka_clients [--messages N]`` (needs ``pip install kafka-python``,
the ``bench`` extra). Each client produces N ~200-byte JSON readings to its own topic
and then consumes them in its own group; consume time starts at the first message,
so the group join (slow on Tansu, see config.settings) is not counted.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from ingest.broker import EmbeddedBroker

READING = json.dumps(
    {
        "sensor_id": "wl-riverside-01",
        "kind": "water_level",
        "value": 2.3456,
        "unit": "m",
        "ts": "2026-11-29T08:00:00.000000Z",
        "lat": 30.5512,
        "lon": 114.3127,
        "area": "g-riverside-01",
        "quality": "good",
        "seq": 123456,
    }
).encode()


def _topic(bootstrap: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)]).values():
        f.result(15)
    return name


def confluent(bootstrap: str, n: int) -> tuple[float, float]:
    topic = _topic(bootstrap)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 3})
    t0 = time.perf_counter()
    for i in range(n):
        while True:
            try:
                producer.produce(topic, READING, key=str(i % 64).encode())
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    produce_s = time.perf_counter() - t0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": topic,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "max.poll.interval.ms": 10_000,
            "session.timeout.ms": 6_000,
            "log_level": 3,
        }
    )
    consumer.subscribe([topic])
    got, first = 0, None
    while got < n:
        batch = consumer.consume(10_000, 1.0)
        if batch and first is None:
            first = time.perf_counter()
        got += sum(1 for m in batch if m.error() is None)
    consume_s = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    return n / produce_s, n / consume_s


def kafka_python(bootstrap: str, n: int) -> tuple[float, float]:
    from kafka import KafkaConsumer, KafkaProducer

    topic = _topic(bootstrap)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    t0 = time.perf_counter()
    for i in range(n):
        producer.send(topic, READING, key=str(i % 64).encode())
    producer.flush(60)
    produce_s = time.perf_counter() - t0
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_interval_ms=10_000,
        session_timeout_ms=6_000,
    )
    got, first = 0, None
    while got < n:
        records = consumer.poll(timeout_ms=1000, max_records=10_000)
        count = sum(len(v) for v in records.values())
        if count and first is None:
            first = time.perf_counter()
        got += count
    consume_s = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    return n / produce_s, n / consume_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    print(f"{len(READING)}-byte messages, {args.messages} each way, one Tansu broker on loopback")
    with EmbeddedBroker() as broker:
        for name, run in (("confluent-kafka", confluent), ("kafka-python", kafka_python)):
            produced, consumed = run(broker.bootstrap, args.messages)
            print(f"{name:16s} produce {produced:10,.0f} msg/s   consume {consumed:10,.0f} msg/s")


if __name__ == "__main__":
    main()
