"""Background workers owned by the app's lifespan: the ingest loops, the model refresher, the silence
check, and the demo replay."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from confluent_kafka import Consumer

from alerts.delivery import DeliveryWorker, default_worker_id
from alerts.drill_store import DrillStore
from alerts.drills import DrillRunner, DrillScenario, DrillTools, ScenarioData, ScenarioRegistry
from alerts.sensor_faults import SensorFaultDesk
from alerts.sinks import DetectionSink, ReportSink
from app.collector import settle_for_batches
from app.metrics import IngestMetrics, count_delivery, count_restored, count_signals, counting_districts
from app.services import Services
from app.silence import SilenceWatch
from ingest.consumer import BatchSink, IngestWorker, Item
from ingest.kafka import consumer_config
from ingest.log_identity import topic_log_id
from ingest.validation import Invalid
from models.engine import ScoringEngine
from models.multivariate import KindModel
from models.report_burst import ReportBurstDetector
from models.training import ModelRefresher, latest_kind_models, train_kind_models
from store.schemas import Point, ReportRecord

log = logging.getLogger(__name__)


WorkerFailure = Callable[[str, BaseException], None]


class BackgroundThreads:
    """Threads that stop together when ``stop()`` is called, each finishing its step first.

    A worker that raises is not just logged: ``failures`` names it and says
    why (for /readyz), and ``on_failure`` lets the owner stop the process
    rather than keep serving without ingest.
    """

    def __init__(self, on_failure: WorkerFailure | None = None) -> None:
        self.stop_event = threading.Event()
        self.failures: dict[str, str] = {}
        self._on_failure = on_failure
        self._threads: list[threading.Thread] = []

    def start(self, name: str, target: Callable[[threading.Event], object]) -> None:
        def guarded() -> None:
            try:
                target(self.stop_event)
            except Exception as exc:
                log.exception("worker %s died", name)
                self.failures[name] = f"{type(exc).__name__}: {exc}"
                if self._on_failure is not None:
                    self._on_failure(name, exc)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def states(self) -> dict[str, str]:
        """Each worker's state: "running", "finished", or "dead: <error>"."""
        return {
            t.name: f"dead: {self.failures[t.name]}"
            if t.name in self.failures
            else ("running" if t.is_alive() else "finished")
            for t in self._threads
        }

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout_s)


def scoring_engine(svc: Services) -> ScoringEngine:
    """A scoring engine as the settings make it, with the archived per-kind models: the live one and
    each drill's, so a drill scores as the city's own readings are scored."""
    s = svc.settings
    engine = ScoringEngine(svc.live_catalog, detector=s.detector, signal_threshold=s.signal_threshold)
    engine.set_kind_models(latest_kind_models(svc.models))
    return engine


def burst_detector(svc: Services) -> ReportBurstDetector:
    """A report burst detector as the settings make it (live report ingest and drills)."""
    return ReportBurstDetector(svc.taxonomy, window_s=svc.settings.burst_window_s)


def build_ingest_worker(svc: Services) -> IngestWorker[Point]:
    s = svc.settings
    sink = DetectionSink(
        engine=scoring_engine(svc),
        warnings=svc.warnings,
        checkpoints=svc.checkpoints,
        log_id=lambda: topic_log_id(s.kafka_bootstrap, s.topic_readings),
        faults=fault_desk(svc),
        on_signals=count_signals,
        on_restored=count_restored,
    )
    worker = _worker(
        svc,
        stream="readings",
        topic=s.topic_readings,
        group=s.consumer_group,
        parse=svc.validator.parse,
        write=counting_districts(svc.store.write, svc.areas),
        sink=sink,
    )
    sink.keep_alive = worker.keep_alive  # restoring thousands of series can outlast max.poll.interval
    return worker


def build_report_worker(svc: Services) -> IngestWorker[ReportRecord]:
    s = svc.settings
    sink = ReportSink(
        detector_factory=partial(burst_detector, svc),
        warnings=svc.warnings,
        checkpoints=svc.checkpoints,
        on_signals=count_signals,
    )
    return _worker(
        svc,
        stream="reports",
        topic=s.topic_reports,
        group=f"{s.consumer_group}-reports",
        parse=svc.report_validator.parse,
        write=svc.reports.save,
        sink=sink,
    )


def _worker(
    svc: Services,
    *,
    stream: str,
    topic: str,
    group: str,
    parse: Callable[[bytes, datetime], Item | Invalid],
    write: Callable[[list[Item]], None],
    sink: BatchSink[Item],
) -> IngestWorker[Item]:
    s = svc.settings
    return IngestWorker(
        consumer=Consumer(consumer_config(s, **{"group.id": group})),
        topic=topic,
        deadletter_topic=s.topic_deadletter,
        parse=parse,
        write=write,
        sink=sink,
        deadletter=svc.producer,
        batch_max_messages=s.batch_max_messages,
        batch_max_wait_s=s.batch_max_wait_s,
        checkpoint_interval_s=s.checkpoint_interval_s,
        clock=lambda: datetime.now(UTC),
        observer=IngestMetrics(stream),
    )


def model_refresher(svc: Services, worker: IngestWorker[Point]) -> ModelRefresher:
    """Refits the per-kind models of this readings worker's engine, and swaps in fits archived elsewhere.

    A ``citywarn train`` in another process is scored with within ``CITYWARN_MODEL_POLL_S``.
    """
    assert isinstance(worker.sink, DetectionSink)
    return ModelRefresher(
        kinds=svc.catalog.kinds,
        history=svc.store,
        archive=svc.models,
        window=timedelta(seconds=svc.settings.training_history_s),
        interval_s=svc.settings.refit_interval_s,
        poll_s=svc.settings.model_poll_s,
        engine=worker.sink.engine,
        clock=lambda: datetime.now(UTC),
    )


def fault_desk(svc: Services) -> SensorFaultDesk:
    """Where sensor faults become warnings, one per sensor (``alerts.sensor_faults``)."""
    return SensorFaultDesk(svc.warnings.repository, catalog=svc.live_catalog, playbooks=svc.playbooks)


def silence_watch(svc: Services, worker: IngestWorker[Point]) -> SilenceWatch:
    """The silence check, judging only while this process's readings consumer is caught up.

    Caught up: no batch held in retries (the store down), and its lag, measured
    lately, within one batch. Otherwise readings may be waiting in the log, and
    their sensors are not silent. It listens from now, the process's start: the
    time it was down is not the sensors' silence.
    """
    s = svc.settings
    return SilenceWatch(
        catalog=svc.live_catalog,
        checkpoints=svc.checkpoints,
        faults=fault_desk(svc),
        clock=lambda: datetime.now(UTC),
        slack_s=s.checkpoint_interval_s,
        caught_up=lambda: worker.caught_up(within=s.batch_max_messages),
        listening_since=datetime.now(UTC),
    )


def every(seconds: float, step: Callable[[], object], what: str) -> Callable[[threading.Event], None]:
    """A worker that runs ``step`` every ``seconds`` of wall time until stopped. A failed round is
    logged and the next one tried: these sweeps read their rows afresh, so a missed round only
    delays what it would have done."""

    def run(stop: threading.Event) -> None:
        while not stop.wait(seconds):
            try:
                step()
            except Exception:
                log.exception("%s failed; retrying in %s s", what, seconds)

    return run


def mute_sweep(svc: Services) -> Callable[[threading.Event], None]:
    """Mute the open warnings a silence in force matches and unmute those whose silence has ended or
    whose inhibiting warning has closed (``alerts.mutes``); the "unmuted" event notifies them."""
    return every(
        svc.settings.mute_sweep_s, lambda: svc.mutes.sweep(svc.warnings, now=datetime.now(UTC)), "mute sweep"
    )


ESCALATION_SWEEP_S = 5.0  # the shortest ack_within is minutes: a few seconds late is no one's loss


def escalation_sweep(svc: Services) -> Callable[[threading.Event], None]:
    """Hand unacknowledged active warnings up their escalation chain (``WarningService.hand_up``), and
    say on warnings left unchanged for long that their clock may have stopped (``note_stale``)."""

    def step() -> None:
        svc.warnings.hand_up(now=datetime.now(UTC))
        svc.warnings.note_stale(now=datetime.now(UTC))

    return every(ESCALATION_SWEEP_S, step, "escalation sweep")


def delivery_worker(svc: Services) -> Callable[[threading.Event], None]:
    """The webhook delivery worker (``alerts.delivery``) over this process's state database."""
    worker = DeliveryWorker(
        svc.engine,
        svc.settings,
        worker_id=default_worker_id(),
        clock=lambda: datetime.now(UTC),
        on_outcome=count_delivery,
    )
    return worker.run


def start_ingest(threads: BackgroundThreads, svc: Services) -> dict[str, IngestWorker[Any]]:
    """Start the readings and reports consumers, the model refresher and the silence check; returns the
    consumers by name."""
    readings, reports = build_ingest_worker(svc), build_report_worker(svc)
    # What is built by now (modules, the catalog, the models, the engines) lives as long as the process:
    # frozen, no full collection walks it again. In bench.pipeline's latency phase each worker's full
    # collections took 180 to 350 ms every 8 to 10 s, and every reading in hand waited them out.
    # Young collections are spaced for batches (``app.collector``).
    settle_for_batches()
    threads.start("ingest", readings.run)
    threads.start("report-ingest", reports.run)
    threads.start("model-refit", model_refresher(svc, readings).run)
    threads.start("sensor-silence", silence_watch(svc, readings).run)
    threads.start("escalation-chain", escalation_sweep(svc))
    threads.start("mute-sweep", mute_sweep(svc))
    return {"readings": readings, "reports": reports}


def train_now(svc: Services, *, now: datetime) -> dict[str, KindModel]:
    """Fit the per-kind models from the store's history and archive them (``citywarn train``)."""
    window = timedelta(seconds=svc.settings.training_history_s)
    return train_kind_models(svc.catalog.kinds, history=svc.store, archive=svc.models, window=window, now=now)


def drill_scenarios(svc: Services) -> ScenarioRegistry:
    """The scenarios a drill can replay (``DRILL_SCENARIOS``), built over these services."""
    return ScenarioRegistry(
        [
            DrillScenario(name, description, partial(build, svc))
            for name, (description, build) in DRILL_SCENARIOS.items()
        ]
    )


def demo_day(svc: Services, end: datetime) -> ScenarioData:
    """The demo day's readings and reports, as ingest's validation accepts them (the rest is dropped)."""
    from demo.city import demo_readings, demo_reports

    readings = [
        svc.validator.parse(json.dumps(m).encode(), end) for m in demo_readings(end=end, catalog=svc.catalog)
    ]
    reports = [
        svc.report_validator.parse(json.dumps(m).encode(), end)
        for m in demo_reports(end=end, areas=svc.areas)
    ]
    return ScenarioData(
        readings=[p for p in readings if isinstance(p, Point)],
        reports=[r for r in reports if isinstance(r, ReportRecord)],
    )


def build_drill_runner(svc: Services) -> DrillRunner:
    """Drills with detectors of their own: a scoring engine built as the live one is (with the archived
    per-kind models), and a report burst detector, fresh for each drill and never checkpointed."""

    def tools() -> DrillTools:
        return DrillTools(scorer=scoring_engine(svc), bursts=burst_detector(svc))

    return DrillRunner(
        store=DrillStore(svc.engine), scenarios=drill_scenarios(svc), warnings=svc.warnings, tools=tools
    )


# Name -> (what it is, its readings and reports given the services and the drill's start). A new
# scenario is one more entry; the API declares the names (app.api.drills).
DRILL_SCENARIOS: dict[str, tuple[str, Callable[[Services, datetime], ScenarioData]]] = {
    "demo-day": (
        "The demo city's day ending now: an afternoon storm, rivers and an underpass past their lines "
        "in Riverside, a gas leak in Hongqi (demo.city)",
        demo_day,
    ),
}
