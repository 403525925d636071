"""District and city roll-up (alerts.rollup): the rule alone, then through the state database on
SQLite and the real PostgreSQL, with real threads for concurrent refreshes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa

from alerts import lifecycle
from alerts.repository import SqlWarningRepository
from alerts.rollup import CITY_AREA, Member, RollUp, district_of, raises, verdict
from alerts.schemas import Status, WarningOut
from alerts.service import WarningService
from config.areas import load_areas
from config.catalog import SENSOR_FAULT
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal
from tests.test_warning_races import all_at_once

AREAS = load_areas()
LATER = NOW + timedelta(hours=1)


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


def test_members_of_a_roll_up_resolved_by_hand_raise_no_new_one_until_others_do() -> None:
    dismissed = [replace(member(g), dismissed=True) for g in ("g-riverside-01", "g-riverside-02")]
    assert verdict(dismissed, already_open=False) is None
    assert verdict([*dismissed, member("g-riverside-03")], already_open=False) is None
    found = verdict([*dismissed, member("g-riverside-03"), member("g-riverside-04")], already_open=False)
    assert found is not None and len(found.members) == 4


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


# ---- through the state database, on SQLite and the real PostgreSQL ----------------------------------


@pytest.fixture
def repository(engine: sa.Engine) -> SqlWarningRepository:
    return SqlWarningRepository(engine)


@pytest.fixture
def rollup(repository: SqlWarningRepository) -> RollUp:
    return RollUp(repository, areas=AREAS)


def grid_warning(
    repository: SqlWarningRepository,
    area: str,
    level: str = "yellow",
    *,
    hazard: str = "flood",
    exercise: bool = False,
    status: Status = "active",
    covers: tuple[str, ...] = (),
    drill_id: str | None = None,
) -> str:
    """A grid warning as the warning service leaves it: open, at ``level``, covering ``covers``."""
    opened = lifecycle.new_warning(hazard, area, level, first=NOW, last=NOW + timedelta(minutes=5), now=NOW)
    warning = opened.model_copy(
        update={
            "status": status,
            "exercise": exercise,
            "covers": [area, *covers],
            "certainty": "Likely",
            "drill_id": drill_id,
        }
    )
    with repository.writing() as tx:
        tx.insert(warning)
    return warning.id


def set_level(repository: SqlWarningRepository, wid: str, level: str) -> None:
    with repository.writing() as tx:
        tx.update(wid, {"level": level})


def resolve(repository: SqlWarningRepository, wid: str, at: datetime = LATER) -> None:
    with repository.writing() as tx:
        current = tx.locked(wid)
        assert current is not None
        assert tx.change_status(wid, from_status=current.status, to_status="resolved", now=at)


def key(area: str, *, hazard: str = "flood", exercise: bool = False) -> tuple[str, str, bool]:
    return (hazard, area, exercise)


def open_rollups(repository: SqlWarningRepository, scope: str, **filters: Any) -> list[WarningOut]:
    return repository.page(scope=scope, open_only=True, **filters).items


def test_two_grid_floods_raise_one_district_warning_covering_both(
    repository: SqlWarningRepository, rollup: RollUp
) -> None:
    a = grid_warning(repository, "g-riverside-01", "orange", covers=("g-riverside-05",))
    rollup.refresh([key("g-riverside-01")], now=LATER)
    assert open_rollups(repository, "district") == []  # one grid below red is the grid's business

    b = grid_warning(repository, "g-riverside-02", "yellow")
    rollup.refresh([key("g-riverside-02")], now=LATER)
    rollup.refresh([key("g-riverside-02"), key("g-riverside-01")], now=LATER)  # again: nothing new

    [district] = open_rollups(repository, "district")
    assert (district.area, district.hazard, district.level, district.status) == (
        "d-riverside",
        "flood",
        "orange",
        "active",
    )
    assert district.covers == ["g-riverside-01", "g-riverside-02", "g-riverside-05"]
    assert district.severity == "Severe" and not district.exercise
    assert "Jiangtan North (g-riverside-01) orange" in district.explanation
    assert "Heping (g-riverside-02) yellow" in district.explanation
    assert district.headline == "Orange flood warning for Riverside District (d-riverside)"
    for child in (a, b):
        assert repository.summary(child).parent_id == district.id  # type: ignore[union-attr]
    detail = repository.detail(district.id, evidence_shown=10)
    assert detail is not None and detail.evidence == []
    assert [e.action for e in detail.events] == ["opened"]
    assert detail.events[0].actor == "citywarn" and a in detail.events[0].note
    assert open_rollups(repository, "city") == []  # one district below red is the district's business


def test_the_district_follows_its_grids_down_and_resolves_with_the_last(
    repository: SqlWarningRepository, rollup: RollUp
) -> None:
    a = grid_warning(repository, "g-riverside-01", "orange")
    b = grid_warning(repository, "g-riverside-02", "yellow")
    rollup.refresh([key("g-riverside-01"), key("g-riverside-02")], now=NOW)
    [district] = open_rollups(repository, "district")

    resolve(repository, a)
    rollup.refresh([key("g-riverside-01")], now=LATER)
    [kept] = open_rollups(repository, "district")
    assert kept.id == district.id and kept.level == "yellow"  # kept by one grid, at its level
    assert kept.covers == ["g-riverside-02"]

    resolve(repository, b, LATER + timedelta(minutes=1))
    rollup.refresh([key("g-riverside-02")], now=LATER + timedelta(minutes=1))
    assert open_rollups(repository, "district") == []
    detail = repository.detail(district.id, evidence_shown=10)
    assert detail is not None and detail.status == "resolved"
    assert [e.action for e in detail.events] == ["opened", "deescalated", "resolved"]
    down, ended = detail.events[1], detail.events[2]
    assert (down.from_level, down.to_level, down.actor) == ("orange", "yellow", "citywarn")
    assert ended.actor == "citywarn" and b in ended.note and "Heping (g-riverside-02)" in ended.note
    assert repository.summary(a).parent_id == district.id  # type: ignore[union-attr]  # stays linked


def test_escalation_is_recorded_and_returns_an_acknowledged_district_to_active(
    repository: SqlWarningRepository, rollup: RollUp
) -> None:
    a = grid_warning(repository, "g-oldtown-01", "blue")
    grid_warning(repository, "g-oldtown-02", "yellow")
    rollup.refresh([key("g-oldtown-01")], now=NOW)
    [district] = open_rollups(repository, "district")
    with repository.writing() as tx:
        assert tx.change_status(district.id, from_status="active", to_status="acknowledged", now=NOW)

    set_level(repository, a, "orange")
    rollup.refresh([key("g-oldtown-01")], now=LATER)
    detail = repository.detail(district.id, evidence_shown=0)
    assert detail is not None and (detail.level, detail.status) == ("orange", "active")
    up = detail.events[-1]
    assert (up.action, up.from_level, up.to_level) == ("escalated", "yellow", "orange")
    assert (up.from_status, up.to_status) == ("acknowledged", "active")


def test_a_district_resolved_by_hand_stays_resolved_while_its_grids_go_on(
    repository: SqlWarningRepository, rollup: RollUp
) -> None:
    grids = [grid_warning(repository, g) for g in ("g-oldtown-01", "g-oldtown-02")]
    rollup.refresh([key("g-oldtown-01")], now=NOW)
    [district] = open_rollups(repository, "district")
    resolve(repository, district.id)  # an operator: the district incident is handled
    rollup.refresh([key("g-oldtown-01"), key("d-oldtown")], now=LATER)
    assert open_rollups(repository, "district") == []

    red = grid_warning(repository, "g-oldtown-05", "red")
    rollup.refresh([key("g-oldtown-05")], now=LATER)
    [again] = open_rollups(repository, "district")
    assert again.id != district.id and again.level == "red"
    for wid in (*grids, red):
        assert repository.summary(wid).parent_id == again.id  # type: ignore[union-attr]


def test_a_red_grid_alone_raises_its_district_and_pending_grids_raise_nothing(
    repository: SqlWarningRepository, rollup: RollUp
) -> None:
    grid_warning(repository, "g-lakeside-01", "orange", status="pending")
    grid_warning(repository, "g-lakeside-02", "orange", status="pending")
    rollup.refresh([key("g-lakeside-01"), key("g-lakeside-02")], now=NOW)
    assert open_rollups(repository, "district") == []

    red = grid_warning(repository, "g-northport-03", "red")
    rollup.refresh([key("g-northport-03")], now=NOW)
    [district] = open_rollups(repository, "district")
    assert (district.area, district.level) == ("d-northport", "red")
    assert repository.summary(red).parent_id == district.id  # type: ignore[union-attr]


def test_exercise_warnings_roll_up_apart_from_real_ones(
    repository: SqlWarningRepository, rollup: RollUp
) -> None:
    real = grid_warning(repository, "g-riverside-01", "yellow")
    drill = grid_warning(repository, "g-riverside-02", "yellow", exercise=True, drill_id="drill-1")
    rollup.refresh([key("g-riverside-01"), key("g-riverside-02", exercise=True)], now=NOW)
    assert open_rollups(repository, "district") == []  # one of each is not two of either

    drill_2 = grid_warning(repository, "g-riverside-03", "orange", exercise=True, drill_id="drill-1")
    rollup.refresh([key("g-riverside-03", exercise=True)], now=NOW)
    [district] = open_rollups(repository, "district")
    assert district.exercise and district.level == "orange"
    assert district.drill_id == "drill-1"  # the drill's own roll-up: listed with the drill's warnings
    assert district.covers == ["g-riverside-02", "g-riverside-03"]
    assert repository.summary(real).parent_id is None  # type: ignore[union-attr]
    for child in (drill, drill_2):
        assert repository.summary(child).parent_id == district.id  # type: ignore[union-attr]

    grid_warning(repository, "g-riverside-04", "yellow")
    rollup.refresh([key("g-riverside-04")], now=NOW)
    real_district = open_rollups(repository, "district", exercise=False)
    assert [(w.area, w.exercise, w.level) for w in real_district] == [("d-riverside", False, "yellow")]


def test_districts_raise_the_city_and_it_resolves_with_the_last_district(
    repository: SqlWarningRepository, rollup: RollUp
) -> None:
    riverside = [grid_warning(repository, g, "orange") for g in ("g-riverside-01", "g-riverside-02")]
    rollup.refresh([key("g-riverside-01")], now=NOW)
    assert open_rollups(repository, "city") == []
    oldtown = [grid_warning(repository, g, "yellow") for g in ("g-oldtown-01", "g-oldtown-02")]
    rollup.refresh([key("g-oldtown-02")], now=NOW)

    districts = {w.area: w for w in open_rollups(repository, "district")}
    assert set(districts) == {"d-riverside", "d-oldtown"}
    [city] = open_rollups(repository, "city")
    assert (city.area, city.level, city.scope) == (CITY_AREA, "orange", "city")
    grids = ["g-oldtown-01", "g-oldtown-02", "g-riverside-01", "g-riverside-02"]
    assert city.covers == ["d-oldtown", "d-riverside", *grids]
    assert city.headline == "Orange flood warning for the city"
    for d in districts.values():
        assert repository.summary(d.id).parent_id == city.id  # type: ignore[union-attr]

    for wid in riverside:
        resolve(repository, wid)
    rollup.refresh([key("g-riverside-01"), key("g-riverside-02")], now=LATER)
    [kept] = open_rollups(repository, "city")
    assert kept.id == city.id and kept.level == "yellow"
    for wid in oldtown:
        resolve(repository, wid, LATER + timedelta(minutes=1))
    rollup.refresh([key("g-oldtown-01"), key("g-oldtown-02")], now=LATER + timedelta(minutes=1))
    assert open_rollups(repository, "city") == [] and open_rollups(repository, "district") == []
    ended = repository.detail(city.id, evidence_shown=0)
    assert ended is not None and ended.events[-1].action == "resolved"
    assert "Old Town District (d-oldtown)" in ended.events[-1].note


def test_grid_warnings_of_another_hazard_or_sensor_faults_do_not_count(
    repository: SqlWarningRepository, rollup: RollUp
) -> None:
    grid_warning(repository, "g-oldtown-01", "yellow", hazard="flood")
    grid_warning(repository, "g-oldtown-02", "yellow", hazard="gas_leak")
    grid_warning(repository, "g-oldtown-03", "red", hazard=SENSOR_FAULT)
    keys = [key("g-oldtown-01"), key("g-oldtown-02", hazard="gas_leak")]
    rollup.refresh([*keys, key("g-oldtown-03", hazard=SENSOR_FAULT)], now=NOW)
    assert open_rollups(repository, "district") == []


@pytest.mark.parametrize("state_url", ["postgresql"], indirect=True)
def test_concurrent_refreshes_of_one_district_make_one_district_warning(
    repository: SqlWarningRepository, rollup: RollUp
) -> None:
    """Eight workers refresh one district at once, none finding a district warning to lock: the
    unique open_key lets one raise it, and the others' retries update that one."""
    for round_ in range(5):
        grids = [f"g-riverside-0{n}" for n in range(1, 9)]
        wids = [grid_warning(repository, g, "yellow") for g in grids]
        at = NOW + timedelta(hours=round_)
        all_at_once([partial(rollup.refresh, [key(g)], now=at) for g in grids])
        [district] = open_rollups(repository, "district")
        assert district.covers == sorted(grids)
        assert {repository.summary(w).parent_id for w in wids} == {district.id}  # type: ignore[union-attr]
        assert [e.action for e in repository.detail(district.id, evidence_shown=0).events] == ["opened"]  # type: ignore[union-attr]
        for wid in wids:
            resolve(repository, wid)
        all_at_once([partial(rollup.refresh, [key(g)], now=at + timedelta(minutes=1)) for g in grids])
        assert open_rollups(repository, "district") == []


def test_the_warning_service_raises_and_ends_the_district_through_the_roll_up(
    engine: sa.Engine, rollup: RollUp
) -> None:
    """Wired as app.services wires it: the service tells the roll-up after each commit."""
    service = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS, areas=AREAS, rollup=rollup)
    gauges = {"g-riverside-01": "wl-riverside-01", "g-riverside-07": "wl-riverside-03"}  # not neighbours
    opened = []
    for area, sensor in gauges.items():
        # Readings over an hour: past any hold time a flood warning needs before it is active.
        batch = [signal(sensor_id=sensor, area=area, ts=NOW + timedelta(minutes=m)) for m in range(0, 61, 10)]
        opened += service.apply_signals(batch, now=NOW + timedelta(hours=1), actor="detector")
    grid_ids = set(opened)
    assert len(grid_ids) == 2

    [district] = service.list(scope="district", open_only=True).items
    assert district.area == "d-riverside" and district.level == "yellow"
    assert set(district.covers) >= set(gauges)
    assert {service.get(w).parent_id for w in grid_ids} == {district.id}  # type: ignore[union-attr]

    for wid in sorted(grid_ids):
        service.resolve(wid, now=NOW + timedelta(hours=2), actor="operator")
    assert service.list(scope="district", open_only=True).items == []
    ended = service.get(district.id)
    assert ended is not None and ended.status == "resolved" and ended.events[-1].actor == "citywarn"
