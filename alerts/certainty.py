"""How sure a warning is: a confidence in [0, 1] from its independent witnesses, and its CAP certainty.

The rule, exactly:

1. Witnesses. Each distinct sensor is one witness, however often it fires:
   past its warning line (its own or its kind's) it weighs ``LINE_CROSSED``
   = 0.7; with anomalies only, ``ANOMALY`` x each detector's calibrated
   score, the per-series detector and the per-kind model combined as two
   witnesses (``alerts.witnesses``), never more than a crossed line. Each
   distinct report (one caller) is one witness of weight ``CALLER`` = 0.3;
   a burst that cites its calls again, or a growing burst, adds no one.
2. Kinds. Witnesses of one kind (one sensor kind, such as ``rainfall``; all
   people's reports) share their ways of being wrong: one calibration, one
   telemetry path, one smell mistaken for gas. Within a kind, strongest
   first, the k-th witness counts ``SAME_KIND ** (k - 1)`` of its weight.
3. Kinds are independent: confidence = 1 - prod(1 - counted weight) over
   every witness.
4. CAP certainty: "Observed" at 0.8 or more, "Likely" at 0.5, "Possible"
   at 0.1, else "Unlikely".

Why these numbers. A gauge past its line alone is "Likely" (0.7): it is the
city's own measure, but one instrument can be wrong. An anomaly is at most
even odds (0.5 x a score below 1), so one detector alone stays "Possible".
A caller is weaker than an anomaly: people report what they believe they
saw or smelt. A third per further witness of a kind keeps any number of
one kind below "Observed" (gauges past their lines: 1 - 0.3 x prod(1 -
0.7/3^k) < 0.8; callers alone below "Likely", < 0.41), so "Observed" needs
two kinds that fail in unrelated ways to agree: a gauge past its line with
a burst of three callers (0.82), or a rain gauge with a river gauge (0.91),
while two rain gauges alone are "Likely" (0.77).

Adding a witness never lowers the confidence (a newcomer takes its place by
strength and pushes weaker ones to smaller shares that it more than makes
up), and a witness seen again adds nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from alerts.schemas import Evidence
from alerts.witnesses import SensorWitness, by_sensor, report_ids

LINE_CROSSED = 0.7
ANOMALY = 0.5
CALLER = 0.3
SAME_KIND = 1 / 3

OBSERVED = 0.8
LIKELY = 0.5
POSSIBLE = 0.1

PEOPLE = "reports"  # the kind every caller belongs to, whatever they report


@dataclass(frozen=True, slots=True)
class Corroboration:
    confidence: float
    certainty: str
    sensors: tuple[str, ...]
    reports: int
    detectors: int = 0  # (sensor, detector) pairs that spoke: the per-series detector and the per-kind model
    kinds: int = 0  # kinds of witness (sensor kinds, and people) that spoke


def corroborate(evidence: Iterable[Evidence]) -> Corroboration:
    evidence = list(evidence)
    sensors = by_sensor(evidence)
    callers = report_ids(evidence)
    by_kind: dict[str, list[float]] = defaultdict(list)
    for w in sensors.values():
        by_kind[w.kind].append(sensor_weight(w))
    if callers:
        by_kind[PEOPLE] = [CALLER] * len(callers)
    confidence = combined(by_kind.values())
    detectors = sum((w.ratio > 0) + (w.model > 0) for w in sensors.values() if w.anomalous)
    return Corroboration(
        round(confidence, 4),
        certainty_of(confidence),
        tuple(sorted(sensors)),
        len(callers),
        detectors,
        len(by_kind),
    )


def certainty_of(confidence: float) -> str:
    if confidence >= OBSERVED:
        return "Observed"
    if confidence >= LIKELY:
        return "Likely"
    return "Possible" if confidence >= POSSIBLE else "Unlikely"


def sensor_weight(w: SensorWitness) -> float:
    """One sensor's weight: a crossed line, else its detectors combined, never more than a crossed line."""
    if w.line is not None:
        return LINE_CROSSED
    if not w.anomalous:
        return 0.0
    return min(LINE_CROSSED, 1.0 - (1.0 - ANOMALY * w.series_score) * (1.0 - ANOMALY * w.model))


def combined(kinds: Iterable[Iterable[float]]) -> float:
    """1 - the doubt every witness leaves, the k-th strongest of a kind counting SAME_KIND^(k-1)."""
    doubt = 1.0
    for weights in kinds:
        for k, weight in enumerate(sorted(weights, reverse=True)):
            doubt *= 1.0 - weight * SAME_KIND**k
    return 1.0 - doubt
