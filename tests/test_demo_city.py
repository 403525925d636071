"""The demo city: its sensor catalog, simulated readings, scenarios and reports."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

import pytest

from config.areas import AreaIndex, load_areas
from config.catalog import LEVELS, Catalog, load_catalog
from config.settings import CITY_DIR
from demo.city import (
    FLOOD_DISTRICT,
    FLOOD_REPORT_GRIDS,
    GAS_GRID,
    UNDERPASS_GRID,
    DemoScenario,
    demo_readings,
    demo_reports,
    demo_scenario,
)

END = datetime(2024, 7, 15, 12, 0, tzinfo=UTC)  # 20:00 in the city (UTC+8)
SOURCES = {"hotline", "app", "grid_worker", "volunteer", "media", "social"}
CATEGORIES = {
    "flood", "waterlogging", "fire", "gas_leak", "structural_damage",
    "traffic_accident", "power_outage", "public_health", "other", None,
}  # fmt: skip
CJK = re.compile(r"[\u4e00-\u9fff]")

Series = dict[str, list[tuple[datetime, float]]]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CITY_DIR / "sensors.yaml")


@pytest.fixture(scope="module")
def areas() -> AreaIndex:
    return load_areas()


@pytest.fixture(scope="module")
def scenario(catalog: Catalog) -> DemoScenario:
    return demo_scenario(end=END, catalog=catalog)


def _parse(ts: str) -> datetime:
    assert ts.endswith("Z"), ts
    return datetime.fromisoformat(ts[:-1] + "+00:00")


def _series(readings: list[dict[str, object]]) -> Series:
    out: Series = defaultdict(list)
    for r in readings:
        out[str(r["sensor_id"])].append((_parse(str(r["ts"])), float(r["value"])))  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def series(catalog: Catalog) -> Series:
    return _series(demo_readings(end=END, catalog=catalog))


# --- catalog --------------------------------------------------------------


def test_catalog_kinds(catalog: Catalog) -> None:
    expected = {
        "water_level": ("m", "flood"),
        "rainfall": ("mm/h", "waterlogging"),
        "gas": ("%LEL", "gas_leak"),
        "pm25": ("µg/m3", "public_health"),
        "structural_strain": ("microstrain", "structural_damage"),
        "power_load": ("%", "power_outage"),
        "traffic_speed": ("km/h", "traffic_accident"),
        "temperature": ("°C", "fire"),
        "smoke": ("%obs/m", "fire"),
    }
    for kind, (unit, hazard) in expected.items():
        k = catalog.kinds[kind]
        assert (k.unit, k.hazard) == (unit, hazard)
        assert k.thresholds is not None
        assert k.valid_min <= k.thresholds.blue <= k.valid_max
        assert k.valid_min <= k.thresholds.red <= k.valid_max
    assert catalog.kinds["traffic_speed"].thresholds.direction == "below"  # type: ignore[union-attr]


def test_sensors_sit_in_their_areas(catalog: Catalog, areas: AreaIndex) -> None:
    assert 30 <= len(catalog.sensors) <= 50
    assigned = areas.assign_many([s.lon for s in catalog.sensors], [s.lat for s in catalog.sensors])
    for s, got in zip(catalog.sensors, assigned, strict=True):
        assert got == s.area, f"{s.id} at ({s.lon}, {s.lat}) is in {got}, not {s.area}"
        area = areas.area(s.area)
        assert area is not None and area.level == "grid"
        assert re.fullmatch(rf"[a-z]+-{area.parent[2:]}-\d\d", s.id), s.id  # type: ignore[index]
    assert {areas.parent_of(s.area) for s in catalog.sensors} == {d.id for d in areas.districts()}


def test_river_gauges_carry_own_lines(catalog: Catalog) -> None:
    own = [s for s in catalog.sensors if s.thresholds is not None]
    assert {s.kind for s in own} == {"water_level"}
    assert len([s for s in own if s.area.startswith("g-riverside")]) >= 3


# --- readings -------------------------------------------------------------


def test_readings_shape(catalog: Catalog) -> None:
    readings = demo_readings(end=END, catalog=catalog)
    assert len(readings) == len(catalog.sensors) * (24 * 12 + 1)
    stamps = [_parse(str(r["ts"])) for r in readings]
    assert stamps == sorted(stamps)
    assert stamps[0] == END - timedelta(hours=24) and stamps[-1] == END
    for r in readings[: len(catalog.sensors)]:
        s = catalog.sensor(str(r["sensor_id"]))
        assert s is not None
        assert set(r) == {"sensor_id", "kind", "value", "unit", "ts", "lat", "lon", "area"}
        assert (r["kind"], r["unit"]) == (s.kind, catalog.kinds[s.kind].unit)
        assert (r["lat"], r["lon"], r["area"]) == (s.lat, s.lon, s.area)


def test_values_inside_valid_range(catalog: Catalog, series: Series) -> None:
    for s in catalog.sensors:
        kind = catalog.kinds[s.kind]
        values = [v for _, v in series[s.id]]
        assert all(kind.valid_min <= v <= kind.valid_max for v in values), s.id
        assert max(values) > min(values), f"{s.id} is flat"


def _levels(catalog: Catalog, sensor_id: str, points: list[tuple[datetime, float]]):
    s = catalog.sensor(sensor_id)
    assert s is not None
    lines = catalog.thresholds_for(s.id, s.kind)
    assert lines is not None
    return [(ts, lines.level_of(v)) for ts, v in points]


@pytest.mark.parametrize("seed", [7, 1, 2024])
def test_only_scenario_sensors_cross_lines(catalog: Catalog, seed: int) -> None:
    scenario = demo_scenario(end=END, catalog=catalog)
    series = _series(demo_readings(end=END, catalog=catalog, seed=seed))
    for s in catalog.sensors:
        if s.id not in scenario.anomalous_sensor_ids:
            crossed = [lv for _, lv in _levels(catalog, s.id, series[s.id]) if lv]
            assert not crossed, f"quiet sensor {s.id} crossed {crossed[0]}"
    for a in scenario.anomalies:
        for sid in a.sensor_ids:
            levels = _levels(catalog, sid, series[sid])
            reached = {lv for ts, lv in levels if lv and a.start <= ts <= a.end}
            assert LEVELS.index(a.min_level) <= max(LEVELS.index(lv) for lv in reached), sid
            assert not [ts for ts, lv in levels if lv and not a.start <= ts <= a.end], sid


def test_scenario_description(scenario: DemoScenario, areas: AreaIndex) -> None:
    names = {a.name: a for a in scenario.anomalies}
    assert set(names) == {"rainstorm", "river_flood", "underpass_flood", "gas_leak"}
    for a in scenario.anomalies:
        assert a.grids and all(areas.parent_of(g) == a.district for g in a.grids)
    assert names["river_flood"].district == FLOOD_DISTRICT
    assert len(names["river_flood"].sensor_ids) >= 2
    assert names["underpass_flood"].grids == (UNDERPASS_GRID,)
    assert names["gas_leak"].grids == (GAS_GRID,)
    assert ("gas_leak", GAS_GRID) in scenario.hazard_areas
    assert ("flood", UNDERPASS_GRID) in scenario.hazard_areas


def test_flood_builds_up_in_the_afternoon(catalog: Catalog, scenario: DemoScenario,
                                          series: Series) -> None:  # fmt: skip
    def first(sid: str, level: str) -> datetime:
        return next(ts for ts, lv in _levels(catalog, sid, series[sid])
                    if lv and LEVELS.index(lv) >= LEVELS.index(level))  # fmt: skip

    local = timezone(timedelta(hours=8))
    for sid in scenario.anomaly("rainstorm").sensor_ids:
        assert 10 <= first(sid, "blue").astimezone(local).hour <= 15
    for name in ("river_flood", "underpass_flood"):
        for sid in scenario.anomaly(name).sensor_ids:
            assert first(sid, "blue") >= END - timedelta(hours=6)
            assert first(sid, "orange") <= END
            # Rain came first: the gauges cross after the rain's heavy phase began.
            rain0 = min(first(r, "blue") for r in scenario.anomaly("rainstorm").sensor_ids)
            assert first(sid, "blue") > rain0


def test_gas_spike_is_short_and_far_above_normal(catalog: Catalog, scenario: DemoScenario,
                                                 series: Series) -> None:  # fmt: skip
    leak = scenario.anomaly("gas_leak")
    (sid,) = leak.sensor_ids
    red = [ts for ts, lv in _levels(catalog, sid, series[sid]) if lv == "red"]
    assert timedelta(minutes=30) <= red[-1] - red[0] + timedelta(minutes=5) <= timedelta(hours=1)
    assert END - timedelta(hours=4) <= red[0] <= END - timedelta(hours=1)
    normal = [v for ts, v in series[sid] if ts < leak.start]
    assert max(v for _, v in series[sid]) > 10 * max(normal)


def test_deterministic_for_a_seed(catalog: Catalog) -> None:
    a = demo_readings(end=END, catalog=catalog, seed=11, step_s=600)
    b = demo_readings(end=END, catalog=catalog, seed=11, step_s=600)
    c = demo_readings(end=END, catalog=catalog, seed=12, step_s=600)
    assert a == b and a != c
    assert demo_reports(end=END, seed=11) == demo_reports(end=END, seed=11)
    assert demo_reports(end=END, seed=11) != demo_reports(end=END, seed=12)


def test_rejects_bad_arguments(catalog: Catalog) -> None:
    with pytest.raises(ValueError):
        demo_readings(end=datetime(2024, 7, 15, 12), catalog=catalog)
    with pytest.raises(ValueError):
        demo_readings(end=END, catalog=catalog, step_s=3600)


# --- reports --------------------------------------------------------------


@pytest.fixture(scope="module")
def reports() -> list[dict[str, object]]:
    return demo_reports(end=END)


def test_reports_shape(reports: list[dict[str, object]], areas: AreaIndex) -> None:
    keys = {"report_id", "source", "category", "text", "ts", "lat", "lon", "area"}
    stamps = [_parse(str(r["ts"])) for r in reports]
    assert stamps == sorted(stamps)
    assert END - timedelta(hours=24) <= stamps[0] and stamps[-1] <= END
    assert len({r["report_id"] for r in reports}) == len(reports)
    for r in reports:
        assert set(r) == keys and r["source"] in SOURCES and r["category"] in CATEGORIES
        assert areas.assign(float(r["lon"]), float(r["lat"])) == r["area"]  # type: ignore[arg-type]
    assert any(CJK.search(str(r["text"])) for r in reports)
    assert any(not CJK.search(str(r["text"])) for r in reports)
    background = [r for r in reports if r["category"] in ("traffic_accident", "other")]
    assert len({areas.parent_of(str(r["area"])) for r in background}) >= 3


def test_flood_reports_come_before_the_gauges(
    reports: list[dict[str, object]], catalog: Catalog, scenario: DemoScenario, series: Series
) -> None:
    flood = [r for r in reports if r["category"] in ("flood", "waterlogging")]
    assert flood and all(r["area"] in FLOOD_REPORT_GRIDS for r in flood)
    assert {r["area"] for r in flood} >= {UNDERPASS_GRID}
    first_report = min(_parse(str(r["ts"])) for r in flood)
    gauges = scenario.anomaly("river_flood").sensor_ids + scenario.anomaly("underpass_flood").sensor_ids
    first_line = min(ts for g in gauges for ts, lv in _levels(catalog, g, series[g]) if lv)
    assert first_report < first_line
    assert any(CJK.search(str(r["text"])) for r in flood)
    assert any(not CJK.search(str(r["text"])) for r in flood)


def test_gas_reports_in_the_gas_grid(reports: list[dict[str, object]],
                                     scenario: DemoScenario) -> None:  # fmt: skip
    gas = [r for r in reports if r["category"] == "gas_leak"]
    leak = scenario.anomaly("gas_leak")
    assert len(gas) >= 3 and all(r["area"] == GAS_GRID for r in gas)
    for r in gas:
        assert leak.start <= _parse(str(r["ts"])) <= leak.end + timedelta(minutes=30)
    assert any(CJK.search(str(r["text"])) for r in gas)
    assert any(not CJK.search(str(r["text"])) for r in gas)
