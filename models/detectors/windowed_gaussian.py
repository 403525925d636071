"""``windowedgaussian``: NAB's "Windowed Gaussian" baseline as a citywarn detector.

It exists to validate the NAB harness (``bench.nab``) against published
figures, so it follows the NAB baseline's behaviour (Lavin & Ahmad 2015):
a point's score is ``1 - Q(|x - mean| / std)``, ``Q`` being the normal tail
probability, with ``mean`` and ``std`` (population) taken over the last
``window`` values. The statistics are refreshed after every point while the
window fills, then only every ``step`` points (the window slides by whole
steps), which is what makes the baseline cheap. A flat window gets a tiny
``std`` rather than a division by zero. The first point scores 0.

NAB's ``1 - Q`` lives in [0.5, 1]: an unremarkable point scores 0.5. citywarn
reads 0 as "as expected", so the score is reported as ``2 (1 - Q) - 1`` (the
probability that a normal draw lies closer to the mean), a strictly
increasing map that leaves NAB's threshold sweep, ranking and ties unchanged.

Scores are rounded to 12 decimals (``decimals``). NAB's published results for
this baseline were written by Python 2, whose ``str(float)`` keeps 12
significant digits, so every score above ``1 - 5e-13`` (``|z| > ~7.1``)
became exactly 1.0 and NAB's threshold sweep picked 1.0. Without the rounding
only ``|z| > ~8.3`` saturates and the baseline scores differently; with it,
this detector reproduces NAB's per-file raw scores.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np

from models.protocol import BatchScores, FloatArray
from models.registry import register

FLAT_STD = 1e-6  # std used when the window is constant
_SQRT2 = math.sqrt(2.0)
_erfc = np.frompyfunc(math.erfc, 1, 1)  # math.erfc, as NAB uses, applied elementwise


@register
class WindowedGaussianDetector:
    """Gaussian tail score of each point against a sliding window of earlier points.

    >>> d = WindowedGaussianDetector(window=4, step=2)
    >>> [round(d.score_one(float(t), v), 3) for t, v in enumerate([1.0, 2.0, 1.0, 2.0, 9.0])]
    [0.0, 1.0, 0.683, 0.843, 1.0]
    """

    name: ClassVar[str] = "windowedgaussian"

    def __init__(self, *, window: int = 6400, step: int = 100, decimals: int | None = 12) -> None:
        self.window = int(window)
        self.step = int(step)
        self.decimals = decimals
        self._window_values = np.empty(self.window)  # the window the statistics describe
        self._filled = 0
        self._pending: list[float] = []  # points waiting for the next slide
        self._mean = 0.0
        self._std = 1.0

    def score_one(self, ts: float, value: float) -> float:
        return float(self.score_batch(np.array([ts]), np.array([value])).scores[0])

    def score_batch(self, ts: FloatArray, values: FloatArray) -> BatchScores:
        """Score runs of points that share one set of statistics with a single vectorised call."""
        x = np.asarray(values, dtype=np.float64)
        n = len(x)
        scores, means, stds = np.empty(n), np.empty(n), np.empty(n)
        i = 0
        while i < n:
            j = min(n, i + self._points_until_refresh())
            means[i:j], stds[i:j] = self._mean, self._std
            scores[i:j] = self._tail_score(x[i:j])
            for v in x[i:j]:
                self._learn(float(v))
            i = j
        return BatchScores(scores=scores, evidence={"mean": means, "std": stds})

    def _points_until_refresh(self) -> int:
        """How many upcoming points are scored against the current statistics."""
        if self._filled < self.window:
            return 1
        return self.step - len(self._pending)

    def _tail_score(self, x: FloatArray) -> FloatArray:
        if self._filled == 0:
            return np.zeros(len(x))
        z = np.abs(x - self._mean) / self._std
        tail = np.asarray(_erfc(z / _SQRT2), dtype=np.float64)
        nab_score = 1.0 - 0.5 * tail
        if self.decimals is not None:
            nab_score = np.round(nab_score, self.decimals)
        return 2.0 * nab_score - 1.0

    def _learn(self, value: float) -> None:
        if self._filled < self.window:
            self._window_values[self._filled] = value
            self._filled += 1
            self._refresh()
            return
        self._pending.append(value)
        if len(self._pending) == self.step:
            buf = self._window_values
            buf[: -self.step] = buf[self.step :]
            buf[-self.step :] = self._pending
            self._pending = []
            self._refresh()

    def _refresh(self) -> None:
        arr = self._window_values[: self._filled]
        self._mean = float(arr.mean())
        std = float(arr.std())
        self._std = std if std != 0.0 else FLAT_STD

    def get_state(self) -> dict[str, Any]:
        return {
            "params": {"window": self.window, "step": self.step, "decimals": self.decimals},
            "values": self._window_values[: self._filled].tolist(),
            "pending": list(self._pending),
            "mean": self._mean,
            "std": self._std,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], *, coming: int = 0) -> Self:
        detector = cls(**state["params"])
        values = [float(v) for v in state["values"]]
        detector._window_values[: len(values)] = values
        detector._filled = len(values)
        detector._pending = [float(v) for v in state["pending"]]
        detector._mean = float(state["mean"])
        detector._std = float(state["std"])
        return detector
