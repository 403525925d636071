"""Silences: matchers, ranges, weekly windows (across midnight, in a named zone), and which one applies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.silences import Matchers, Recurrence, Silence, area_within, silence_for, silence_id_of
from config.areas import load_areas
from config.settings import Settings

AREAS = load_areas(Settings().areas_path)
WITHIN = area_within(AREAS)
SHANGHAI = ZoneInfo("Asia/Shanghai")  # UTC+8 all year: no daylight saving time
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
GRID = AREAS.grids()[0]
DISTRICT = GRID.parent
OTHER_DISTRICT = next(d.id for d in AREAS.districts() if d.id != DISTRICT)


def matches(
    m: Matchers,
    *,
    hazard: str = "flood",
    area: str = GRID.id,
    level: str = "blue",
    sensors: Sequence[str] = ("wl-1",),
) -> bool:
    return m.match(hazard=hazard, area=area, level=level, sensors=list(sensors), within=WITHIN)


def silence(
    m: Matchers, *, starts: datetime = T0, ends: datetime | None = T0 + timedelta(hours=2), **kw: Any
) -> Silence:
    return Silence(
        id=kw.pop("id", "s1"),
        matchers=m,
        comment="pump maintenance",
        created_by="tester",
        created_at=kw.pop("created_at", T0),
        starts_at=starts,
        ends_at=ends,
        **kw,
    )


def test_a_silence_needs_a_matcher_and_a_known_level() -> None:
    with pytest.raises(ValueError, match="at least one matcher"):
        Matchers()
    with pytest.raises(ValueError, match="level"):
        Matchers(level="purple")


def test_hazard_matches_that_hazard_only() -> None:
    assert matches(Matchers(hazard="flood"))
    assert not matches(Matchers(hazard="flood"), hazard="gas_leak")


def test_sensor_matches_a_warning_standing_on_that_sensor_alone() -> None:
    m = Matchers(sensor="wl-1")
    assert matches(m, sensors=["wl-1"])
    assert matches(m, sensors=["wl-1", "wl-1"])
    assert not matches(m, sensors=["wl-1", "wl-2"]), "other gauges see the flood too: not hidden"
    assert not matches(m, sensors=["wl-2"])
    assert not matches(m, sensors=[]), "a warning of reports alone is not this sensor's"


def test_area_matches_that_area_and_the_areas_inside_it() -> None:
    assert matches(Matchers(area=GRID.id), area=GRID.id)
    assert matches(Matchers(area=DISTRICT), area=GRID.id), "a district's silence covers its grids"
    assert matches(Matchers(area=DISTRICT), area=DISTRICT)
    assert not matches(Matchers(area=GRID.id), area=DISTRICT), "a grid's silence does not cover its district"
    assert not matches(Matchers(area=OTHER_DISTRICT), area=GRID.id)
    assert not matches(Matchers(area=GRID.id), area="city"), "an area outside the tree matches only itself"


@pytest.mark.parametrize(
    ("silenced", "level", "muted"),
    [
        ("yellow", "blue", True),
        ("yellow", "yellow", True),
        ("yellow", "orange", False),
        ("blue", "red", False),
    ],
)
def test_level_matches_that_level_and_below(silenced: str, level: str, muted: bool) -> None:
    assert matches(Matchers(level=silenced), level=level) is muted


def test_every_matcher_given_must_match() -> None:
    m = Matchers(hazard="flood", area=DISTRICT, level="orange")
    assert matches(m, level="orange")
    assert not matches(m, hazard="gas_leak")
    assert not matches(m, area=AREAS.grids(OTHER_DISTRICT)[0].id)
    assert not matches(m, level="red")


def test_a_range_is_half_open_and_ending_early_stops_it() -> None:
    s = silence(Matchers(hazard="flood"))
    assert not s.applies_at(T0 - timedelta(seconds=1))
    assert s.applies_at(T0)
    assert s.applies_at(T0 + timedelta(hours=2) - timedelta(microseconds=1))
    assert not s.applies_at(T0 + timedelta(hours=2))
    ended = silence(Matchers(hazard="flood"), ended_at=T0 + timedelta(hours=1))
    assert ended.applies_at(T0 + timedelta(minutes=59)), "a replay before the end decides as live did"
    assert not ended.applies_at(T0 + timedelta(hours=1))
    assert ended.state(T0 + timedelta(minutes=30)) == "active"
    assert ended.state(T0 + timedelta(hours=1)) == "expired"
    assert silence(Matchers(hazard="flood")).state(T0 - timedelta(minutes=1)) == "pending"


def test_weekly_window_on_tuesday_night_in_shanghai() -> None:
    w = Recurrence(frozenset({1}), time(2), time(4), "Asia/Shanghai")
    tuesday_3am = datetime(2026, 12, 1, 3, 0, tzinfo=SHANGHAI)  # 1 December 2026 is a Tuesday
    assert tuesday_3am.weekday() == 1
    assert w.contains(tuesday_3am)
    assert w.contains(tuesday_3am.astimezone(UTC)), "the same instant in UTC (Monday 19:00)"
    assert not w.contains(tuesday_3am + timedelta(hours=1)), "04:00 is the end, not inside"
    assert not w.contains(tuesday_3am - timedelta(hours=1, seconds=1))
    assert not w.contains(tuesday_3am + timedelta(days=1)), "Wednesday"
    assert w.contains(tuesday_3am + timedelta(days=7)), "the next Tuesday"


def test_a_window_across_midnight_belongs_to_the_day_it_starts() -> None:
    w = Recurrence(frozenset({1}), time(23), time(1), "Asia/Shanghai")
    tuesday = datetime(2026, 12, 1, tzinfo=SHANGHAI)
    assert w.contains(tuesday.replace(hour=23, minute=30))
    assert w.contains(tuesday + timedelta(days=1, minutes=30)), "Wednesday 00:30 is Tuesday night"
    assert not w.contains(tuesday + timedelta(minutes=30)), "Tuesday 00:30 is Monday night"
    assert not w.contains(tuesday + timedelta(days=1, hours=1))
    assert not w.contains(tuesday.replace(hour=22, minute=59))


def test_a_window_refuses_no_days_an_empty_span_and_unknown_zones() -> None:
    with pytest.raises(ValueError):
        Recurrence(frozenset(), time(2), time(4), "Asia/Shanghai")
    with pytest.raises(ValueError):
        Recurrence(frozenset({1}), time(2), time(2), "Asia/Shanghai")
    with pytest.raises(Exception):  # noqa: B017 - zoneinfo raises its own error (or ValueError)
        Recurrence(frozenset({1}), time(2), time(4), "Mars/Olympus")


@given(
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.times(),
    end=st.times(),
    at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_a_time_is_in_the_window_iff_its_local_weekday_and_time_are(
    days: frozenset[int], start: time, end: time, at: datetime
) -> None:
    if start == end:
        return
    w = Recurrence(days, start, end, "Asia/Shanghai")
    local = at.astimezone(SHANGHAI)
    t = local.time().replace(tzinfo=None)
    if start < end:
        expected = local.weekday() in days and start <= t < end
    else:  # across midnight: the evening of a listed day, or the small hours after one
        yesterday = (local - timedelta(days=1)).weekday()
        expected = (local.weekday() in days and t >= start) or (yesterday in days and t < end)
    assert w.contains(at) is expected


def test_a_recurring_silence_mutes_inside_its_window_within_its_bounds() -> None:
    w = Recurrence(frozenset({1}), time(2), time(4), "Asia/Shanghai")
    starts = datetime(2026, 11, 30, tzinfo=UTC)
    s = silence(Matchers(area=DISTRICT), starts=starts, ends=None, recurrence=w)
    tuesday_3am = datetime(2026, 12, 1, 3, 0, tzinfo=SHANGHAI)
    assert s.applies_at(tuesday_3am)
    assert s.state(tuesday_3am + timedelta(hours=2)) == "pending", "it comes back next week"
    assert not s.applies_at(tuesday_3am - timedelta(days=7)), "not before it was set up"
    ended = silence(Matchers(area=DISTRICT), starts=starts, ends=None, recurrence=w, ended_at=tuesday_3am)
    assert not ended.applies_at(tuesday_3am + timedelta(days=7))
    assert ended.state(tuesday_3am) == "expired"


def test_the_earliest_created_matching_silence_is_the_one_named() -> None:
    late = silence(Matchers(hazard="flood"), id="b", created_at=T0 + timedelta(minutes=1))
    early = silence(Matchers(level="red"), id="c", created_at=T0)
    other = silence(Matchers(hazard="gas_leak"), id="a", created_at=T0 - timedelta(minutes=1))
    found = silence_for(
        [late, other, early],
        hazard="flood",
        area=GRID.id,
        level="blue",
        sensors=["wl-1"],
        at=T0 + timedelta(minutes=5),
        within=WITHIN,
    )
    assert found is early
    assert silence_id_of(found.mute_tag) == "c"
    assert silence_id_of("inhibited:w1") is None
    assert silence_id_of(None) is None
    assert (
        silence_for(
            [late],
            hazard="flood",
            area=GRID.id,
            level="blue",
            sensors=[],
            at=T0 - timedelta(hours=1),
            within=WITHIN,
        )
        is None
    )
