"""Inhibition: an open sensor_fault or power outage mutes the warnings it explains, and names itself."""

from __future__ import annotations

from alerts.inhibition import POWER_OUTAGE, RULES, Cause, inhibitor, inhibitor_id_of, mute_tag
from alerts.silences import area_within
from config.areas import load_areas
from config.catalog import SENSOR_FAULT
from config.settings import Settings
from tests.factories import CATALOG

AREAS = load_areas(Settings().areas_path)
WITHIN = area_within(AREAS)
SENSOR_AREA = {s.id: s.area for s in CATALOG.sensors}
GAUGE, OTHER_GAUGE = [s for s in CATALOG.sensors if s.kind == "water_level"][:2]


def who_mutes(causes: list[Cause], *, hazard: str = "flood", sensors: list[str]) -> Cause | None:
    return inhibitor(causes, hazard=hazard, sensors=sensors, sensor_area=SENSOR_AREA, within=WITHIN)


def fault(sensor: str, wid: str = "w-fault") -> Cause:
    return Cause(wid, SENSOR_FAULT, SENSOR_AREA[sensor], subject=sensor)


def test_every_rule_says_why() -> None:
    assert {r.cause for r in RULES} == {SENSOR_FAULT, POWER_OUTAGE}
    assert all(len(r.reason) > 20 for r in RULES)
    assert POWER_OUTAGE in {k.hazard for k in CATALOG.kinds.values()}, "the power kind's hazard"


def test_a_faulty_sensor_inhibits_warnings_standing_on_it_alone() -> None:
    cause = fault(GAUGE.id)
    assert who_mutes([cause], sensors=[GAUGE.id]) == cause
    assert who_mutes([cause], sensors=[GAUGE.id, OTHER_GAUGE.id]) is None, "another gauge still sees it"
    assert who_mutes([cause], sensors=[OTHER_GAUGE.id]) is None
    assert who_mutes([cause], sensors=[]) is None, "reports alone are not the sensor's evidence"
    assert mute_tag(cause) == "inhibited:w-fault"
    assert inhibitor_id_of(mute_tag(cause)) == "w-fault"
    assert inhibitor_id_of("silence:s1") is None


def test_a_power_outage_inhibits_warnings_whose_sensors_all_lie_in_its_area() -> None:
    district = AREAS.parent_of(GAUGE.area)
    outside = next(s for s in CATALOG.sensors if AREAS.parent_of(s.area) != district)
    inside = next(s for s in CATALOG.sensors if s.area != GAUGE.area and AREAS.parent_of(s.area) == district)
    in_grid = Cause("w-power", POWER_OUTAGE, GAUGE.area, subject=None)
    in_district = Cause("w-power-d", POWER_OUTAGE, district, subject=None)
    assert who_mutes([in_grid], sensors=[GAUGE.id]) == in_grid
    assert who_mutes([in_grid], sensors=[GAUGE.id, inside.id]) is None, "one sensor outside the outage"
    assert who_mutes([in_district], sensors=[GAUGE.id, inside.id]) == in_district, (
        "a district covers its grids"
    )
    assert who_mutes([in_district], sensors=[GAUGE.id, outside.id]) is None


def test_causes_are_not_inhibited_and_the_smallest_id_wins() -> None:
    power = Cause("w-b", POWER_OUTAGE, GAUGE.area, subject=None)
    broken = fault(GAUGE.id, "w-a")
    assert who_mutes([power, broken], sensors=[GAUGE.id]) == broken
    assert who_mutes([power], hazard=SENSOR_FAULT, sensors=[GAUGE.id]) is None, "an outage hides no fault"
    assert who_mutes([power], hazard=POWER_OUTAGE, sensors=[GAUGE.id]) is None
    assert who_mutes([Cause("w-c", "flood", GAUGE.area, None)], sensors=[GAUGE.id]) is None, "no rule"
