"""Background workers owned by the app's lifespan: the ingest loop and the demo replay."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from app.pipeline import DetectionSink
from app.services import Services
from ingest.consumer import IngestWorker
from ingest.kafka import consumer_config
from models.engine import ScoringEngine
from store.schemas import Point

log = logging.getLogger(__name__)


class BackgroundThreads:
    """Threads that stop together when ``stop()`` is called, each finishing its step first."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, name: str, target: Callable[[threading.Event], object]) -> None:
        def guarded() -> None:
            try:
                target(self.stop_event)
            except Exception:
                log.exception("worker %s stopped with an error", name)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout_s)


def build_ingest_worker(svc: Services) -> IngestWorker[Point]:
    s = svc.settings
    engine = ScoringEngine(svc.catalog, detector=s.detector, signal_threshold=s.signal_threshold)
    sink = DetectionSink(engine=engine, warnings=svc.warnings, checkpoints=svc.checkpoints)
    return IngestWorker(
        consumer_config=consumer_config(s),
        topic=s.topic_readings,
        deadletter_topic=s.topic_deadletter,
        parse=svc.validator.parse,
        write=svc.store.write,
        sink=sink,
        deadletter=svc.producer,
        batch_max_messages=s.batch_max_messages,
        batch_max_wait_s=s.batch_max_wait_s,
        checkpoint_interval_s=s.checkpoint_interval_s,
        clock=lambda: datetime.now(UTC),
    )
