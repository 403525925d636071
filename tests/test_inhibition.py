"""Inhibition: an open sensor_fault or power outage mutes the warnings it explains, and names itself."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from alerts.inhibition import POWER_OUTAGE, RULES, Cause, inhibitor, inhibitor_id_of, mute_tag
from alerts.lifecycle import new_warning
from alerts.mutes import SilencesAndInhibition, lift_mutes
from alerts.repository import SqlWarningRepository
from alerts.sensor_faults import SensorFaultDesk
from alerts.service import WarningService
from alerts.silence_store import SilenceStore
from alerts.silences import area_within
from config.areas import load_areas
from config.catalog import SENSOR_FAULT
from config.settings import Settings
from config.timeutil import to_ns
from models.sensor_health import HealthEvent
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal

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


# ---- through the real warning service, on SQLite and PostgreSQL ---------------------------------


def test_an_open_sensor_fault_mutes_its_sensors_hazard_warning_until_it_resolves(engine: sa.Engine) -> None:
    store = SilenceStore(engine)
    mutes = SilencesAndInhibition(
        store, catalog=CATALOG, areas=AREAS, lookback=timedelta(days=30), poll_s=0, wall=lambda: NOW
    )
    service = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS, areas=AREAS, mutes=mutes)
    desk = SensorFaultDesk(service.repository, catalog=CATALOG, playbooks=PLAYBOOKS)
    gauge = GAUGE.id
    stuck = HealthEvent(gauge, "water_level", GAUGE.area, to_ns(NOW), 2.0, "flatline", "stuck at 2.0 m")
    [fault_id] = desk.apply([stuck], now=NOW)

    [wid] = service.apply_signals(
        [signal(sensor_id=gauge, area=GAUGE.area, ts=NOW + timedelta(minutes=1))], now=NOW, actor="detector:t"
    )
    warning = service.get(wid)
    assert warning is not None
    assert warning.muted_by == f"inhibited:{fault_id}", "the muted warning names the warning inhibiting it"
    assert warning.signal_count == 1
    assert [e.note for e in warning.events if e.action == "muted"] == [f"inhibited:{fault_id}"]

    assert lift_mutes(engine, store, service, now=NOW + timedelta(minutes=2)) == [], "the fault is open"
    healthy = HealthEvent(
        gauge, "water_level", GAUGE.area, to_ns(NOW + timedelta(minutes=3)), 2.4, None, "moving"
    )
    desk.apply([healthy], now=NOW + timedelta(minutes=3))
    assert lift_mutes(engine, store, service, now=NOW + timedelta(minutes=4)) == [wid]
    warning = service.get(wid)
    assert warning is not None and warning.muted_by is None
    [unmuted] = [e for e in warning.events if e.action == "unmuted"]
    assert fault_id in unmuted.note


def test_a_drills_outage_mutes_no_real_warning(engine: sa.Engine) -> None:
    store = SilenceStore(engine)
    mutes = SilencesAndInhibition(
        store, catalog=CATALOG, areas=AREAS, lookback=timedelta(days=30), poll_s=0, wall=lambda: NOW
    )
    outage = new_warning(POWER_OUTAGE, GAUGE.area, "yellow", first=NOW, last=NOW, now=NOW)
    with SqlWarningRepository(engine).writing() as tx:
        tx.insert(outage)
    asked = {"hazard": "flood", "area": GAUGE.area, "level": "yellow", "sensors": [GAUGE.id], "at": NOW}
    assert mutes.mute_for(**asked, exercise=False) == f"inhibited:{outage.id}"
    assert mutes.mute_for(**asked, exercise=True) is None
