"""The sink the ingest loop hands each stored batch to: score, warn, checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
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

    def process(self, points: Sequence[Point], positions: Sequence[Position], *, now: datetime) -> None:
        unknown = {p.sensor_id for p in points if not self.engine.known(p.sensor_id)}
        if unknown:
            self.engine.restore(self.checkpoints.load(unknown))
        signals = self.engine.score(points, positions)
        self.warnings.apply_signals(signals, now=now, actor=f"detector:{self.engine.detector_name}")
        self.signals_seen += len(signals)

    def checkpoint(self, *, now: datetime) -> None:
        self.checkpoints.save(self.engine.dirty_states(), now=now)

    def reset(self) -> None:
        self.engine.forget_all()
