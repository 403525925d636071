"""When the store or the scoring sink fails, ingest waits and retries: nothing is dropped.

The failures are injected by wrapping the real embedded store and the real
sink (fault-injection wrappers, named as such); Kafka is the real broker.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from app.services import build_services
from app.workers import build_ingest_worker
from bench.isolation import as_json, isolated_settings
from demo.city import demo_readings, demo_scenario
from ingest.broker import EmbeddedBroker
from ingest.consumer import BatchSink
from ingest.kafka import ensure_topics, producer_config
from ingest.producer import ConfirmedProducer
from store.port import StoreUnavailable, TimeSeriesStore
from store.schemas import Point
from tests.factories import CATALOG
from tests.pipeline_harness import assert_warnings_match_scenario, committed_total, wait_until

END = datetime.now(UTC).replace(microsecond=0)


class FailingStoreWrapper:
    """Fault injection: the first ``failures`` writes raise as if InfluxDB were down."""

    def __init__(self, inner: TimeSeriesStore, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def write(self, points: Sequence[Point]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("injected: connection refused")
        self.inner.write(points)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class FailingSinkWrapper:
    """Fault injection: the ``fail_at``-th batch loses its database after the detectors learned from it."""

    def __init__(self, inner: BatchSink, fail_at: int) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.calls = 0

    def process(self, points: list[Point], positions: list[tuple[int, int]], *, now: datetime) -> None:
        self.calls += 1
        self.inner.process(points, positions, now=now)
        if self.calls == self.fail_at:
            raise sa.exc.OperationalError(
                "UPDATE warnings ...", {}, ConnectionError("injected: state database went away")
            )

    def checkpoint(self, *, now: datetime) -> None:
        self.inner.checkpoint(now=now)

    def reset(self) -> None:
        self.inner.reset()


def test_store_outage_and_sink_failure_lose_nothing(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/s.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        batch_max_messages=1000,
        checkpoint_interval_s=0.5,
    )
    ensure_topics(settings)
    good = demo_readings(end=END, catalog=CATALOG)
    producer = ConfirmedProducer(producer_config(settings))
    producer.send_all(settings.topic_readings, as_json(good))
    producer.close()

    svc = build_services(settings)
    real_store = svc.store
    svc.store = FailingStoreWrapper(real_store, failures=3)  # type: ignore[assignment]
    worker = build_ingest_worker(svc)
    worker.sink = FailingSinkWrapper(worker.sink, fail_at=4)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        # Replayed batches count twice in the worker's stats, so wait for the commits instead.
        wait_until(
            lambda: (
                committed_total(
                    broker.bootstrap,
                    settings.consumer_group,
                    settings.topic_readings,
                    settings.topic_partitions,
                )
                >= len(good)
            ),
            timeout_s=120,
            what="the whole stream to be committed despite the failures",
        )
        assert worker.stats.retries >= 3
        assert worker.stats.rewinds == 1
        assert real_store.count() == len(good)
        # The rewound batches were scored again from the last checkpoint: the warnings
        # are exactly those of the uninterrupted run, with no duplicates.
        assert_warnings_match_scenario(svc, demo_scenario(end=END, catalog=CATALOG))
    finally:
        stop.set()
        thread.join(30)
        svc.close()
