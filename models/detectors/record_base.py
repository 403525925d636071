"""The scoring loop and checkpointing shared by the record-ratio detectors.

Both ``recorddev`` and ``recordrarity`` keep the same state (a sorted
baseline window, capped recent deviations, one running record per evidence
kind and a point counter) and differ only in their ``_step``:
the work of one point. Keeping the loop here means ``score_batch`` is the same
loop as ``score_one`` for both, by construction. They only score: the hold-off
after an alarm is the decision step's (``models.decision``).
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar, Self

import numpy as np

from models.detectors.rolling_window_stats import SlidingMax, SortedWindow
from models.protocol import BatchScores, FloatArray


class RecordDetectorBase:
    name: ClassVar[str]
    evidence_names: ClassVar[tuple[str, ...]]
    window_class: ClassVar[type[SortedWindow]] = SortedWindow

    params: dict[str, Any]
    _window: SortedWindow
    _capped: deque[float]
    _records: list[SlidingMax]
    _seen: int

    def __init__(self, **params: Any) -> None:
        raise NotImplementedError

    def _step(self, value: float) -> tuple[float, tuple[float, ...]]:
        """Score one value, learn it, and return the score with its evidence."""
        raise NotImplementedError

    def _deviation_evidence(self, value: float) -> tuple[float, float, float, float, float, float]:
        """Robust evidence against the baseline window: (baseline, spread, deviation, recent level,
        level, density). Also remembers the capped |deviation| for ``density``."""
        p = self.params
        win = self._window
        baseline = win.quantile(0.5)
        iqr_sd = (win.quantile(0.75) - win.quantile(0.25)) / 1.349
        # Floors keep z finite on flat or two-valued series without inflating real noise.
        spread = max(iqr_sd, 0.01 * (win.highest() - win.lowest()), 1e-9, 1e-12 * abs(baseline))
        deviation = (value - baseline) / spread
        recent = [*win.last(p["level_len"] - 1), value]
        recent.sort()
        recent_level = recent[len(recent) // 2]
        self._capped.append(min(abs(deviation), p["z_cap"]))
        density = sum(self._capped) / len(self._capped)
        return baseline, spread, deviation, recent_level, abs(recent_level - baseline) / spread, density

    def _learn(self, value: float) -> None:
        """Add the value to the baseline, after it was scored against it."""
        self._window.push(value)
        self._seen += 1

    def score_one(self, ts: float, value: float) -> float:
        """Score one reading (``ts`` is accepted for the protocol; order alone matters)."""
        return self._step(float(value))[0]

    def score_batch(self, ts: FloatArray, values: FloatArray) -> BatchScores:
        """Same loop as ``score_one``, collecting the evidence behind each score."""
        vals = np.asarray(values, dtype=np.float64).tolist()
        scores = np.empty(len(vals))
        evidence = np.empty((len(self.evidence_names), len(vals)))
        step = self._step
        for i, v in enumerate(vals):
            scores[i], evidence[:, i] = step(v)
        return BatchScores(scores, {k: evidence[j] for j, k in enumerate(self.evidence_names)})

    def get_state(self) -> dict[str, Any]:
        return {
            "params": dict(self.params),
            "window": self._window.get_state(),
            "capped": list(self._capped),
            "records": [r.get_state() for r in self._records],
            "seen": self._seen,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], *, coming: int = 0) -> Self:
        det = cls(**state["params"])
        det._window = cls.window_class.from_state(state["window"])
        det._capped.extend(float(c) for c in state["capped"])
        det._records = [SlidingMax.from_state(r) for r in state["records"]]
        det._seen = int(state["seen"])
        return det
