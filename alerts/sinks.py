"""The sinks the ingest loops hand each stored batch to: score, warn, checkpoint.

Each sink keeps its scoring state in memory between checkpoints; the ingest
worker calls ``checkpoint`` right before it commits the offsets that state
covers, and ``reset`` when that state can no longer be trusted (a failed
batch, a rebalance), so the next batch reloads it from the last checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from alerts.checkpoints import CheckpointRepository
from alerts.sensor_faults import SensorFaultDesk
from alerts.service import WarningService
from config.positions import Position
from config.timeutil import from_ns
from models.signals import Signal
from store.schemas import Point, ReportRecord

if TYPE_CHECKING:
    from models.engine import ScoringEngine
    from models.report_burst import BurstSignal, ReportBurstDetector

logger = logging.getLogger(__name__)  # not ``log``: that names a Kafka log here

SignalsSeen = Callable[[Sequence[Signal]], None]
# Told after each chunk of restores: the series whose checkpoints were loaded, and the seconds it took.
Restored = Callable[[int, float], None]

# How often the readings' clock moves open warnings on (``WarningService.advance``), at most. Each
# move is a transaction that reads and rewrites every open warning of the areas; after every batch
# it was 14 to 18 % of a worker's CPU at 5,000 readings/s (py-spy), ten batches a second. Moving
# once for many batches ends where moving after each would: the walk is in event time, and new
# signals first walk the warning they join up to themselves (``WarningService._apply_incident``).
# A hold or release then shows up to this much later in wall time; every checkpoint moves first.
ADVANCE_EVERY_S = 1.0
# Series restored between two ``keep_alive`` calls: about half a second at the 420 to 660 µs a restore
# takes (bench.restore, series 350 and 5,000 readings old), so a batch that brings a worker thousands
# of series it does not hold keeps it in the group while they are restored.
RESTORE_CHUNK = 1000
# A stop or a revoke writes snapshots for the series with long logs (``DetectionSink.hand_over``), in
# transactions of this many (about a tenth of a second each), for at most this long: the whole
# group waits out a revoke, and a supervisor stopping a worker gives it seconds (Docker: 10). At
# the 178 to 221 µs a snapshot takes (``python -m bench.handover``), that is about 10,000 series.
HANDOVER_CHUNK = 500
HANDOVER_BUDGET_S = 2.0


def _nothing() -> None:
    return None


class DetectionSink:
    """Readings: the scoring engine's signals become warnings; its state is checkpointed with its log.

    ``log_id`` names the Kafka log the positions come from (``ingest.log_identity``).
    A checkpoint saved against another log keeps what its detectors learned but
    loses its position: offset 0 of a new log is a new reading, not a replay.
    Without ``log_id`` every position is taken to belong to one everlasting log.
    Sensor faults the engine finds go to ``faults``, apart from the hazards' warnings.
    ``on_signals`` is told each batch's signals once the warnings took them (the process's metrics);
    a batch replayed after a rewind tells them again. ``on_restored`` is told what restoring series
    it had not held cost (at a start, or after partitions were handed over): in bench.pipeline's
    timed phases (2026-12-04) a fifth to a quarter of the workers' CPU, and an operator sees a
    rebalance's cost there. The readings' clock moves open warnings on at most every
    ``ADVANCE_EVERY_S``, and before every checkpoint.
    """

    def __init__(
        self,
        *,
        engine: ScoringEngine,
        warnings: WarningService,
        checkpoints: CheckpointRepository,
        log_id: Callable[[], str] | None = None,
        faults: SensorFaultDesk | None = None,
        on_signals: SignalsSeen | None = None,
        on_restored: Restored | None = None,
    ) -> None:
        self.engine = engine
        self.on_signals = on_signals
        self.on_restored = on_restored
        self.warnings = warnings
        self.faults = faults
        self.checkpoints = checkpoints
        self._log_id = log_id
        self._log: str | None = None  # looked up again after each reset: the broker may have restarted
        self._clock: dict[str, datetime] = {}  # each area's latest reading not yet given to ``advance``
        self._advanced_at = float("-inf")
        # Called between chunks of a long restore; the ingest worker sets its own (IngestWorker.keep_alive).
        self.keep_alive: Callable[[], None] = _nothing
        # Checkpoints taken from the engine, and the last of them saved: a handover needs them equal.
        self._staged = self._saved = 0

    def process(self, points: Sequence[Point], positions: Sequence[Position], *, now: datetime) -> None:
        log = self._current_log()
        unknown = list({p.sensor_id: None for p in points if not self.engine.known(p.sensor_id)})
        for start in range(0, len(unknown), RESTORE_CHUNK):
            began = time.perf_counter()
            saved = self.checkpoints.load(unknown[start : start + RESTORE_CHUNK])
            self.engine.restore(
                {sid: rec if rec["log"] == log else {**rec, "position": None} for sid, rec in saved.items()}
            )
            if self.on_restored is not None and saved:
                self.on_restored(len(saved), time.perf_counter() - began)
            self.keep_alive()
        signals = self.engine.score(points, positions)
        self.warnings.apply_signals(signals, now=now, actor=f"detector:{self.engine.detector_name}")
        if self.on_signals is not None:
            self.on_signals(signals)
        # The readings' own clock moves the warnings of their areas on (hold, release: alerts.lifecycle).
        for area, latest in latest_per_area((p.area, p.ts_ns) for p in points).items():
            self._clock[area] = max(latest, self._clock.get(area, latest))
        if time.monotonic() - self._advanced_at >= ADVANCE_EVERY_S:
            self._advance(now)
        health = self.engine.take_health_events()
        if self.faults is not None:
            self.faults.apply(health, now=now)

    def checkpoint(self, *, now: datetime) -> None:
        self.stage_checkpoint(now=now)()

    def stage_checkpoint(self, *, now: datetime) -> Callable[[], None]:
        """Take what every series must save now; the call returned saves it, from any thread.

        The ingest worker saves on a thread of its own while it handles later batches
        (``ingest.consumer.StagedSink``): a checkpoint of thousands of series is seconds of
        writing, which every reading arriving meanwhile waited out. The records are bytes
        and fresh dicts, so batches scored meanwhile cannot change them.
        """
        self._advance(now)  # what the checkpoint covers has moved its warnings on
        records, log = self.engine.checkpoint(), self._current_log()
        self._staged += 1
        staged = self._staged

        def save() -> None:
            self.checkpoints.save_series(records, log=log, now=now)
            self._saved = staged

        return save

    def hand_over(self) -> None:
        """Snapshot the series whose logs are long, so whoever restores them next replays little.

        Called by the ingest worker at a stop and a revoke, once every batch it handled is
        checkpointed: a restore replays each point a series logged since its snapshot (up to 256,
        2.75 µs each: ``python -m bench.handover``), and a graceful handover can spare the next
        owner that. The longest logs go first, for at most ``HANDOVER_BUDGET_S``; what is left, or
        a write that fails, is replayed as before. Nothing here moves a position, so it can only
        spare a replay, never lose a point.
        """
        if self._saved != self._staged:
            # A checkpoint taken from the engine is not saved (in flight, or failed): what the
            # engine holds is ahead of the saved positions, and a snapshot of it would have those
            # points learned twice. The ingest worker never asks then; this holds it anyway.
            logger.warning("no handover: checkpoint %d of %d not saved", self._saved, self._staged)
            return
        began = time.monotonic()
        order = self.engine.handover_order()
        written = 0
        try:
            for start in range(0, len(order), HANDOVER_CHUNK):
                if time.monotonic() - began >= HANDOVER_BUDGET_S:
                    break
                records = self.engine.handover_snapshots(order[start : start + HANDOVER_CHUNK])
                self.checkpoints.hand_over(records)
                written += len(records)
        except Exception as exc:  # the logs stay as they were: the next owner replays them
            logger.warning("handover stopped after %d of %d snapshots: %s", written, len(order), exc)
            self.reset()  # the engine counted the failed chunk's logs as gone
            return
        logger.info(
            "handed over %d of %d series with long logs as snapshots in %.2f s",
            written,
            len(order),
            time.monotonic() - began,
        )

    def reset(self) -> None:
        self.engine.forget_all()
        self._saved = self._staged  # nothing unsaved is held any more
        self._clock = {}  # the batches that moved it are read again
        self._log = None

    def _advance(self, now: datetime) -> None:
        clock, self._clock = self._clock, {}
        self._advanced_at = time.monotonic()
        self.warnings.advance(clock, now=now)

    def _current_log(self) -> str | None:
        if self._log is None and self._log_id is not None:
            self._log = self._log_id()
        return self._log


def latest_per_area(times: Iterable[tuple[str, int]]) -> dict[str, datetime]:
    """The latest event time (ns) seen per area: how far each area's clock has come."""
    latest: dict[str, int] = {}
    for area, ts_ns in times:
        if area and ts_ns > latest.get(area, ts_ns - 1):
            latest[area] = ts_ns
    return {area: from_ns(ts) for area, ts in latest.items()}


REPORTS_CHECKPOINT_PREFIX = "@reports/"  # '@' cannot start a sensor id, so it never collides


class ReportSink:
    """Report batches: burst detection per (area, category), bursts become warning signals.

    Reports are keyed by area, so each partition holds whole areas: one
    detector per partition, checkpointed under its own key, lets any number of
    report consumers share the topic without overwriting each other's state.
    """

    def __init__(
        self,
        *,
        detector_factory: Callable[[], ReportBurstDetector],
        warnings: WarningService,
        checkpoints: CheckpointRepository,
        on_signals: SignalsSeen | None = None,
    ) -> None:
        self._factory = detector_factory
        self.on_signals = on_signals
        self.warnings = warnings
        self.checkpoints = checkpoints
        self._detectors: dict[int, ReportBurstDetector] = {}

    def process(
        self, reports: Sequence[ReportRecord], positions: Sequence[Position], *, now: datetime
    ) -> None:
        by_partition: dict[int, list[ReportRecord]] = defaultdict(list)
        for report, (partition, _offset) in zip(reports, positions, strict=True):
            # Reports outside every area are stored and listed, but fuse into no area's warning.
            if not report.outside_areas:
                by_partition[partition].append(report)
        signals = []
        for partition, placed in sorted(by_partition.items()):
            detector = self._load(partition)
            bursts = detector.observe_batch(
                [(r.area, r.category, r.ts_ns / 1e9, r.report_id) for r in placed]
            )
            by_id = {r.report_id: r for r in placed}
            # A burst of uncategorised chatter (noise complaints, late buses) is no hazard.
            signals += [burst_signal(b, by_id) for b in bursts if b.hazard != "other"]
        if signals:
            self.warnings.apply_signals(signals, now=now, actor="detector:reportburst")
            if self.on_signals is not None:
                self.on_signals(signals)
        self.warnings.advance(
            latest_per_area((r.area, r.ts_ns) for r in reports if not r.outside_areas), now=now
        )

    def checkpoint(self, *, now: datetime) -> None:
        records: dict[str, dict[str, Any]] = {
            f"{REPORTS_CHECKPOINT_PREFIX}{partition}": {
                "detector": "reportburst",
                "state": detector.get_state(),
                "position": None,
            }
            for partition, detector in self._detectors.items()
        }
        self.checkpoints.save(records, now=now)

    def reset(self) -> None:
        self._detectors.clear()

    def _load(self, partition: int) -> ReportBurstDetector:
        detector = self._detectors.get(partition)
        if detector is None:
            key = f"{REPORTS_CHECKPOINT_PREFIX}{partition}"
            saved = self.checkpoints.load([key]).get(key)
            detector = self._factory()
            if saved is not None:
                detector = type(detector).from_state(saved["state"], taxonomy=detector.taxonomy)
            self._detectors[partition] = detector
        return detector


def burst_signal(burst: BurstSignal, reports: dict[str, ReportRecord]) -> Signal:
    """A burst of reports as warning evidence; drills (``alerts.drills``) make theirs the same way."""
    seen = [reports[i] for i in burst.report_ids if i in reports]
    latest = max(seen, key=lambda r: r.ts_ns) if seen else None
    evidence: dict[str, float | str] = {
        "count": float(burst.count),
        "expected": burst.expected,
        "tail_probability": burst.tail_probability,
        "sources": ",".join(sorted({r.source for r in seen})),
    }
    if latest is not None:
        evidence["excerpt"] = latest.text[:200]
    return Signal(
        sensor_id="",
        kind=f"report:{burst.category}",
        area=burst.area,
        hazard=burst.hazard,
        ts_ns=int(burst.ts * 1e9),
        value=float(burst.count),
        score=burst.score,
        detector="reportburst",
        level=None,
        evidence=evidence,
        source="reports",
        report_ids=tuple(burst.report_ids),
    )
