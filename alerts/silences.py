"""Silences and maintenance windows: which warnings they mute, and when. Pure: no I/O.

A silence is a set of matchers (sensor, area, hazard, level; every one given must match) and a time:
either a range [starts_at, ends_at) or a weekly window in a named time zone ("every Tuesday 02:00 to
04:00, Asia/Shanghai"), optionally bounded by a range too. Ending a silence early (``ended_at``)
keeps it for the record; it stops applying from that instant.

The time asked about is a signal's EVENT time, so a replay of the same readings mutes the same
warnings as the live day did. Two questions are asked at wall time instead, by the sweep
(``alerts.mutes``): "has a silence just set matched a warning already open" (an operator silencing
an incident expects it muted now, not at its next signal) and "has the silence ended while its
warning is still open", because that is when someone must be told.

Matching, and why:
- ``sensor``: the warning stands on that sensor's evidence alone. A silence put on one gauge under
  maintenance must not hide a flood that the other gauges see.
- ``area``: that area or any area inside it (a district's silence covers its grids).
- ``level``: that level and below: "silence the blue ones" must never hide a red.
- ``hazard``: that hazard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from config.areas import AreaIndex
from config.catalog import LEVELS, Level

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SilenceState = Literal["active", "pending", "expired"]
SILENCE_PREFIX = "silence:"


@dataclass(frozen=True, slots=True)
class Matchers:
    sensor: str | None = None
    area: str | None = None
    hazard: str | None = None
    level: Level | None = None

    def __post_init__(self) -> None:
        if self.sensor is None and self.area is None and self.hazard is None and self.level is None:
            raise ValueError("a silence needs at least one matcher: sensor, area, hazard or level")
        if self.level is not None and self.level not in LEVELS:
            raise ValueError(f"level {self.level!r} is none of {', '.join(LEVELS)}")

    def match(
        self,
        *,
        hazard: str,
        area: str,
        level: str,
        sensors: Sequence[str],
        within: Callable[[str, str], bool],
    ) -> bool:
        """Whether a warning with these properties is matched; ``within(area, ancestor)`` knows the tree."""
        if self.hazard is not None and hazard != self.hazard:
            return False
        if self.sensor is not None and (not sensors or any(s != self.sensor for s in sensors)):
            return False
        if self.area is not None and not within(area, self.area):
            return False
        return self.level is None or (level in LEVELS and LEVELS.index(level) <= LEVELS.index(self.level))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A weekly window in local time; ``end`` at or before ``start`` runs across midnight into the next day.

    The weekdays are those the window starts on, so "tue 23:00-01:00" covers Tuesday night until
    Wednesday 01:00.
    """

    weekdays: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: time
    end: time
    timezone: str

    def __post_init__(self) -> None:
        if not self.weekdays or any(d not in range(7) for d in self.weekdays):
            raise ValueError("weekdays must name at least one day")
        if self.start == self.end:
            raise ValueError("a window's end must differ from its start")
        ZoneInfo(self.timezone)  # unknown zones fail here, not at the first signal

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        t = local.time().replace(tzinfo=None)
        day = local.weekday()
        if not self.crosses_midnight:
            return day in self.weekdays and self.start <= t < self.end
        return (day in self.weekdays and t >= self.start) or ((day - 1) % 7 in self.weekdays and t < self.end)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: Matchers
    comment: str
    created_by: str
    created_at: datetime
    starts_at: datetime
    ends_at: datetime | None  # None: a recurring window until it is ended
    recurrence: Recurrence | None = None
    ended_at: datetime | None = None  # ended early (DELETE), kept for the record
    ended_by: str | None = None

    @property
    def until(self) -> datetime | None:
        """The instant the silence stops applying for good, if there is one."""
        if self.ended_at is None:
            return self.ends_at
        return self.ended_at if self.ends_at is None else min(self.ends_at, self.ended_at)

    def applies_at(self, at: datetime) -> bool:
        if at < self.starts_at or (self.until is not None and at >= self.until):
            return False
        return self.recurrence is None or self.recurrence.contains(at)

    def over_by(self, at: datetime) -> bool:
        """Ended for good by ``at``: nothing will ever match again."""
        return self.until is not None and at >= self.until

    def state(self, at: datetime) -> SilenceState:
        """ "active" (muting now), "pending" (will mute later) or "expired" (never again)."""
        if self.over_by(at):
            return "expired"
        return "active" if self.applies_at(at) else "pending"

    @property
    def mute_tag(self) -> str:
        return f"{SILENCE_PREFIX}{self.id}"


def silence_for(
    silences: Iterable[Silence],
    *,
    hazard: str,
    area: str,
    level: str,
    sensors: Sequence[str],
    at: datetime,
    within: Callable[[str, str], bool],
) -> Silence | None:
    """The silence that mutes such a warning at event time ``at``: the earliest created of those that
    match, so the answer does not depend on the order they were read in."""
    matching = [
        s
        for s in silences
        if s.applies_at(at)
        and s.matchers.match(hazard=hazard, area=area, level=level, sensors=sensors, within=within)
    ]
    return min(matching, key=lambda s: (s.created_at, s.id), default=None)


def silence_id_of(muted_by: str | None) -> str | None:
    """The silence id in a warning's ``muted_by``, or None when something else (or nothing) muted it."""
    if muted_by is None or not muted_by.startswith(SILENCE_PREFIX):
        return None
    return muted_by[len(SILENCE_PREFIX) :]


def area_within(areas: AreaIndex | None) -> Callable[[str, str], bool]:
    """``within(area, ancestor)``: the area is the ancestor or lies inside it (a grid in its district)."""

    def within(area: str, ancestor: str) -> bool:
        current: str | None = area
        while current is not None:
            if current == ancestor:
                return True
            current = areas.parent_of(current) if areas is not None and current in areas else None
        return False

    return within
