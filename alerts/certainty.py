"""How much independent evidence backs a warning: confidence in [0, 1] and CAP certainty.

Each independent source contributes a probability that the hazard is real;
sources combine as independent witnesses, 1 - prod(1 - w). A sensor counts
once however often it fires (its strongest evidence), and all reports count as
one source whose weight grows with the number of distinct reports, because
callers who saw the same street are not independent of each other. So a
single noisy sensor stays "Possible", a gauge past its line is "Likely", and
a gauge corroborated by residents' reports is "Observed".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from alerts.schemas import Evidence

LINE_CROSSED = 0.7  # a calibrated sensor past an agreed warning line
ANOMALY = 0.4  # times the anomaly score: unusual, but one sensor can be wrong
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


def corroborate(evidence: Iterable[Evidence], *, min_burst: int = 3) -> Corroboration:
    per_sensor: dict[str, float] = {}
    report_ids: set[str] = set()
    for e in evidence:
        if e.source == "reports":
            report_ids.update(e.report_ids)
            continue
        weight = LINE_CROSSED if e.level is not None else ANOMALY * e.score
        per_sensor[e.sensor_id] = max(per_sensor.get(e.sensor_id, 0.0), weight)
    weights = list(per_sensor.values())
    if report_ids:
        extra = max(0, len(report_ids) - min_burst)
        weights.append(min(REPORTS_MAX, REPORTS_BASE + REPORTS_STEP * extra))
    doubt = 1.0
    for w in weights:
        doubt *= 1.0 - w
    confidence = 1.0 - doubt
    certainty = "Observed" if confidence >= OBSERVED else "Likely" if confidence >= LIKELY else "Possible"
    return Corroboration(round(confidence, 4), certainty, tuple(sorted(per_sensor)), len(report_ids))
