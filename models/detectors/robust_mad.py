"""A rolling median/MAD deviation detector: the first honest baseline for a sensor series.

The median and the median absolute deviation ignore the outliers they are
meant to find, so one spike does not hide the next. The spread has a floor
relative to the level, or a flat series would turn the first wobble into an
infinite z-score.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar, Self

import numpy as np

from models.protocol import BatchScores, FloatArray
from models.registry import register

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


@register
class RobustMadDetector:
    """Score = how many robust standard deviations a point sits from the rolling median.

    >>> d = RobustMadDetector(window=20, warmup=10)
    >>> [d.score_one(float(t), 10.0 + (t % 3) / 10) for t in range(30)][-1]
    0.0
    >>> d.score_one(30.0, 50.0)
    1.0
    """

    name: ClassVar[str] = "robustmad"

    def __init__(
        self,
        *,
        window: int = 288,
        warmup: int = 24,
        z_low: float = 4.0,
        z_high: float = 12.0,
        min_spread_frac: float = 0.01,
    ) -> None:
        self.window = window
        self.warmup = warmup
        self.z_low = z_low
        self.z_high = z_high
        self.min_spread_frac = min_spread_frac
        self._values: deque[float] = deque(maxlen=window)
        self._last: tuple[float, float, float] = (0.0, 0.0, 0.0)  # baseline, spread, z

    def score_one(self, ts: float, value: float) -> float:
        score = 0.0
        if len(self._values) >= self.warmup:
            arr = np.fromiter(self._values, dtype=np.float64, count=len(self._values))
            baseline = float(np.median(arr))
            mad = float(np.median(np.abs(arr - baseline)))
            spread = max(MAD_TO_SIGMA * mad, self.min_spread_frac * abs(baseline), 1e-9)
            z = abs(value - baseline) / spread
            score = min(max((z - self.z_low) / (self.z_high - self.z_low), 0.0), 1.0)
            self._last = (baseline, spread, z)
        else:
            self._last = (float("nan"), float("nan"), 0.0)
        self._values.append(float(value))
        return score

    def score_batch(self, ts: FloatArray, values: FloatArray) -> BatchScores:
        n = len(values)
        scores = np.empty(n)
        evidence = {name: np.empty(n) for name in ("baseline", "spread", "z")}
        for i in range(n):
            scores[i] = self.score_one(float(ts[i]), float(values[i]))
            evidence["baseline"][i], evidence["spread"][i], evidence["z"][i] = self._last
        return BatchScores(scores=scores, evidence=evidence)

    def get_state(self) -> dict[str, Any]:
        return {
            "params": {
                "window": self.window,
                "warmup": self.warmup,
                "z_low": self.z_low,
                "z_high": self.z_high,
                "min_spread_frac": self.min_spread_frac,
            },
            "values": list(self._values),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], *, coming: int = 0) -> Self:
        detector = cls(**state["params"])
        detector._values.extend(float(v) for v in state["values"])
        return detector
