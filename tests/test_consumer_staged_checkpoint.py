"""A staged checkpoint is saved beside the batches that follow it; its offsets wait for the save.

The worker hands a sink that can stage its checkpoint (``ingest.consumer.StagedSink``) the save to a
thread of its own, so readings keep flowing while thousands of series are written. What must still
hold: no offset is committed before the state covering it is saved, a save that fails rewinds to
the last commit, and the warnings are those of an uninterrupted run. Real broker (Tansu), real
state database (PostgreSQL: the save runs on another thread than the batches), real scoring sink;
the sink is wrapped to stage its checkpoint and to hold or fail the save (named as such).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.sinks import DetectionSink
from app.services import build_services
from app.workers import build_ingest_worker
from bench.isolation import as_json, isolated_settings
from config.positions import Position
from demo.city import demo_readings, demo_scenario
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics, producer_config
from ingest.producer import ConfirmedProducer
from store.schemas import Point
from tests.factories import CATALOG
from tests.pipeline_harness import assert_warnings_match_scenario, committed_total, wait_until

END = datetime.now(UTC).replace(microsecond=0)


class GatedStagingSink:
    """Stages the real sink's checkpoint (capture now, save later); each save waits for ``gate`` and
    the ``fail_save``-th one raises as if the state database went away (fault injection)."""

    def __init__(self, inner: DetectionSink, *, fail_save: int = 0) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.saving = threading.Event()  # set while a save waits at the gate
        self.saves = 0
        self.fail_save = fail_save
        self.batches_while_saving = 0

    def process(self, points: Sequence[Point], positions: Sequence[Position], *, now: datetime) -> None:
        self.batches_while_saving += self.saving.is_set()
        self.inner.process(points, positions, now=now)

    def checkpoint(self, *, now: datetime) -> None:
        self.inner.checkpoint(now=now)

    def reset(self) -> None:
        self.inner.reset()

    def stage_checkpoint(self, *, now: datetime) -> Callable[[], None]:
        real_save = self.inner.stage_checkpoint(now=now)
        self.saves += 1
        failing = self.saves == self.fail_save

        def save() -> None:
            self.saving.set()
            try:
                self.gate.wait()
                if failing:
                    raise sa.exc.OperationalError(
                        "INSERT INTO detector_checkpoints ...", {}, ConnectionError("injected: went away")
                    )
                real_save()
            finally:
                self.saving.clear()

        return save


@pytest.mark.parametrize("fail_save", [0, 1], ids=["saves", "first-save-fails"])
def test_batches_flow_during_a_save_and_offsets_wait_for_it(
    broker: EmbeddedBroker, postgres_url: str, tmp_path: Path, fail_save: int
) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/s.sqlite3",
        database_url=postgres_url,
        batch_max_messages=200,
        checkpoint_interval_s=0.2,
    )
    ensure_topics(settings)
    good = demo_readings(end=END, catalog=CATALOG)
    producer = ConfirmedProducer(producer_config(settings))
    producer.send_all(settings.topic_readings, as_json(good))
    producer.close()

    def committed() -> int:
        return committed_total(
            broker.bootstrap, settings.consumer_group, settings.topic_readings, settings.topic_partitions
        )

    svc = build_services(settings)
    worker = build_ingest_worker(svc)
    assert isinstance(worker.sink, DetectionSink)
    sink = GatedStagingSink(worker.sink, fail_save=fail_save)
    worker.sink = sink
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(sink.saving.is_set, timeout_s=60, what="the first staged save to start")
        # The save is held: batches go on being handled, and nothing they or it cover is committed.
        wait_until(lambda: sink.batches_while_saving >= 3, timeout_s=60, what="batches during the save")
        assert committed() == 0
        assert worker.stats.checkpoints == 0
        sink.gate.set()
        wait_until(lambda: committed() >= len(good), timeout_s=120, what="every offset committed")
        assert worker.stats.rewinds == (1 if fail_save else 0)
        # A failed save's batches were scored again from the last checkpoint: no warning lost or doubled.
        assert_warnings_match_scenario(svc, demo_scenario(end=END, catalog=CATALOG))
    finally:
        sink.gate.set()
        stop.set()
        thread.join(30)
        svc.close()
    assert not thread.is_alive()
