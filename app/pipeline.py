"""The sinks the ingest loops hand each stored batch to: score, warn, checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from alerts.checkpoints import CheckpointRepository
from alerts.service import WarningService
from models.engine import ScoringEngine
from models.report_burst import BurstSignal, ReportBurstDetector
from models.signals import Signal
from store.schemas import Point, ReportRecord

Position = tuple[int, int]


class DetectionSink:
    def __init__(
        self, *, engine: ScoringEngine, warnings: WarningService, checkpoints: CheckpointRepository
    ) -> None:
        self.engine = engine
        self.warnings = warnings
        self.checkpoints = checkpoints

    def process(self, points: Sequence[Point], positions: Sequence[Position], *, now: datetime) -> None:
        unknown = {p.sensor_id for p in points if not self.engine.known(p.sensor_id)}
        if unknown:
            self.engine.restore(self.checkpoints.load(unknown))
        signals = self.engine.score(points, positions)
        self.warnings.apply_signals(signals, now=now, actor=f"detector:{self.engine.detector_name}")

    def checkpoint(self, *, now: datetime) -> None:
        self.checkpoints.save(self.engine.dirty_states(), now=now)

    def reset(self) -> None:
        self.engine.forget_all()


REPORTS_CHECKPOINT_KEY = "@reports"  # '@' cannot start a sensor id, so it never collides


class ReportSink:
    """Report batches: burst detection per (area, category), bursts become warning signals."""

    def __init__(
        self,
        *,
        detector_factory: Callable[[], ReportBurstDetector],
        warnings: WarningService,
        checkpoints: CheckpointRepository,
    ) -> None:
        self._factory = detector_factory
        self.warnings = warnings
        self.checkpoints = checkpoints
        self._detector: ReportBurstDetector | None = None

    def process(
        self, reports: Sequence[ReportRecord], positions: Sequence[Position], *, now: datetime
    ) -> None:
        detector = self._load()
        # Reports outside every area are stored and listed, but fuse into no area's warning.
        placed = [r for r in reports if not r.outside_areas]
        bursts = detector.observe_batch([(r.area, r.category, r.ts_ns / 1e9, r.report_id) for r in placed])
        # A burst of uncategorised chatter (noise complaints, late buses) is no hazard.
        bursts = [b for b in bursts if b.hazard != "other"]
        if not bursts:
            return
        by_id = {r.report_id: r for r in placed}
        signals = [_burst_signal(b, by_id) for b in bursts]
        self.warnings.apply_signals(signals, now=now, actor="detector:reportburst")

    def checkpoint(self, *, now: datetime) -> None:
        if self._detector is not None:
            self.checkpoints.save(
                {
                    REPORTS_CHECKPOINT_KEY: {
                        "detector": "reportburst",
                        "state": self._detector.get_state(),
                        "position": None,
                    }
                },
                now=now,
            )

    def reset(self) -> None:
        self._detector = None

    def _load(self) -> ReportBurstDetector:
        if self._detector is None:
            saved = self.checkpoints.load([REPORTS_CHECKPOINT_KEY]).get(REPORTS_CHECKPOINT_KEY)
            fresh = self._factory()
            self._detector = (
                ReportBurstDetector.from_state(saved["state"], taxonomy=fresh.taxonomy) if saved else fresh
            )
        return self._detector


def _burst_signal(burst: BurstSignal, reports: dict[str, ReportRecord]) -> Signal:
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
