"""The four-colour warning scale, how it maps onto CAP 1.2, and which colour a warning's evidence earns.

Lines first. A value past an agreed warning line is the city's own measure
of danger, so when any sensor has crossed one, the highest line crossed sets
the level, whatever the anomalies say.

Anomalies alone are ranked, so an operator can tell a strong one from a
weak one. The detector score is calibrated (``1 - exp(-ratio)``, the
evidence over the series' own recent record), so "how far past the signal
threshold" reads the same on every series: the strongest sensor's ratio as a
multiple of the ratio the threshold needs. Each colour above blue takes that
multiple to grow by the kind's ``STEP_FACTOR``: a gas anomaly twice as strong
as a bare signal is yellow, a dust anomaly must be four times as strong.
Each doubling of the number of sensors that agree adds a colour. A barely
significant anomaly on one sensor therefore stays blue whatever its kind.

Anomalies alone stay below red unless a second sensor or people's reports
corroborate them: one sensor's statistics can be wrong in ways a crossed line
cannot (a fault, a recalibration), and red orders the heaviest response.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from alerts.schemas import Evidence
from alerts.witnesses import SensorWitness, by_sensor, ratio_of_score, report_ids
from config.catalog import LEVELS, Criticality

# China's public early-warning colours, lowest to highest, onto CAP 1.2 <severity>.
CAP_SEVERITY = {"blue": "Minor", "yellow": "Moderate", "orange": "Severe", "red": "Extreme"}
# How soon responders should act; CAP 1.2 <urgency>.
CAP_URGENCY = {"blue": "Future", "yellow": "Expected", "orange": "Immediate", "red": "Immediate"}

# How many times stronger an anomaly must grow for one more colour, by the kind's criticality
# (config/city/sensors.yaml says why each kind has its criticality). Powers of these multiples
# mark the colours: high 2x/4x/8x, normal 3x/9x/27x, low 4x/16x/64x the ratio that signals.
STEP_FACTOR: dict[Criticality, float] = {"high": 2.0, "normal": 3.0, "low": 4.0}
# The highest colour anomalies of a single sensor reach without corroboration.
UNCORROBORATED_CEILING = LEVELS.index("orange")
_EPS = 1e-9  # keeps an exact multiple (2.0x) from rounding down a colour


def rank(level: str) -> int:
    return LEVELS.index(level)  # type: ignore[arg-type]


def higher(a: str, b: str) -> str:
    return a if rank(a) >= rank(b) else b


@dataclass(frozen=True, slots=True)
class Assessment:
    """The level a warning's evidence earns, and what set it (for the explanation)."""

    level: str
    basis: Literal["line", "anomaly", "reports"]
    sensor_id: str = ""  # the sensor that set the level
    kind: str = ""
    criticality: Criticality = "normal"
    times_needed: float = 0.0  # the sensor's evidence as a multiple of what signalling needs
    sensors: int = 0  # sensors that gave anomaly evidence
    corroborated: bool = False
    capped: bool = False  # anomalies alone would have earned red

    @property
    def step_factor(self) -> float:
        return STEP_FACTOR[self.criticality]


class LevelRule:
    """Turns a warning's evidence into its level; built once from the signal threshold and the catalog."""

    def __init__(self, *, signal_threshold: float, criticality: Mapping[str, Criticality]) -> None:
        self.needed = ratio_of_score(signal_threshold)
        self.criticality = dict(criticality)

    def assess(self, evidence: Sequence[Evidence]) -> Assessment:
        sensors = by_sensor(evidence)
        crossed = [w for w in sensors.values() if w.line is not None]
        if crossed:
            top = max(crossed, key=lambda w: (rank(w.line or "blue"), w.sensor_id))
            return Assessment(top.line or "blue", "line", top.sensor_id, top.kind)
        anomalous = [w for w in sensors.values() if w.anomalous]
        if not anomalous:
            return Assessment("blue", "reports")
        strongest = max(anomalous, key=lambda w: (self._steps(w), w.ratio, w.sensor_id))
        earned = self._steps(strongest) + int(math.log2(len(anomalous)))
        corroborated = len(anomalous) > 1 or bool(report_ids(evidence))
        ceiling = len(LEVELS) - 1 if corroborated else UNCORROBORATED_CEILING
        return Assessment(
            LEVELS[min(earned, ceiling)],
            "anomaly",
            strongest.sensor_id,
            strongest.kind,
            self._criticality(strongest),
            strongest.ratio / self.needed,
            len(anomalous),
            corroborated,
            capped=earned > ceiling,
        )

    def _criticality(self, w: SensorWitness) -> Criticality:
        return self.criticality.get(w.kind, "normal")

    def _steps(self, w: SensorWitness) -> int:
        """Colours above blue the sensor's strongest anomaly earns by strength and criticality."""
        times = w.ratio / self.needed
        if times <= 1.0:
            return 0
        return int(math.log(times) / math.log(STEP_FACTOR[self._criticality(w)]) + _EPS)
