"""District and city roll-up (alerts.rollup): the rule alone, then through the state database on
SQLite and the real PostgreSQL, with real threads for concurrent refreshes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from alerts.rollup import CITY_AREA, Member, district_of, raises, verdict
from config.areas import load_areas
from tests.factories import NOW

AREAS = load_areas()


def member(area: str, level: str = "yellow", status: str = "active", wid: str | None = None) -> Member:
    return Member(
        id=wid or f"w-{area}",
        area=area,
        level=level,
        status=status,
        covers=(area,),
        certainty="Likely",
        confidence=0.7,
        first_signal_at=NOW,
        last_signal_at=NOW + timedelta(minutes=5),
    )


# ---- the rule -------------------------------------------------------------------------------------


def test_one_grid_below_red_raises_nothing_two_grids_do() -> None:
    one = [member("g-riverside-01", "orange")]
    assert not raises(one)
    assert verdict(one, already_open=False) is None
    two = [*one, member("g-riverside-02", "yellow")]
    assert raises(two)
    found = verdict(two, already_open=False)
    assert found is not None
    assert found.level == "orange"
    assert found.covers == ("g-riverside-01", "g-riverside-02")
    assert [m.id for m in found.members] == ["w-g-riverside-01", "w-g-riverside-02"]
    assert found.leader.area == "g-riverside-01"


def test_one_red_grid_alone_raises_the_district() -> None:
    found = verdict([member("g-riverside-01", "red")], already_open=False)
    assert found is not None and found.level == "red"


def test_two_warnings_of_one_grid_count_as_one_grid() -> None:
    same = [member("g-riverside-01", wid="a"), member("g-riverside-01", wid="b")]
    assert not raises(same)


def test_pending_members_neither_raise_nor_are_referenced() -> None:
    pending = [member("g-riverside-01", status="pending"), member("g-riverside-02", status="pending")]
    assert verdict(pending, already_open=False) is None
    mixed = [*pending, member("g-riverside-03", "red", status="pending"), member("g-riverside-04")]
    assert verdict(mixed, already_open=False) is None
    kept = verdict(mixed, already_open=True)
    assert kept is not None
    assert [m.area for m in kept.members] == ["g-riverside-04"]
    assert kept.level == "yellow"  # the pending red does not set it


def test_an_open_roll_up_is_kept_by_one_member_at_its_level_and_ends_with_none() -> None:
    kept = verdict([member("g-riverside-02", "blue", status="acknowledged")], already_open=True)
    assert kept is not None and kept.level == "blue"
    assert verdict([], already_open=True) is None
    assert verdict([member("g-riverside-02", status="resolved")], already_open=True) is None


def test_covers_is_the_union_of_what_members_cover() -> None:
    spanning = replace(member("g-riverside-01"), covers=("g-riverside-01", "g-oldtown-03"))
    found = verdict([spanning, member("g-riverside-02")], already_open=False)
    assert found is not None
    assert found.covers == ("g-oldtown-03", "g-riverside-01", "g-riverside-02")


def test_district_of_a_grid_of_a_district_and_of_an_unknown_area() -> None:
    assert district_of(AREAS, "g-riverside-03") == "d-riverside"
    assert district_of(AREAS, "d-riverside") == "d-riverside"
    assert district_of(AREAS, "g-nowhere") is None
    assert CITY_AREA not in AREAS  # the constant cannot be mistaken for an area of the city

