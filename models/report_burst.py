"""Report bursts: more reports of one category in one area, in a short window, than its habits explain.

Residents call about what they see, so a cluster of gas reports in one grid is
often the first sign of a leak, well before a detector reads it. What counts
as a cluster depends on the category and the place: three gas reports in ten
minutes are rare anywhere, five traffic reports are ordinary at rush hour by
a busy interchange. So for each (area, category):

- the reports of the last ``window_s`` seconds (up to that key's latest
  report; late arrivals within the window count, older ones only teach) are
  counted, a duplicated ``report_id`` once;
- the expected count in that window comes from a rate per local hour of day:
  the taxonomy's prior (reports per grid per hour) blended with the key's own
  history as a Gamma-Poisson posterior mean,
  ``(w0 * prior + reports) / (w0 + hours observed)``, where reports and hours
  are exponentially discounted (``half_life_days``) per hour-of-day bucket and
  ``w0 = prior_weight_hours``. A fresh detector starts every grid at the
  prior; a grid with a regular 8 a.m. crowd learns it within days. Hours are
  counted city-wide from the detector's start, so a grid that stays silent
  drifts below the prior (more sensitive, never less). Reports join the
  history only once they leave the window, so a burst never explains itself
  away;
- the burst is significant when the window holds at least ``min_count``
  reports and the Poisson tail ``P(N >= count)`` is below ``alpha``. One
  signal per burst; a growing burst signals again with its larger count.

Reports are correlated (one crash, five callers), which Poisson ignores: that
is why ``min_count`` exists and why ``alpha`` is strict.

Pure and streaming: each batch is processed in time order (so its order does
not matter), nothing looks ahead, memory is bounded (window contents, 24
floats per key, a fixed-size memory of report ids), and the state is plain
JSON so ``from_state`` resumes bit-for-bit.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from scipy.special import pdtrc

from config.taxonomy import FALLBACK_CATEGORY, HOURS, Taxonomy

DETECTOR = "reportburst"
STATE_VERSION = 1
_HOUR_S = 3600.0

Report = tuple[str, str, float, str]
"""(area, category, ts in epoch seconds, report_id)."""


@dataclass(frozen=True, slots=True)
class BurstSignal:
    """A significant window of reports: what, where, how many, against how many expected."""

    area: str
    category: str
    hazard: str
    ts: float  # the latest report in the window, epoch seconds
    count: int
    expected: float  # expected reports in the window
    tail_probability: float  # P(N >= count) under the expected rate
    score: float  # 1 - tail_probability
    report_ids: tuple[str, ...]


def poisson_tail(count: int, expected: float) -> float:
    """P(N >= count) for N ~ Poisson(expected), accurate far into the tail (no 1 - cdf)."""
    if count <= 0:
        return 1.0
    if expected <= 0.0:
        return 0.0
    return float(pdtrc(count - 1, expected))


def hour_segments(start: float, end: float, utc_offset_s: float) -> Iterator[tuple[int, float]]:
    """(local hour of day, hours spent in it) covering [start, end), in order."""
    t = start
    while t < end:
        h = math.floor((t + utc_offset_s) / _HOUR_S)
        boundary = (h + 1) * _HOUR_S - utc_offset_s
        if boundary <= t:  # float rounding exactly on an hour boundary
            h += 1
            boundary += _HOUR_S
        stop = min(end, boundary)
        yield h % HOURS, (stop - t) / _HOUR_S
        t = stop


@dataclass
class _Key:
    """One (area, category): its window and its discounted hour-of-day history."""

    window: list[tuple[float, str]]  # (ts, report_id), sorted, all within window_s of clock
    clock: float  # the latest report ts of this key
    ref_ts: float  # the time ``counts`` are discounted to
    counts: list[float] = field(default_factory=lambda: [0.0] * HOURS)
    emitted: int = 0  # count at the last signal of the current burst; 0 between bursts


class ReportBurstDetector:
    """Sliding-window Poisson burst detection per (area, category); see the module docs."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        *,
        window_s: float = 600.0,
        min_count: int = 3,
        alpha: float = 1e-3,
        half_life_days: float = 14.0,
        prior_weight_hours: float = 3.0,
        dedup_capacity: int = 10_000,
    ) -> None:
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError("window_s must be a positive number of seconds")
        if min_count < 1:
            raise ValueError("min_count must be at least 1")
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be between 0 and 1")
        if not (math.isfinite(half_life_days) and half_life_days > 0):
            raise ValueError("half_life_days must be positive")
        if not (math.isfinite(prior_weight_hours) and prior_weight_hours > 0):
            raise ValueError("prior_weight_hours must be positive")
        if dedup_capacity < 1:
            raise ValueError("dedup_capacity must be at least 1")
        self.taxonomy = taxonomy
        self.params: dict[str, Any] = {
            "window_s": float(window_s), "min_count": int(min_count), "alpha": float(alpha),
            "half_life_days": float(half_life_days), "prior_weight_hours": float(prior_weight_hours),
            "dedup_capacity": int(dedup_capacity),
        }  # fmt: skip
        self.window_s = float(window_s)
        self.min_count = int(min_count)
        self.alpha = float(alpha)
        self._tau_s = half_life_days * 86400.0 / math.log(2.0)
        self._w0 = float(prior_weight_hours)
        self._offset_s = taxonomy.utc_offset_hours * _HOUR_S
        self._keys: dict[tuple[str, str], _Key] = {}
        self._clock: float | None = None  # the latest report ts seen
        # Hours observed per local hour of day, discounted to ``_exposure_ts``; they
        # run up to ``clock - window_s``, like the history they are the denominator of.
        self._exposure = [0.0] * HOURS
        self._exposure_ts: float | None = None
        self._seen: deque[str] = deque(maxlen=int(dedup_capacity))
        self._seen_set: set[str] = set()

    # --- scoring --------------------------------------------------------

    def observe_batch(self, reports: Sequence[Report]) -> list[BurstSignal]:
        """Take a batch of (area, category, ts_seconds, report_id) in any order; return the
        bursts that became significant, or grew, with it (one per burst per batch)."""
        out: list[BurstSignal] = []
        pending: dict[tuple[str, str], BurstSignal] = {}
        for area, category, ts, rid in sorted(reports, key=lambda r: (r[2], r[3], r[0], r[1])):
            if not math.isfinite(ts):
                raise ValueError(f"report {rid!r} has a non-finite timestamp")
            k = (area, category)
            key = self._keys.get(k)
            if rid in self._seen_set or (key is not None and any(r == rid for _, r in key.window)):
                continue
            self._remember(rid)
            self._advance_clock(ts)
            if key is None:
                key = self._keys[k] = _Key(window=[], clock=ts, ref_ts=ts)
            key.clock = max(key.clock, ts)
            self._graduate(key)
            if ts <= key.clock - self.window_s:  # late: outside this key's window, only teaches
                self._learn(key, ts)
                continue
            bisect.insort(key.window, (ts, rid))
            signal = self._evaluate(area, category, key)
            if signal is None:
                key.emitted = 0
                if k in pending:  # that burst is over; a later one in this batch is new
                    out.append(pending.pop(k))
            elif signal.count > key.emitted:
                key.emitted = signal.count
                pending[k] = signal
        out.extend(pending.values())
        out.sort(key=lambda s: (s.ts, s.area, s.category))
        return out

    def expected_count(self, area: str, category: str, at: float) -> float:
        """Reports of this category expected in this area in the window ending at ``at``,
        from the prior and the history learned so far (changes nothing)."""
        key = self._keys.get((area, category))
        return sum(
            self._rate(key, category, h) * hours
            for h, hours in hour_segments(at - self.window_s, at, self._offset_s)
        )

    def hazard_of(self, category: str) -> str:
        """The category's hazard; an unknown category (taxonomy edited since) counts as the fallback."""
        return self.taxonomy.hazard_of(self._known(category))

    # --- internals ------------------------------------------------------

    def _known(self, category: str) -> str:
        return category if category in self.taxonomy.categories else FALLBACK_CATEGORY

    def _evaluate(self, area: str, category: str, key: _Key) -> BurstSignal | None:
        count = len(key.window)
        if count < self.min_count:
            return None
        expected = self.expected_count(area, category, key.clock)
        tail = poisson_tail(count, expected)
        if tail >= self.alpha:
            return None
        return BurstSignal(
            area=area,
            category=category,
            hazard=self.hazard_of(category),
            ts=key.window[-1][0],
            count=count,
            expected=expected,
            tail_probability=tail,
            score=1.0 - tail,
            report_ids=tuple(rid for _, rid in key.window),
        )

    def _rate(self, key: _Key | None, category: str, hour: int) -> float:
        """Posterior mean reports per hour at this local hour (Gamma prior worth ``w0`` hours)."""
        prior = self.taxonomy.expected_rate(self._known(category), hour)
        exposure = 0.0
        counts = 0.0
        if self._exposure_ts is not None:
            at = self._exposure_ts if key is None else max(self._exposure_ts, key.ref_ts)
            exposure = self._exposure[hour] * math.exp(-(at - self._exposure_ts) / self._tau_s)
            if key is not None:
                counts = key.counts[hour] * math.exp(-(at - key.ref_ts) / self._tau_s)
        return (self._w0 * prior + counts) / (self._w0 + exposure)

    def _graduate(self, key: _Key) -> None:
        """Move reports that left the window into the key's history."""
        horizon = key.clock - self.window_s
        n = bisect.bisect_right(key.window, (horizon, "\U0010ffff"))
        for ts, _ in key.window[:n]:
            self._learn(key, ts)
        del key.window[:n]

    def _learn(self, key: _Key, ts: float) -> None:
        if ts > key.ref_ts:
            decay = math.exp(-(ts - key.ref_ts) / self._tau_s)
            key.counts = [c * decay for c in key.counts]
            key.ref_ts = ts
        hour = math.floor((ts + self._offset_s) / _HOUR_S) % HOURS
        key.counts[hour] += math.exp(-(key.ref_ts - ts) / self._tau_s)

    def _advance_clock(self, ts: float) -> None:
        if self._clock is not None and ts <= self._clock:
            return
        self._clock = ts
        horizon = ts - self.window_s
        if self._exposure_ts is None:
            self._exposure_ts = horizon
            return
        for h, hours in hour_segments(self._exposure_ts, horizon, self._offset_s):
            decay = math.exp(-hours * _HOUR_S / self._tau_s)
            self._exposure = [e * decay for e in self._exposure]
            self._exposure[h] += hours
        self._exposure_ts = max(self._exposure_ts, horizon)

    def _remember(self, rid: str) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(rid)
        self._seen_set.add(rid)

    # --- state ----------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Plain JSON-serialisable state; ``from_state`` resumes exactly."""
        return {
            "version": STATE_VERSION,
            "params": dict(self.params),
            "clock": self._clock,
            "exposure": list(self._exposure),
            "exposure_ts": self._exposure_ts,
            "seen": list(self._seen),
            "keys": [
                {"area": a, "category": c, "window": [[ts, rid] for ts, rid in k.window],
                 "clock": k.clock, "ref_ts": k.ref_ts, "counts": list(k.counts), "emitted": k.emitted}
                for (a, c), k in self._keys.items()
            ],
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any], *, taxonomy: Taxonomy) -> Self:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported report-burst state version {state.get('version')!r}")
        det = cls(taxonomy, **state["params"])
        det._clock = None if state["clock"] is None else float(state["clock"])
        det._exposure = [float(e) for e in state["exposure"]]
        det._exposure_ts = None if state["exposure_ts"] is None else float(state["exposure_ts"])
        for rid in state["seen"]:
            det._remember(str(rid))
        for k in state["keys"]:
            det._keys[(k["area"], k["category"])] = _Key(
                window=[(float(ts), str(rid)) for ts, rid in k["window"]],
                clock=float(k["clock"]),
                ref_ts=float(k["ref_ts"]),
                counts=[float(c) for c in k["counts"]],
                emitted=int(k["emitted"]),
            )
        return det
