"""The sink the ingest loop hands each stored batch to: score, warn, checkpoint."""

from __future__ import annotations

from datetime import datetime

from alerts.checkpoints import CheckpointRepository
from alerts.service import WarningService
from models.engine import ScoringEngine
from store.schemas import Point

Position = tuple[int, int]


class DetectionSink:
    def __init__(self, *, engine: ScoringEngine, warnings: WarningService,
                 checkpoints: CheckpointRepository) -> None:
        self.engine = engine
        self.warnings = warnings
        self.checkpoints = checkpoints
        self.signals_seen = 0

    def process(self, points: list[Point], positions: list[Position], *, now: datetime) -> None:
        series = {p.sensor_id for p in points}
        unknown = [s for s in series if not self.engine.known(s)]
        if unknown:
            self.engine.restore(self.checkpoints.load(unknown))
        try:
            signals = self.engine.score(points, positions)
            self.warnings.apply_signals(signals, now=now, actor=f"detector:{self.engine.detector_name}")
            self.checkpoints.save(self.engine.dirty_states(), now=now)
        except Exception:
            # The detectors have learned from a batch whose effects were not saved: drop
            # them so the retry restores from the last checkpoint and learns it once.
            self.engine.forget(series)
            raise
        self.signals_seen += len(signals)

    def on_revoke(self, partitions: list[int]) -> None:
        self.engine.forget_partitions(partitions)
