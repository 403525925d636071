"""Sensor health: is the sensor itself still telling the truth? Judged apart from the hazard it watches.

A per-series detector scores a sensor that stopped moving, or sends values
no instrument could read, as it scores any other oddity, and the decision
step's minimum deviation then drops it: a gauge stuck at a dry reading looks
calm. These faults are the maintenance team's business, so they are judged
here by the catalog's rules, not by statistics:

* **stuck** (``flatline``): the same in-range value, exactly, at least
  ``MIN_STUCK_READINGS`` times in a row and for the kind's ``stuck_after_s``
  of event time, unless the value is one a healthy sensor of the kind may
  hold for days (``steady_at``: a dry rain gauge's 0);
* **impossible values** (``out_of_range``): the kind's ``out_of_range_run``
  readings in a row outside ``valid_min..valid_max`` (ingest dead-letters
  each of them, and hands them here too);
* **silence** (``silent``): no reading for ``SILENCE_FACTOR`` times the
  sensor's expected interval, judged against the wall clock by a periodic
  check (``app.silence``), since a silent sensor brings no point to judge.

Stuck and impossible values are judged point by point in arrival order, as
the decision step is, and the state is checkpointed with the detector's, so
batching, a replay or a restart neither change nor repeat what is raised: a
fault is raised once when it begins and cleared once, by the next good
reading (for a stuck sensor, one that differs).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Any, Literal, Self

import numpy as np

from config.catalog import MIN_STUCK_INTERVALS, SensorKind
from models.protocol import FloatArray

Fault = Literal["silent", "flatline", "out_of_range"]

# A sensor is silent after missing this many expected reports: one late or lost message is common
# on a cellular link (and is retried); three in a row is a sensor, its power or its link down.
SILENCE_FACTOR = 3.0
# A value counts as stuck only once it has been read this many times in a row: the same value on
# both sides of a gap is not a sensor repeating itself.
MIN_STUCK_READINGS = MIN_STUCK_INTERVALS


@dataclass(frozen=True, slots=True)
class HealthRule:
    """One kind's health rule (``config.catalog.SensorKind``); ``None`` stuck_after_s: never stuck."""

    valid_min: float = float("-inf")
    valid_max: float = float("inf")
    stuck_after_s: float | None = None
    steady_at: tuple[float, ...] = ()
    out_of_range_run: int = 3

    @classmethod
    def for_kind(cls, kind: SensorKind | None) -> HealthRule:
        if kind is None:
            return cls()
        return cls(
            valid_min=kind.valid_min,
            valid_max=kind.valid_max,
            stuck_after_s=kind.stuck_after_s,
            steady_at=kind.steady_at,
            out_of_range_run=kind.out_of_range_run,
        )

    def in_range(self, value: float) -> bool:
        return self.valid_min <= value <= self.valid_max

    def in_range_of(self, values: FloatArray) -> np.ndarray:
        """``in_range`` of each value at once (NaN is out of range in both)."""
        return (values >= self.valid_min) & (values <= self.valid_max)


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """A sensor's health changed at one reading: a fault began (``fault``), or ended (``fault`` None).

    ``last_good_*`` is the last reading that can be trusted: the one before an
    impossible run or a silence, and for a stuck sensor the first reading of
    the stuck value (the last time it moved). ``ts_ns`` and ``value`` are the
    reading that changed the health (for silence: the moment it became overdue,
    and the last good value).
    """

    sensor_id: str
    kind: str
    area: str
    ts_ns: int
    value: float
    fault: Fault | None
    detail: str
    last_good_ns: int | None = None
    last_good_value: float | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What one reading did to a series' health: the fault now (None: healthy) and why."""

    fault: Fault | None
    detail: str


@dataclass(slots=True)
class SeriesHealth:
    """One series' health state; plain data, checkpointed beside the detector's."""

    fault: Fault | None = None
    run_value: float | None = None  # the value of the current run of identical in-range readings
    run_start_ns: int = 0
    run_readings: int = 0
    bad_run: int = 0  # out-of-range readings in a row
    last_good_ns: int | None = None
    last_good_value: float | None = None

    def observe(self, rule: HealthRule, ts_ns: int, value: float) -> Change | None:
        """Advance by one reading (in arrival order); a ``Change`` when the fault begins or ends."""
        before = self.fault
        if not rule.in_range(value):
            self.bad_run += 1
            self.run_value, self.run_readings = None, 0
            if self.bad_run >= rule.out_of_range_run:
                self.fault = "out_of_range"
            if self.fault == before:
                return None
            limits = f"{rule.valid_min:g}..{rule.valid_max:g}"
            why = f"{self.bad_run} readings in a row outside {limits}, the last {value:g}"
            return Change("out_of_range", why)
        self.bad_run = 0
        if value == self.run_value:
            self.run_readings += 1
        else:
            self.run_value, self.run_start_ns, self.run_readings = value, ts_ns, 1
        stuck = (
            rule.stuck_after_s is not None
            and value not in rule.steady_at
            and self.run_readings >= MIN_STUCK_READINGS
            and ts_ns - self.run_start_ns >= rule.stuck_after_s * 1e9
        )
        if stuck:
            self.fault = "flatline"
            if before != "flatline":
                self.last_good_ns, self.last_good_value = self.run_start_ns, value
                hours = (ts_ns - self.run_start_ns) / 3.6e12
                why = f"read {value:g} exactly, {self.run_readings} times in a row over {hours:.1f} h"
                return Change("flatline", why)
            return None
        self.fault = None
        self.last_good_ns, self.last_good_value = ts_ns, value
        return None if before is None else Change(None, f"a good reading again: {value:g}")

    def take_distinct(self, rule: HealthRule, values: list[float], last_ns: int) -> bool:
        """Take readings at once when ``observe`` would change nothing but the run; returns whether it did.

        That is a healthy series, every reading in range and each unlike the one before it (the
        first unlike the current run's value): each then begins a run of one, which a run must
        reach ``MIN_STUCK_READINGS`` to be stuck, and is the last good reading, so the last is
        the state and no change is told. ``last_ns`` is the last reading's time. A live batch
        brings a series a few readings, and an ``observe`` call and a range check for each was
        a twentieth of ``ScoringEngine.score`` (py-spy over ``bench.scoring``'s batches).
        Otherwise nothing changes: take the readings one by one.
        """
        if self.fault is not None or not values:
            return False
        low, high = rule.valid_min, rule.valid_max
        before = self.run_value
        for value in values:
            if value == before or not low <= value <= high:  # NaN fails the range
                return False
            before = value
        self._run_of_one(last_ns, values[-1])
        return True

    def observe_replayed(self, rule: HealthRule, ts_ns: np.ndarray, values: FloatArray) -> None:
        """Advance over readings observed once already (a restore's replay): the state ``observe``
        leaves, without the changes, which were told the first time.

        The usual run is ``take_distinct``'s, looked at with numpy: a replay holds up to
        ``models.engine.MAX_LOGGED_POINTS`` readings. Taking them one by one through ``observe``
        was a tenth of a restore (pyinstrument over ``bench.restore``'s states).
        """
        if (
            len(values)
            and self.fault is None
            and rule.in_range_of(values).all()
            and float(values[0]) != self.run_value
            and (values[1:] != values[:-1]).all()
        ):
            self._run_of_one(int(ts_ns[-1]), float(values[-1]))
            return
        for t, v in zip(ts_ns.tolist(), values.tolist(), strict=True):
            self.observe(rule, t, v)

    def _run_of_one(self, ts_ns: int, value: float) -> None:
        """A healthy series' state after an in-range reading unlike the one before it."""
        self.bad_run = 0
        self.run_value, self.run_start_ns, self.run_readings = value, ts_ns, 1
        self.last_good_ns, self.last_good_value = ts_ns, value

    def get_state(self) -> dict[str, Any]:
        # Every field is a scalar: no need for asdict's deep copy, which a checkpoint of
        # thousands of series paid once per series. The fields are read by one C getter.
        return dict(zip(_HEALTH_FIELDS, _health_values(self), strict=True))

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Self:
        """A checkpoint's health, or a fresh one for a checkpoint written before health was kept."""
        return cls(**state) if state else cls()


def overdue(*, last_seen_s: float, interval_s: float, now_s: float, slack_s: float = 0.0) -> bool:
    """Whether a sensor last heard at ``last_seen_s`` is silent at ``now_s`` (wall clock, seconds).

    ``slack_s`` covers how late the last-heard time itself is recorded (a checkpoint interval).
    """
    return now_s - last_seen_s > SILENCE_FACTOR * interval_s + slack_s


_HEALTH_FIELDS = tuple(f.name for f in fields(SeriesHealth))
_health_values = operator.attrgetter(*_HEALTH_FIELDS)
