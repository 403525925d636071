"""``recorddev``: robust deviation scored against the series' own recent records.

Why this shape:

* Every city sensor has its own units and noise, yet an operations center
  wants one alert threshold. So each point's evidence is first made unit-free
  (robust z-scores against a rolling median and interquartile spread), and
  then *calibrated against the series' own history*: the score grows with how
  far the current evidence exceeds the largest evidence of the same kind seen
  in the last ``history`` points. ``1 - exp(-ratio)`` maps "equal to the recent
  record" to 0.63, so one global threshold just above that means "a new record
  deviation" on any series.
* Three complementary kinds of evidence, each with its own record:
  ``point`` (a spike), ``level`` (the median of the last few points has moved:
  a level shift or stuck sensor at an unusual value) and ``density`` (the mean
  of recent capped z-scores: a burst of moderate deviations none of which is a
  record on its own).
* It only scores: holding further alarms after one, so one incident raises
  one warning, is the decision step's job (``models.decision``).

Defaults: a 2000-point baseline (about a week at 5-minute sampling) and a
2000-point record history; longer baselines were steadily better on NAB and
are natural for city sensors with daily/weekly rhythms.

Everything is O(window) per point in plain Python (no numpy per point), and the
whole state is plain data, so ``from_state`` resumes exactly.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

from models.detectors.record_base import RecordDetectorBase
from models.detectors.rolling_window_stats import SlidingMax, SortedWindow
from models.registry import register

_EVIDENCE = ("baseline", "spread", "deviation", "level", "density", "record_ratio")


@register
class RecordDeviationDetector(RecordDetectorBase):
    """Robust point/level/density deviation, calibrated as a ratio to its own recent record."""

    name: ClassVar[str] = "recorddev"
    evidence_names: ClassVar[tuple[str, ...]] = _EVIDENCE

    def __init__(
        self,
        window: int = 2000,
        level_len: int = 10,
        density_len: int = 12,
        history: int = 2000,
        warmup: int = 100,
        z_cap: float = 6.0,
        z_floor: float = 1.0,
    ) -> None:
        if window < level_len or warmup < 4 or history < 1 or z_floor <= 0:
            raise ValueError("need window >= level_len, warmup >= 4, history >= 1, z_floor > 0")
        self.params: dict[str, Any] = {
            "window": int(window),
            "level_len": int(level_len),
            "density_len": int(density_len),
            "history": int(history),
            "warmup": int(warmup),
            "z_cap": float(z_cap),
            "z_floor": float(z_floor),
        }
        self._window = SortedWindow(window)
        self._capped: deque[float] = deque(maxlen=int(density_len))
        self._records = [SlidingMax(history) for _ in range(3)]
        self._seen = 0

    # -- scoring -----------------------------------------------------------------

    def _step(self, value: float) -> tuple[float, tuple[float, ...]]:
        """Score ``value`` against the past, then learn it; returns (score, evidence)."""
        p = self.params
        if not math.isfinite(value):
            # A missing reading carries no evidence and must not poison the baseline.
            return 0.0, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        win = self._window
        n = len(win)
        score = 0.0
        baseline, spread, deviation, level, density, ratio = value, 0.0, 0.0, 0.0, 0.0, 0.0
        if n >= p["warmup"]:
            baseline, spread, deviation, _, level, density = self._deviation_evidence(value)
            z = abs(deviation)
            calibrated = self._seen >= 2 * p["warmup"]
            for evidence, record in zip((z, level, density), self._records, strict=True):
                if calibrated:
                    ratio = max(ratio, evidence / max(record.value(), p["z_floor"]))
                record.push(evidence)
            score = 1.0 - math.exp(-ratio)
        self._learn(value)
        return score, (baseline, spread, deviation, level, density, ratio)
