"""How long a worker holds a batch open: ``batch_max_wait_s`` from the end of the last poll.

The wait lets an idle stream's readings share a batch. Counted from the start of each poll, it was
added after every batch, so at a steady 5,000 readings/s each reading waited for the whole handling
of the batch before it and then for the wait again. Real broker (Tansu), real state database and
scoring sink; the sink is wrapped to take its time over the first batch and to note when each batch
came (named as such).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from bench.isolation import as_json, isolated_settings
from config.positions import Position
from config.settings import Settings
from ingest import consumer
from ingest.broker import EmbeddedBroker
from ingest.consumer import BatchSink, IngestWorker
from ingest.kafka import ensure_topics, producer_config
from ingest.producer import ConfirmedProducer
from store.schemas import Point
from tests.factories import CATALOG
from tests.pipeline_harness import running_pipeline, wait_until

WINDOW_S = 2.0


class TimedSink:
    """The worker's own sink, noting when each batch came and went; the first is held ``first_s``."""

    def __init__(self, inner: BatchSink[Point], *, first_s: float, keep_alive_last: bool = False) -> None:
        self.inner, self.first_s = inner, first_s
        self.keep_alive_last = keep_alive_last  # the first batch ends with the worker's keep_alive poll
        self.batches: list[tuple[float, float, int]] = []  # (came, went, readings), time.monotonic()
        self.first_came = threading.Event()

    def process(self, points: Sequence[Point], positions: Sequence[Position], *, now: datetime) -> None:
        came = time.monotonic()
        if not self.batches:
            self.first_came.set()
            time.sleep(self.first_s)
        self.inner.process(points, positions, now=now)
        if self.keep_alive_last and len(self.batches) == 0:
            self.inner.keep_alive()  # type: ignore[attr-defined]
        self.batches.append((came, time.monotonic(), len(points)))

    def checkpoint(self, *, now: datetime) -> None:
        self.inner.checkpoint(now=now)

    def reset(self) -> None:
        self.inner.reset()


def readings(sensors: int, ts: datetime) -> list[tuple[bytes, bytes, None]]:
    stamp = ts.isoformat().replace("+00:00", "Z")
    out = []
    for s in CATALOG.sensors[:sensors]:
        kind = CATALOG.kinds[s.kind]
        value = (kind.valid_min + kind.valid_max) / 2
        out.append({"sensor_id": s.id, "kind": s.kind, "value": value, "ts": stamp})
    return as_json(out)


def produce(settings: Settings, messages: list[tuple[bytes, bytes, None]]) -> None:
    producer = ConfirmedProducer(producer_config(settings))
    producer.send_all(settings.topic_readings, messages)
    producer.close()


@contextmanager
def worker_with(
    settings: Settings, *, first_s: float, keep_alive_last: bool = False
) -> Iterator[tuple[IngestWorker[Any], TimedSink]]:
    def wrap(inner: BatchSink[Point]) -> TimedSink:
        return TimedSink(inner, first_s=first_s, keep_alive_last=keep_alive_last)

    with running_pipeline(settings, wrap_sink=wrap) as (_, worker):
        assert isinstance(worker.sink, TimedSink)
        yield worker, worker.sink


def settings_for(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/s.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        batch_max_messages=10_000,
        batch_max_wait_s=WINDOW_S,
        topic_partitions=1,
    )
    ensure_topics(settings)
    return settings


def two_batches(settings: Settings, *, first_s: float, keep_alive_last: bool = False) -> TimedSink:
    """Five readings, then five more while the first five are handled; the sink once both came and
    a window more has passed, time for a third batch should any reading come twice.

    The worker measures its lag once before the first reading and not again: that measurement's
    round trips to the broker, between two batches, would hide how soon the next poll returns.
    """
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with worker_with(settings, first_s=first_s, keep_alive_last=keep_alive_last) as (worker, sink):
        wait_until(lambda: worker.lag_measured_at is not None, timeout_s=60, what="the lag measured")
        worker.lag_interval_s = 3600.0
        produce(settings, readings(5, start))
        wait_until(sink.first_came.is_set, timeout_s=60, what="the first batch")
        produce(settings, readings(5, start + timedelta(minutes=1)))  # fetched while it is handled
        wait_until(lambda: len(sink.batches) >= 2, timeout_s=60, what="the second batch")
        time.sleep(WINDOW_S)
    return sink


def test_readings_that_came_during_a_long_batch_are_handed_over_without_a_second_wait(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    sink = two_batches(settings_for(broker, tmp_path), first_s=WINDOW_S + 1.0)
    (_, first_went, _), (second_came, _, second_readings) = sink.batches[:2]
    assert second_readings == 5
    # They have waited longer than the window while the first batch was handled: no new wait.
    # Counting the window from the poll's start made this gap the whole window (2 s).
    assert second_came - first_went < WINDOW_S / 2


def test_what_a_keep_alive_poll_reads_is_the_next_batch_at_once(
    broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that polls to stay in the group (``keep_alive``) loses nothing fetched meanwhile.

    Polling with the partitions paused threw away what librdkafka had fetched ahead: the next poll,
    a moment later, found nothing, and the readings waited out a whole window for a second fetch.
    Here the first batch's last act is that poll, the moment before the next one.
    """
    monkeypatch.setattr(consumer, "KEEP_ALIVE_EVERY_S", 0.0)
    sink = two_batches(settings_for(broker, tmp_path), first_s=2.0, keep_alive_last=True)
    (_, first_went, first_readings), (second_came, _, second_readings) = sink.batches[:2]
    assert (first_readings, second_readings) == (5, 5)
    assert sum(n for *_, n in sink.batches) == 10  # none handed twice
    assert second_came - first_went < WINDOW_S / 2


def test_a_trickle_is_gathered_into_batches_of_the_window(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Not a poll per reading: a worker with nothing behind it waits out the window to fill a batch."""
    settings = settings_for(broker, tmp_path)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    trickle = [m for s in range(1500) for m in readings(1, start + timedelta(seconds=s))]
    with worker_with(settings, first_s=0.0) as (worker, sink):
        wait_until(lambda: bool(worker.owned), timeout_s=60, what="the partition's assignment")
        producer = Producer(producer_config(settings, **{"linger.ms": 0}))
        began = time.monotonic()
        for key, value, _ in trickle:  # one every 2 ms or so, for about 3 s
            producer.produce(settings.topic_readings, value, key=key)
            producer.poll(0)
            time.sleep(0.002)
        assert producer.flush(30) == 0
        sent_for = time.monotonic() - began
        wait_until(lambda: sum(n for *_, n in sink.batches) >= len(trickle), timeout_s=60, what="the trickle")
    # Each batch but the last spans a whole window. Polling again at once after every batch made
    # more: 6 batches where this bound was 3.76, when tried.
    assert len(sink.batches) <= sent_for / WINDOW_S + 2
