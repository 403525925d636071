"""The one step that turns detector scores into signals, point by point, so batching cannot matter.

Detectors only score. Everything that decides "is this worth telling the
EOC" lives here, as per-series state advanced one point at a time in the
order the points arrived, and checkpointed with the detector state. A
series cut into batches of any size therefore yields the same signals as
the same series fed one point at a time, and a replay from a checkpoint
yields the same signals again (the evidence table's unique key then keeps
one copy).

The rules, for each point in arrival order:

* **Anomaly.** A score at or above ``threshold`` is a signal when the value
  is also at least ``min_deviation`` (the kind's, in its unit) away from the
  detector's baseline: unusual *and* big enough to matter.
* **Hold-off.** An anomaly signal, and only that, starts a hold-off: the
  series' scores are held at 0 until ``hold_points`` points, the signalling
  one included, have passed, so one incident raises one anomaly signal, not
  one per reading. A score that is no signal (below the threshold, or too
  small a deviation) holds nothing, so it can never hide a later anomaly.
  Nor can a weak signal hide a much stronger one: a score whose strength
  (``-log(1 - score)``, the detector's evidence over its record) is at least
  ``escalation`` times the strength that started the hold-off breaks through
  it and starts a new one.
* **Warning lines, with hysteresis.** The series holds the highest line it
  has crossed. Entering a line, or rising past a higher one, is a signal at
  once. A held line is left only when the value falls back past it by
  ``hysteresis`` of the gap to the neighbouring line, so a value hovering on
  a line does not enter it again and again.
* **Reminders.** While a value stays past a line, the series emits again at
  most once per ``repeat_s`` seconds of event time (the highest timestamp
  seen in the series, so late points never move the clock back). Every
  signal, of either rule, restarts that interval.

Detectors keep learning from flagged points: the record detectors' baseline
is a median and IQR over thousands of points, which one flagged point moves
by one rank, and a lasting shift is meant to become the new normal.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Any, Self

from config.catalog import LEVELS, SensorKind, Thresholds
from models.protocol import FloatArray

NO_LINE = -1


def strength(score: float) -> float:
    """``-log(1 - score)``: for the record detectors, the evidence over its recent record."""
    return -math.log1p(-min(score, MAX_SCORE))


MAX_SCORE = 1.0 - 1e-12  # a score of 1 would have infinite strength


@dataclass(frozen=True, slots=True)
class DecisionRule:
    """The knobs of the decision step for one series (see the module docstring for the rules)."""

    threshold: float = 0.9
    hold_points: int = 60
    escalation: float = 2.0
    min_deviation: float = 0.0
    repeat_s: float = 900.0
    hysteresis: float = 0.1
    lines: tuple[float, ...] = ()  # blue..red, in the kind's or the sensor's direction
    above: bool = True

    @classmethod
    def for_series(
        cls, kind: SensorKind | None, thresholds: Thresholds | None, **knobs: float | int
    ) -> DecisionRule:
        """The rule of one sensor: the kind's minimum deviation and the sensor's (or kind's) lines.

        One object per distinct rule, shared: a worker keeps one per series (about 0.3 KiB
        with its lines), and the series of a kind nearly all have the kind's.
        """
        return _shared_rule(kind, thresholds, tuple(sorted(knobs.items())))

    def level_of(self, value: float) -> int:
        """Index into ``LEVELS`` of the highest line ``value`` has crossed, or ``NO_LINE``."""
        crossed = NO_LINE
        for k, line in enumerate(self.lines):
            if (value >= line) if self.above else (value <= line):
                crossed = k
        return crossed

    def still_past(self, value: float, level: int) -> bool:
        """Whether ``value`` stays within the hysteresis band of line ``level`` (not yet fallen back)."""
        lines = self.lines
        neighbour = lines[level - 1] if level > 0 else lines[1] if len(lines) > 1 else lines[0]
        margin = self.hysteresis * abs(lines[level] - neighbour)
        return value >= lines[level] - margin if self.above else value <= lines[level] + margin


@functools.lru_cache(maxsize=4096)
def _shared_rule(
    kind: SensorKind | None,
    thresholds: Thresholds | None,
    knobs: tuple[tuple[str, float | int], ...],
) -> DecisionRule:
    """``DecisionRule.for_series``'s rule, built once per distinct (frozen, so equal-valued) input."""
    lines = tuple(float(getattr(thresholds, level)) for level in LEVELS) if thresholds else ()
    return DecisionRule(
        min_deviation=kind.min_deviation if kind else 0.0,
        lines=lines,
        above=thresholds is None or thresholds.direction == "above",
        **dict(knobs),  # type: ignore[arg-type]
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """What the step concluded about one point: its held score, and whether it is a signal."""

    held_score: float
    signal: bool
    level: int  # line crossed by this point's value, or NO_LINE


@dataclass(slots=True)
class SeriesDecision:
    """One series' decision state; plain data, so it checkpoints beside the detector's."""

    seen: int = 0
    last_anomaly: int | None = None
    anomaly_strength: float = 0.0
    held_level: int = NO_LINE
    clock_s: float = -math.inf
    last_signal_s: float | None = None

    def decide(
        self, rule: DecisionRule, ts_s: float, value: float, score: float, baseline: float
    ) -> Decision:
        """Advance by one point (in arrival order) and say whether it is a signal."""
        holding = (
            self.last_anomaly is not None
            and self.seen - self.last_anomaly < rule.hold_points
            and strength(score) < rule.escalation * self.anomaly_strength
        )
        held = 0.0 if holding else score
        self.clock_s = max(self.clock_s, ts_s)

        level = rule.level_of(value)
        rising = level > self.held_level
        self.held_level = level if rising else self._fall_back(rule, value, level)
        reminder = level != NO_LINE and (
            self.last_signal_s is None or self.clock_s - self.last_signal_s >= rule.repeat_s
        )
        anomaly = held >= rule.threshold and (
            not math.isfinite(baseline) or abs(value - baseline) >= rule.min_deviation
        )
        if anomaly:
            self.last_anomaly, self.anomaly_strength = self.seen, strength(score)
        self.seen += 1
        signal = rising or reminder or anomaly
        if signal:
            self.last_signal_s = self.clock_s
        return Decision(held, signal, level)

    def _fall_back(self, rule: DecisionRule, value: float, level: int) -> int:
        """The held line after a value at or below it: kept while within the hysteresis band."""
        held = self.held_level
        while held > level and not rule.still_past(value, held):
            held -= 1
        return held

    def get_state(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in _DECISION_FIELDS}  # scalars: no deep copy
        if math.isinf(self.clock_s):
            state["clock_s"] = None  # JSON has no infinity
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        clock = state["clock_s"]
        return cls(
            seen=int(state["seen"]),
            last_anomaly=state["last_anomaly"],
            anomaly_strength=float(state["anomaly_strength"]),
            held_level=int(state["held_level"]),
            clock_s=-math.inf if clock is None else float(clock),
            last_signal_s=state["last_signal_s"],
        )


def decide_series(
    state: SeriesDecision,
    rule: DecisionRule,
    ts_s: FloatArray,
    values: FloatArray,
    scores: FloatArray,
    baselines: FloatArray,
) -> list[Decision]:
    """``SeriesDecision.decide`` over a run of one series' points, in the order given.

    The benchmark calls this (with a rule without lines); the service takes its signals
    through ``signals_among``, which a property test holds to this, so the hold-off the
    benchmark scores is the one the service ships.
    """
    return [
        state.decide(rule, t, v, s, b)
        for t, v, s, b in zip(
            ts_s.tolist(), values.tolist(), scores.tolist(), baselines.tolist(), strict=True
        )
    ]


def pass_quiet(
    state: SeriesDecision, rule: DecisionRule, ts_s: FloatArray, values: FloatArray, scores: FloatArray
) -> bool:
    """Advance over a run holding no signal in one step; False, ``state`` untouched, if it may hold one.

    Most runs are quiet: no line held or crossed, every score under the threshold.
    Then no point can rise, remind or be an anomaly (a held score is 0 or the
    score itself), so ``decide`` would only move the count and the clock. Doing
    that at once skips a Python call per point, which was most of a restore's replay.
    """
    if not len(values):
        return True
    if state.held_level != NO_LINE or rule.threshold <= 0:
        return False
    # Python's own all/max over lists: a batch brings a series one or two points, and numpy's
    # reductions cost microseconds each on arrays that short, more than ``decide`` itself.
    threshold = rule.threshold
    if not all(score < threshold for score in scores.tolist()):  # a NaN score is not under it
        return False
    if rule.lines:
        listed = values.tolist()
        if max(listed) >= min(rule.lines) if rule.above else min(listed) <= max(rule.lines):
            return False
    state.seen += len(values)
    state.clock_s = max(state.clock_s, *ts_s.tolist())
    return True


def signals_among(
    state: SeriesDecision,
    rule: DecisionRule,
    ts_s: FloatArray,
    values: FloatArray,
    scores: FloatArray,
    baselines: FloatArray,
) -> list[tuple[int, Decision]]:
    """The signals of ``decide_series`` over a run, by index, with ``state`` advanced alike.

    A run ``pass_quiet`` cannot take whole is often quiet but for a few points: a restore
    replays up to 256 points a series, and one score over the threshold sent all of them
    through ``decide`` (a tenth of a restore's time). Here only the points that may signal
    (a score not under the threshold, a value at or past the nearest line), and those
    while a line is held, take ``decide``; the stretches between move the count and the
    clock at once, as ``pass_quiet`` argues they would point by point.
    """
    times, listed, scored, expected = ts_s.tolist(), values.tolist(), scores.tolist(), baselines.tolist()
    n = len(listed)
    threshold, lines, above = rule.threshold, rule.lines, rule.above
    nearest = (min(lines) if above else max(lines)) if lines else math.nan  # NaN: nothing is past it
    # Lists, not numpy, for pass_quiet's reason: a live run that gets here is a point or two.
    loud = [
        i
        for i, (score, value) in enumerate(zip(scored, listed, strict=True))
        # A held score (0) is an anomaly at a threshold of 0; a NaN score is not under any.
        if threshold <= 0 or not score < threshold or (value >= nearest if above else value <= nearest)
    ]
    loud.append(n)
    out: list[tuple[int, Decision]] = []
    i = next_loud = 0
    while i < n:
        if state.held_level == NO_LINE:
            while loud[next_loud] < i:
                next_loud += 1
            quiet_until = loud[next_loud]
            if quiet_until > i:
                state.seen += quiet_until - i
                state.clock_s = max(state.clock_s, *times[i:quiet_until])
                i = quiet_until
                if i == n:
                    break
        decision = state.decide(rule, times[i], listed[i], scored[i], expected[i])
        if decision.signal:
            out.append((i, decision))
        i += 1
    return out


_DECISION_FIELDS = tuple(f.name for f in fields(SeriesDecision))
