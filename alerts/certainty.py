"""How much independent evidence backs a warning: confidence in [0, 1] and CAP certainty.

Each independent witness contributes a probability that the hazard is real;
witnesses combine as independent, 1 - prod(1 - w). A sensor counts once
however often it fires (its strongest evidence). On one sensor, each detector
that spoke is a witness (the per-series detector and the per-kind model look
at the data differently, ``alerts.witnesses``); a crossed line outweighs them.
All reports count as one source whose weight grows with the number of distinct
reports, because callers who saw the same street are not independent of each
other. So a single sensor seen by one detector stays "Possible", however
strong; two detectors or two sensors agreeing make it "Likely"; a gauge past
its line is "Likely", and corroborated by residents' reports "Observed".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alerts.schemas import Evidence
from alerts.witnesses import SensorWitness, by_sensor, report_ids

LINE_CROSSED = 0.7  # a calibrated sensor past an agreed warning line
ANOMALY = 0.4  # times a detector's calibrated score: unusual, but one detector can be wrong
REPORTS_BASE = 0.4  # a burst of the minimum size: alone, still only "Possible"
REPORTS_STEP = 0.05  # per further distinct report
REPORTS_MAX = 0.8

OBSERVED = 0.85
LIKELY = 0.5


@dataclass(frozen=True, slots=True)
class Corroboration:
    confidence: float
    certainty: str
    sensors: tuple[str, ...]
    reports: int
    detectors: int = 0  # (sensor, detector) pairs that spoke: the per-series detector and the per-kind model


def corroborate(evidence: Iterable[Evidence], *, min_burst: int = 3) -> Corroboration:
    evidence = list(evidence)
    sensors = by_sensor(evidence)
    weights = [_sensor_weight(w) for w in sensors.values()]
    ids = report_ids(evidence)
    if ids:
        extra = max(0, len(ids) - min_burst)
        weights.append(min(REPORTS_MAX, REPORTS_BASE + REPORTS_STEP * extra))
    confidence = _combined(weights)
    certainty = "Observed" if confidence >= OBSERVED else "Likely" if confidence >= LIKELY else "Possible"
    detectors = sum((w.ratio > 0) + (w.model > 0) for w in sensors.values() if w.anomalous)
    return Corroboration(round(confidence, 4), certainty, tuple(sorted(sensors)), len(ids), detectors)


def _sensor_weight(w: SensorWitness) -> float:
    """One sensor's weight: its detectors combined as witnesses, or its line crossing if stronger."""
    detectors = _combined([ANOMALY * w.series_score, ANOMALY * w.model]) if w.anomalous else 0.0
    return max(LINE_CROSSED if w.line is not None else 0.0, detectors)


def _combined(weights: Sequence[float]) -> float:
    doubt = 1.0
    for weight in weights:
        doubt *= 1.0 - weight
    return 1.0 - doubt
