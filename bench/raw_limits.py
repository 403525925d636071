"""The two rates the pipeline cannot beat, measured on the servers it runs against.

- The broker's consume-and-decode rate: one bare confluent-kafka consumer
  that only ``json.loads`` each message of a topic, timed from its first
  message (the group join is not counted).
- The store's write rate: line protocol serialised beforehand, POSTed to
  ``/write`` in the chunks ``store.influx`` writes, one after the other over
  one connection, as an ingest worker writes; into a database of its own so
  it adds nothing to the pipeline's counts.

Either figure is an upper bound for a pipeline that does that step and more.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
from confluent_kafka import Consumer

from store.influx import WRITE_CHUNK
from store.line_protocol import to_lines
from store.schemas import Point


def consume_and_decode_rate(bootstrap: str, topic: str, expected: int, *, timeout_s: float = 300.0) -> float:
    """Messages per second one consumer reads and json-decodes, from its first message to ``expected``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-limit-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 16 * 1024 * 1024,
            # Tansu delays a group join by the poll interval; the join is not timed, but it is waited for.
            "max.poll.interval.ms": 10_000,
            "session.timeout.ms": 6_000,
            "log_level": 3,
        }
    )
    consumer.subscribe([topic])
    got, first = 0, None
    deadline = time.monotonic() + timeout_s
    try:
        while got < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consumer read {got} of {expected} messages in {timeout_s} s")
            for message in consumer.consume(10_000, 1.0):
                if message.error() is None:
                    if first is None:
                        first = time.perf_counter()
                    json.loads(message.value())  # type: ignore[arg-type]
                    got += 1
        assert first is not None
        return got / (time.perf_counter() - first)
    finally:
        consumer.close()


def store_write_rate(influx_url: str, points: list[Point]) -> float:
    """Points per second InfluxDB accepts as pre-serialised line protocol over one connection."""
    database = f"rawlimit{uuid.uuid4().hex[:8]}"
    bodies = [to_lines(points[i : i + WRITE_CHUNK]).encode() for i in range(0, len(points), WRITE_CHUNK)]
    with httpx.Client(base_url=influx_url, timeout=60.0) as http:
        http.post("/query", params={"q": f'CREATE DATABASE "{database}"'}).raise_for_status()
        params = {"db": database, "precision": "ns"}
        try:
            start = time.perf_counter()
            for body in bodies:
                resp = http.post("/write", params=params, content=body)
                if resp.status_code != 204:
                    raise RuntimeError(f"InfluxDB write answered {resp.status_code}: {resp.text[:300]}")
            elapsed = time.perf_counter() - start
        finally:
            http.post("/query", params={"q": f'DROP DATABASE "{database}"'})
    return len(points) / elapsed
