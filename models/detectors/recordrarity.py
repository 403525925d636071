"""``recordrarity``: deviation *and* rarity, each scored against the series' own recent records.

This extends the idea behind ``recorddev`` (robust evidence made unit-free,
then calibrated as a ratio to the largest evidence of the same kind seen
recently, so that one alert threshold means "a new record" on every series)
with two kinds of evidence that a distance from the median cannot see:

* ``level_rarity``: how seldom the recent level (median of the last
  ``level_len`` points) has been seen at all, as ``log((n + 1) / (count + 1))``
  where ``count`` is the number of baseline points within ``bandwidth`` robust
  standard deviations of that level. On a two-state series (a daily square
  wave, a busy/idle server) a level *between* the usual states, such as a
  stuck sensor or a half-height day, sits close to the median in z-score terms
  yet is rarer than anything in the baseline.
* ``point_rarity``: the same for the single current value.

Every evidence kind keeps its own running record over the last ``history``
points (with a floor, so a very quiet history does not turn noise into
records); the score is ``1 - exp(-max ratio)``. Holding further alarms after
one, so one incident raises one warning, is the decision step's job
(``models.decision``).

Compared with ``recorddev`` the baseline is longer (``window`` 4000 points,
about two weeks at 5-minute sampling): a longer memory of what is normal
makes "record" mean more on heavy-tailed series, where most false alarms came
from.

Plain Python, O(window) per point (sorted-list insertion), plain-data state,
so ``from_state`` resumes bit-for-bit.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any, ClassVar, cast

from models.detectors.record_base import RecordDetectorBase
from models.detectors.rolling_window_stats import SlidingMax, SortedWindow
from models.registry import register

_EVIDENCE = (
    "baseline",
    "spread",
    "deviation",
    "level",
    "density",
    "level_rarity",
    "point_rarity",
    "record_ratio",
    "channel",
)
CHANNELS = ("point", "level", "density", "level_rarity", "point_rarity")
"""Evidence kinds, in the order of the ``channel`` evidence index (-1: none)."""


class _CountingWindow(SortedWindow):
    """A ``SortedWindow`` that can also count its values inside a closed interval."""

    __slots__ = ()

    def count_between(self, low: float, high: float) -> int:
        s = self._sorted
        return bisect.bisect_right(s, high) - bisect.bisect_left(s, low)


@register
class RecordRarityDetector(RecordDetectorBase):
    """Robust deviation plus value rarity, calibrated as a ratio to each kind's recent record."""

    name: ClassVar[str] = "recordrarity"
    evidence_names: ClassVar[tuple[str, ...]] = _EVIDENCE
    window_class: ClassVar[type[SortedWindow]] = _CountingWindow

    def __init__(
        self,
        window: int = 4000,
        level_len: int = 10,
        density_len: int = 12,
        history: int = 3000,
        warmup: int = 100,
        z_cap: float = 6.0,
        z_floor: float = 1.0,
        bandwidth: float = 0.05,
        rarity_floor: float = 6.0,
    ) -> None:
        if window < level_len or warmup < 4 or history < 1 or level_len < 1 or density_len < 1:
            raise ValueError("need window >= level_len >= 1, density_len >= 1, warmup >= 4, history >= 1")
        if z_floor <= 0 or rarity_floor <= 0 or bandwidth <= 0:
            raise ValueError("z_floor, rarity_floor and bandwidth must be positive")
        self.params: dict[str, Any] = {
            "window": int(window),
            "level_len": int(level_len),
            "density_len": int(density_len),
            "history": int(history),
            "warmup": int(warmup),
            "z_cap": float(z_cap),
            "z_floor": float(z_floor),
            "bandwidth": float(bandwidth),
            "rarity_floor": float(rarity_floor),
        }
        self._floors = (float(z_floor),) * 3 + (float(rarity_floor),) * 2
        self._window = _CountingWindow(window)
        self._capped: deque[float] = deque(maxlen=int(density_len))
        self._records = [SlidingMax(history) for _ in CHANNELS]
        self._seen = 0

    # -- scoring -----------------------------------------------------------------

    def _step(self, value: float) -> tuple[float, tuple[float, ...]]:
        """Score ``value`` against the past, then learn it; returns (score, evidence)."""
        p = self.params
        if not math.isfinite(value):
            # A missing reading carries no evidence and must not poison the baseline.
            return 0.0, (0.0,) * 8 + (-1.0,)
        win = cast(_CountingWindow, self._window)  # from_state builds window_class
        n = len(win)
        score = 0.0
        baseline, spread, deviation, level, density = value, 0.0, 0.0, 0.0, 0.0
        level_rarity, point_rarity, ratio, channel = 0.0, 0.0, 0.0, -1
        if n >= p["warmup"]:
            baseline, spread, deviation, recent_level, level, density = self._deviation_evidence(value)
            z = abs(deviation)
            h = p["bandwidth"] * spread
            log_n = math.log(n + 1)
            level_rarity = log_n - math.log(win.count_between(recent_level - h, recent_level + h) + 1)
            point_rarity = log_n - math.log(win.count_between(value - h, value + h) + 1)
            calibrated = self._seen >= 2 * p["warmup"]
            evidence = (z, level, density, level_rarity, point_rarity)
            for k, (ev, record, floor) in enumerate(zip(evidence, self._records, self._floors, strict=True)):
                if calibrated:
                    r = ev / max(record.value(), floor)
                    if r > ratio:
                        ratio, channel = r, k
                record.push(ev)
            score = 1.0 - math.exp(-ratio)
        self._learn(value)
        return score, (
            baseline,
            spread,
            deviation,
            level,
            density,
            level_rarity,
            point_rarity,
            ratio,
            float(channel),
        )
