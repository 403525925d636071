"""What a warning's evidence says per sensor: the line it crossed, and which detectors spoke how strongly.

Levels and certainty both read evidence this way, so they cannot disagree
about which sensors agree. Two detectors look at each sensor: the per-series
detector, whose score is calibrated as ``1 - exp(-ratio)`` (``ratio``: the
evidence over the series' own recent record), and the per-kind model, whose
``multivariate`` score is a percentile of its training windows. They look at
the data differently (one number against its record, the shape of a window
against every sensor of the kind), so each one that speaks is a witness.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from alerts.schemas import Evidence
from config.catalog import LEVELS
from config.timeutil import from_ns
from models.signals import Signal

# The per-kind model speaks from the same calibrated score that lets it raise a signal
# (ScoringEngine's multivariate_threshold): more unusual than 999 of 1,000 training windows.
MODEL_SPEAKS = 0.999
_MAX_SCORE = 1.0 - 1e-12  # a score of 1 would be an infinite ratio


def ratio_of_score(score: float) -> float:
    """The evidence-over-record ratio a calibrated score stands for: the inverse of ``1 - exp(-ratio)``."""
    return -math.log1p(-min(max(score, 0.0), _MAX_SCORE))


def series_ratio(e: Evidence) -> float:
    """The per-series detector's evidence over its record; exact from ``record_ratio`` when present
    (the score rounds to 1 for ratios past ~36), else read back from the calibrated score."""
    ratio = e.details.get("record_ratio")
    if isinstance(ratio, int | float) and math.isfinite(ratio):
        return float(ratio)
    return ratio_of_score(e.score)


def model_score(e: Evidence) -> float:
    """The per-kind model's score when it spoke (at or above ``MODEL_SPEAKS``), else 0."""
    mv = e.details.get("multivariate")
    return float(mv) if isinstance(mv, int | float) and mv >= MODEL_SPEAKS else 0.0


@dataclass(slots=True)
class SensorWitness:
    """The strongest of each kind of evidence one sensor gave within a warning's window."""

    sensor_id: str
    kind: str
    line: str | None = None  # the highest warning line crossed
    anomalous: bool = False  # gave at least one anomaly signal
    ratio: float = 0.0  # strongest anomaly: per-series evidence over its record
    model: float = 0.0  # strongest per-kind model score that spoke

    @property
    def series_score(self) -> float:
        return 1.0 - math.exp(-self.ratio)


def by_sensor(evidence: Iterable[Evidence]) -> dict[str, SensorWitness]:
    """Sensor evidence folded per sensor (a sensor counts once however often it fires)."""
    out: dict[str, SensorWitness] = {}
    for e in evidence:
        if e.source == "reports":
            continue
        w = out.setdefault(e.sensor_id, SensorWitness(e.sensor_id, e.kind))
        if e.level is not None:
            w.line = max(e.level, w.line or e.level, key=LEVELS.index)  # type: ignore[arg-type]
        else:
            # Only anomaly signals speak for the detectors: a line signal's score may be a held 0.
            w.anomalous = True
            w.ratio = max(w.ratio, series_ratio(e))
            w.model = max(w.model, model_score(e))
    return out


def report_ids(evidence: Iterable[Evidence]) -> set[str]:
    return {r for e in evidence if e.source == "reports" for r in e.report_ids}


def as_evidence(s: Signal) -> Evidence:
    """A signal as the evidence row it becomes, so a warning opens at the level its evidence gives."""
    return Evidence(
        observed_at=from_ns(s.ts_ns),
        source=s.source,
        sensor_id=s.sensor_id,
        kind=s.kind,
        value=s.value,
        score=s.score,
        detector=s.detector,
        level=s.level,
        details=dict(s.evidence),
        report_ids=list(s.report_ids),
    )
