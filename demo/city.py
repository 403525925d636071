# Chinese report texts use full-width commas and colons, which is correct there.
# ruff: noqa: RUF001
"""The bundled demo city's simulated day: sensor readings and citizen reports.

Used for `citywarn run --demo`, the console's first impression, and
end-to-end tests: a full day of plausible readings from every catalog sensor
in which exactly two things go wrong, so a test can assert that warnings
appear for those and for nothing else:

(a) flood: a rainstorm over the Riverside district through the afternoon,
    then the Lan River gauges of that district and the Jiangtan Road
    underpass gauge rise past their orange lines in the last ~6 hours;
(b) gas leak: the methane detector in the Hongqi grid jumps above its red
    line for ~45 minutes, three hours before the end.

Scenario times are relative to ``end`` (pick an ``end`` around 20:00 local,
12:00 UTC, for an afternoon storm); daily cycles follow the city's local
time (UTC+8). Everything is deterministic for (end, step_s, seed, catalog):
each sensor draws from its own generator seeded by (seed, sensor id), so
adding a sensor changes no other sensor's values. Normal noise is bounded,
so quiet sensors stay below their blue lines for every seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np

from config.areas import AreaIndex, load_areas
from config.catalog import Catalog, Level, Sensor, Thresholds

LOCAL_UTC_OFFSET_H = 8  # China Standard Time
DAY = timedelta(hours=24)

FLOOD_DISTRICT = "d-riverside"
UNDERPASS_GRID = "g-riverside-05"
GAS_GRID = "g-oldtown-05"
# Grids with flood/waterlogging citizen reports (the underpass and the riverfront).
FLOOD_REPORT_GRIDS = ("g-riverside-01", "g-riverside-03", "g-riverside-05", "g-riverside-07")

# Storm intensity over time, as (hours relative to end, fraction of peak).
_RAIN_KEYFRAMES = (
    (-11.0, 0.0), (-9.5, 0.1), (-8.0, 0.35), (-6.5, 0.7),
    (-5.0, 1.0), (-3.0, 0.95), (-1.5, 0.5), (0.0, 0.25),
)  # fmt: skip
_RIVER_RISE_H = (-7.0, -0.5)  # smoothstep window of the river gauges' rise
_UNDERPASS_RISE_H = (-6.0, -3.0)  # underpass fills, then holds while it rains
_GAS_START_H = -3.0
_GAS_MIN = (5.0, 40.0, 50.0)  # ramp-up done, valve closed, back to normal (minutes)
_STORM_PEAK_MM_H = 60.0  # over the flood district (orange is 50, red 70)
_STORM_EDGE_MM_H = 7.0  # elsewhere: light rain only (blue is 20)


@dataclass(frozen=True)
class Anomaly:
    """One injected anomaly: which sensors cross which line, where and when."""

    name: str
    hazard: str
    district: str
    grids: tuple[str, ...]  # grids of the sensors (and of the matching reports)
    sensor_ids: tuple[str, ...]
    start: datetime  # the anomaly begins (lines are crossed after this)
    end: datetime
    min_level: Level  # every listed sensor reaches at least this level


@dataclass(frozen=True)
class DemoScenario:
    """What goes wrong in the demo day; everything not listed stays normal."""

    end: datetime
    anomalies: tuple[Anomaly, ...]

    @property
    def anomalous_sensor_ids(self) -> frozenset[str]:
        return frozenset(s for a in self.anomalies for s in a.sensor_ids)

    @property
    def hazard_areas(self) -> frozenset[tuple[str, str]]:
        """(hazard, grid) pairs that should get a warning."""
        return frozenset((a.hazard, g) for a in self.anomalies for g in a.grids)

    def anomaly(self, name: str) -> Anomaly:
        return next(a for a in self.anomalies if a.name == name)


@lru_cache(maxsize=1)
def _bundled_areas() -> AreaIndex:
    return load_areas()


def _utc_end(end: datetime) -> datetime:
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    return end.astimezone(UTC).replace(microsecond=0)


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _district(area_id: str, areas: AreaIndex) -> str | None:
    if area_id not in areas:
        return None
    return areas.parent_of(area_id) or area_id


def demo_scenario(*, end: datetime, catalog: Catalog, areas: AreaIndex | None = None) -> DemoScenario:
    """The anomalies of the demo day ending at ``end``, for this catalog's sensors."""
    areas = areas or _bundled_areas()
    end = _utc_end(end)
    h = timedelta(hours=1)

    def pick(kind: str, where: Callable[[Sensor], bool]) -> tuple[Sensor, ...]:
        return tuple(s for s in catalog.sensors if s.kind == kind and where(s))

    def in_flood(s: Sensor) -> bool:
        return _district(s.area, areas) == FLOOD_DISTRICT

    rain = pick("rainfall", in_flood)
    river = pick("water_level", lambda s: in_flood(s) and s.thresholds is not None)
    underpass = pick("water_level", lambda s: s.area == UNDERPASS_GRID and s.thresholds is None)
    gas = pick("gas", lambda s: s.area == GAS_GRID)

    def anomaly(name: str, hazard: str, sensors: tuple[Sensor, ...], start_h: float,
                end_h: float, level: Level) -> Anomaly:  # fmt: skip
        grids = tuple(sorted({s.area for s in sensors}))
        district = _district(sensors[0].area, areas) if sensors else None
        return Anomaly(name, hazard, district or "", grids, tuple(s.id for s in sensors),
                       end + start_h * h, end + end_h * h, level)  # fmt: skip

    gas_end_h = _GAS_START_H + _GAS_MIN[2] / 60
    found = (
        anomaly("rainstorm", "waterlogging", rain, _RAIN_KEYFRAMES[0][0], 0.0, "orange"),
        anomaly("river_flood", "flood", river, _RIVER_RISE_H[0], 0.0, "orange"),
        anomaly("underpass_flood", "flood", underpass, _UNDERPASS_RISE_H[0], 0.0, "orange"),
        anomaly("gas_leak", "gas_leak", gas, _GAS_START_H, gas_end_h, "red"),
    )
    return DemoScenario(end=end, anomalies=tuple(a for a in found if a.sensor_ids))


# --- signal shapes --------------------------------------------------------


def _noise(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    """Gaussian noise capped at 3 sd, so normal values provably stay normal."""
    return np.clip(rng.normal(0.0, sd, n), -3 * sd, 3 * sd)


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A daily Gaussian bump (peak 1) around a local hour, wrapping midnight."""
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _cos(hour: np.ndarray, peak_hour: float) -> np.ndarray:
    return np.cos(2 * np.pi * (hour - peak_hour) / 24.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _storm(rel_h: np.ndarray) -> np.ndarray:
    xs, ys = zip(*_RAIN_KEYFRAMES, strict=True)
    return np.interp(rel_h, xs, ys, left=0.0, right=ys[-1])


@dataclass(frozen=True)
class _Ctx:
    """What a profile needs: time axes, the sensor, its lines, its generator."""

    rel_h: np.ndarray  # hours relative to end (<= 0)
    hour: np.ndarray  # local hour of day
    sensor: Sensor
    lines: Thresholds | None
    rng: np.random.Generator
    in_flood_district: bool

    @property
    def n(self) -> int:
        return self.rel_h.shape[0]


def _water_level(c: _Ctx) -> np.ndarray:
    if c.sensor.thresholds is not None:  # a stage gauge on a river, canal or lake
        t = c.sensor.thresholds
        base = t.blue - 1.6 * (t.yellow - t.blue)
        return base + 0.03 * _cos(c.hour, 6.0) + _noise(c.rng, c.n, 0.005)
    return np.abs(0.004 + _noise(c.rng, c.n, 0.002))  # a dry road surface


def _rainfall(c: _Ctx) -> np.ndarray:
    peak = _STORM_PEAK_MM_H if c.in_flood_district else _STORM_EDGE_MM_H
    return _storm(c.rel_h) * peak * (1 + _noise(c.rng, c.n, 0.033))


def _gas(c: _Ctx) -> np.ndarray:
    cooking = _bump(c.hour, 7.0, 0.7) + _bump(c.hour, 12.0, 0.7) + _bump(c.hour, 18.5, 0.7)
    return c.rng.uniform(0.5, 2.0) + 0.6 * cooking + _noise(c.rng, c.n, 0.15)


def _pm25(c: _Ctx) -> np.ndarray:
    traffic = _bump(c.hour, 8.0, 1.2) + _bump(c.hour, 18.0, 1.2)
    level = c.rng.uniform(28, 38) + 14 * traffic + 4 * _bump(c.hour, 3.0, 3.0)
    washout = 1 - (0.5 if c.in_flood_district else 0.15) * _storm(c.rel_h)
    return level * washout + _noise(c.rng, c.n, 2.5)


def _strain(c: _Ctx) -> np.ndarray:
    return c.rng.uniform(90, 140) + 35 * _cos(c.hour, 15.0) + _noise(c.rng, c.n, 12.0)


def _power(c: _Ctx) -> np.ndarray:
    return c.rng.uniform(45, 55) + 14 * _cos(c.hour, 19.0) + _noise(c.rng, c.n, 1.5)


def _traffic(c: _Ctx) -> np.ndarray:
    slow = 1 - 0.38 * _bump(c.hour, 8.0, 1.0) - 0.40 * _bump(c.hour, 18.0, 1.2)
    return c.rng.uniform(48, 58) * slow + _noise(c.rng, c.n, 2.0)


def _temperature(c: _Ctx) -> np.ndarray:
    return c.rng.uniform(27, 31) + 2.5 * _cos(c.hour, 16.0) + _noise(c.rng, c.n, 0.2)


def _smoke(c: _Ctx) -> np.ndarray:
    return c.rng.uniform(0.05, 0.2) + _noise(c.rng, c.n, 0.02)


def _generic(c: _Ctx, vmin: float, vmax: float) -> np.ndarray:
    """A flat value halfway between the safe end and the blue line (unknown kinds)."""
    if c.lines is None:
        mid, sd = (vmin + vmax) / 2, 0.01 * (vmax - vmin)
    else:
        safe = vmin if c.lines.direction == "above" else vmax
        mid = (safe + c.lines.blue) / 2
        sd = 0.02 * abs(c.lines.blue - safe)
    return mid + _noise(c.rng, c.n, sd)


_PROFILES: dict[str, Callable[[_Ctx], np.ndarray]] = {
    "water_level": _water_level,
    "rainfall": _rainfall,
    "gas": _gas,
    "pm25": _pm25,
    "structural_strain": _strain,
    "power_load": _power,
    "traffic_speed": _traffic,
    "temperature": _temperature,
    "smoke": _smoke,
}


def _overlay(anomaly: str, c: _Ctx, values: np.ndarray) -> np.ndarray:
    """Bend a normal series into the scenario's shape."""
    t = c.lines
    assert t is not None, f"scenario sensor {c.sensor.id} has no warning lines"
    if anomaly == "river_flood":
        top = t.orange + 0.35 * (t.red - t.orange)
        lo, hi = _RIVER_RISE_H
        base = t.blue - 1.6 * (t.yellow - t.blue)
        return values + (top - base) * _smoothstep((c.rel_h - lo) / (hi - lo))
    if anomaly == "underpass_flood":
        peak = t.orange + 0.6 * (t.red - t.orange)
        lo, hi = _UNDERPASS_RISE_H
        fill = _smoothstep((c.rel_h - lo) / (hi - lo))
        drain = np.interp(c.rel_h, [-1.0, 0.0], [1.0, 0.92])  # rain easing, pumps gaining
        return np.maximum(values, peak * fill * drain + _noise(c.rng, c.n, 0.004))
    if anomaly == "gas_leak":
        peak = t.red + 0.2 * (100.0 - t.red) if t.direction == "above" else t.red
        m = (c.rel_h - _GAS_START_H) * 60.0
        ramp, closed, normal = _GAS_MIN
        env = np.interp(m, [0.0, ramp, closed, normal], [0.0, 1.0, 1.0, 0.0], left=0, right=0)
        return values + env * (peak - values) + env * _noise(c.rng, c.n, 1.5)
    return values  # rainstorm: its shape is already in _rainfall


def _series(
    sensor: Sensor, catalog: Catalog, rel_h: np.ndarray, hour: np.ndarray,
    seed: int, in_flood: bool, anomaly: str | None,
) -> np.ndarray:  # fmt: skip
    kind = catalog.kinds[sensor.kind]
    rng = np.random.default_rng([seed, zlib.crc32(sensor.id.encode())])
    ctx = _Ctx(rel_h, hour, sensor, catalog.thresholds_for(sensor.id, sensor.kind), rng, in_flood)
    profile = _PROFILES.get(sensor.kind)
    values = profile(ctx) if profile else _generic(ctx, kind.valid_min, kind.valid_max)
    if anomaly is not None:
        values = _overlay(anomaly, ctx, values)
    return np.round(np.clip(values, kind.valid_min, kind.valid_max), 3)


def demo_readings(
    *,
    end: datetime,
    step_s: int = 300,
    seed: int = 7,
    catalog: Catalog,
    areas: AreaIndex | None = None,
) -> list[dict[str, object]]:
    """Every catalog sensor every ``step_s`` seconds over [end - 24h, end], in
    time order (then catalog order). ``end`` is truncated to whole seconds.
    ``step_s`` is capped at 15 minutes so the 45-minute gas spike is sampled."""
    if not 10 <= step_s <= 900:
        raise ValueError("step_s must be between 10 and 900 seconds")
    areas = areas or _bundled_areas()
    end = _utc_end(end)
    scenario = demo_scenario(end=end, catalog=catalog, areas=areas)
    anomaly_of = {s: a.name for a in scenario.anomalies for s in a.sensor_ids}

    n = int(DAY.total_seconds()) // step_s
    offsets_s = np.arange(-n, 1, dtype=np.int64) * step_s
    rel_h = offsets_s / 3600.0
    hour = ((end.timestamp() + offsets_s) / 3600.0 + LOCAL_UTC_OFFSET_H) % 24.0
    stamps = [_iso(end + timedelta(seconds=int(o))) for o in offsets_s]

    columns = []
    for s in catalog.sensors:
        in_flood = _district(s.area, areas) == FLOOD_DISTRICT
        values = _series(s, catalog, rel_h, hour, seed, in_flood, anomaly_of.get(s.id))
        meta = {"sensor_id": s.id, "kind": s.kind, "unit": catalog.kinds[s.kind].unit}
        columns.append((meta, s, values.tolist()))
    return [
        {**meta, "value": values[k], "ts": ts, "lat": s.lat, "lon": s.lon, "area": s.area}
        for k, ts in enumerate(stamps)
        for meta, s, values in columns
    ]


# --- citizen reports ------------------------------------------------------

# (hours relative to end, grid, source, category, text). The first flood
# reports come in before any gauge crosses its blue line, as they do in life.
_FLOOD_REPORTS: tuple[tuple[float, str, str, str | None, str], ...] = (
    (-6.3, "g-riverside-05", "app", "waterlogging",
     "Water pooling at the Jiangtan Road underpass entrance, the drains are overflowing"),
    (-5.8, "g-riverside-05", "hotline", "waterlogging", "江滩路地下通道积水很深，有车熄火了"),
    (-5.4, "g-riverside-07", "grid_worker", "waterlogging",
     "滨江花园小区3栋地下车库开始进水，已通知物业抽水"),
    (-4.6, "g-riverside-03", "social", None, "码头街这边路面全是水，雨还在下"),
    (-4.2, "g-riverside-03", "volunteer", "flood",
     "Lan River is up to the top step at the Wharf Street pier and still rising"),
    (-3.6, "g-riverside-01", "media", "flood", "江滩北段江水已漫上亲水平台，江滩公园临时关闭"),
    (-3.2, "g-riverside-05", "hotline", "waterlogging",
     "Underpass flooded about half a metre deep, a bus is stuck at the entrance"),
    (-2.5, "g-riverside-07", "grid_worker", "flood", "沿江防洪墙外江水上涨很快，请求增派巡堤人员"),
    (-1.8, "g-riverside-07", "app", "waterlogging",
     "Riverside Garden block 5 basement is flooded, residents moving cars out"),
    (-1.0, "g-riverside-03", "social", None,
     "Wharf Street shops are sandbagging, water at the doors"),
    (-0.5, "g-riverside-01", "hotline", "flood", "江滩北社区低洼处有老人需要转移，请派人协助"),
)  # fmt: skip
_GAS_REPORTS: tuple[tuple[float, str, str | None, str], ...] = (
    (6, "hotline", "gas_leak", "红旗路12号楼道里煤气味很重，不敢开灯"),
    (10, "app", "gas_leak", "Strong smell of gas on Hongqi Road near the market"),
    (15, "grid_worker", "gas_leak", "红旗社区网格员：已疏散2单元居民，燃气公司已到场"),
    (22, "social", None, "Anyone else smell gas around Hongqi Road? Police tape at the corner"),
    (55, "grid_worker", "gas_leak", "燃气公司已关阀，气味减弱，正在排查管道"),
)  # (minutes after the leak starts, source, category, text)
_BACKGROUND: tuple[tuple[str | None, str], ...] = (
    ("traffic_accident", "Two cars collided near {name}, one lane blocked"),
    ("traffic_accident", "{zh}附近路口两车追尾，占用一条车道"),
    ("traffic_accident", "Scooter and taxi collision in {name}, no one hurt"),
    ("other", "{zh}工地施工噪音扰民"),
    ("other", "Loud music from a bar in {name} keeps residents awake"),
    ("other", "{zh}有一段路灯坏了，一直不亮"),
    ("other", "Pothole by the bus stop in {name}"),
    ("other", "{zh}垃圾清运不及时，有异味"),
    (None, "今天{zh}附近堵得厉害"),
    (None, "Bus 12 through {name} running late again"),
)
_BACKGROUND_SOURCES = ("hotline", "app", "grid_worker", "volunteer", "social", "hotline", "app")
_BACKGROUND_COUNT = 32


def _point_in(area_id: str, areas: AreaIndex, rng: np.random.Generator) -> tuple[float, float]:
    """A uniformly random (lon, lat) assigned to this area (rejection sampling)."""
    a = areas.area(area_id)
    if a is None:
        raise ValueError(f"unknown area {area_id!r}")
    x0, y0, x1, y1 = a.geometry.bounds
    while True:
        lon, lat = round(rng.uniform(x0, x1), 6), round(rng.uniform(y0, y1), 6)
        if areas.assign(lon, lat) == area_id:
            return lon, lat


def demo_reports(*, end: datetime, seed: int = 7, areas: AreaIndex | None = None) -> list[dict[str, object]]:
    """Citizen reports of the demo day in time order: the flood and gas-leak
    scenarios' reports (Chinese and English) plus ordinary city-wide ones."""
    areas = areas or _bundled_areas()
    end = _utc_end(end)
    rng = np.random.default_rng([seed, zlib.crc32(b"reports")])
    raw: list[tuple[datetime, str, str, str | None, str]] = []
    for hours, grid, source, category, text in _FLOOD_REPORTS:
        jitter = timedelta(seconds=int(rng.integers(-120, 121)))
        raw.append((end + timedelta(hours=hours) + jitter, grid, source, category, text))
    gas_start = end + timedelta(hours=_GAS_START_H)
    for minutes, source, category, text in _GAS_REPORTS:
        jitter = timedelta(seconds=int(rng.integers(-60, 61)))
        raw.append((gas_start + timedelta(minutes=minutes) + jitter, GAS_GRID, source, category,
                    text))  # fmt: skip
    grids = areas.grids()
    for _ in range(_BACKGROUND_COUNT):
        place = grids[int(rng.integers(len(grids)))]
        category, template = _BACKGROUND[int(rng.integers(len(_BACKGROUND)))]
        source = _BACKGROUND_SOURCES[int(rng.integers(len(_BACKGROUND_SOURCES)))]
        text = template.format(name=place.name, zh=place.name_zh or place.name)
        ts = end - timedelta(seconds=int(rng.integers(0, int(DAY.total_seconds()))))
        raw.append((ts, place.id, source, category, text))

    raw.sort(key=lambda r: (r[0], r[1], r[4]))
    reports: list[dict[str, object]] = []
    for i, (ts, grid, source, category, text) in enumerate(raw, start=1):
        lon, lat = _point_in(grid, areas, rng)
        reports.append({
            "report_id": f"demo-{end:%Y%m%d}-{i:04d}", "source": source, "category": category,
            "text": text, "ts": _iso(ts), "lat": lat, "lon": lon, "area": grid,
        })  # fmt: skip
    return reports


# --- after the day --------------------------------------------------------


def demo_live_readings(
    at: datetime,
    *,
    tick: int,
    day_end: datetime,
    seed: int = 7,
    catalog: Catalog,
    areas: AreaIndex | None = None,
) -> list[dict[str, object]]:
    """One reading per catalog sensor at ``at``, the ``tick``-th after the day that ended at ``day_end``.

    The city holds the state the day ended in (the river high, the rain
    easing, the leak over), with each sensor's own levels and daily cycle and
    fresh noise at every tick: a live stream that keeps every sensor
    reporting, and moving, after the scenario. The tick-th reading is the last
    of a series of ``tick + 1`` at the day's end state, so its levels are the
    sensor's own and only its noise is new.
    """
    if tick < 0:
        raise ValueError("tick must be 0 or more")
    areas = areas or _bundled_areas()
    day_end = _utc_end(day_end)
    at = at.astimezone(UTC).replace(microsecond=0)
    scenario = demo_scenario(end=day_end, catalog=catalog, areas=areas)
    anomaly_of = {s: a.name for a in scenario.anomalies for s in a.sensor_ids}
    rel_h = np.zeros(tick + 1)
    hour = np.full(tick + 1, (at.timestamp() / 3600.0 + LOCAL_UTC_OFFSET_H) % 24.0)
    out: list[dict[str, object]] = []
    for s in catalog.sensors:
        in_flood = _district(s.area, areas) == FLOOD_DISTRICT
        value = _series(s, catalog, rel_h, hour, seed, in_flood, anomaly_of.get(s.id))[-1]
        out.append({
            "sensor_id": s.id, "kind": s.kind, "unit": catalog.kinds[s.kind].unit, "value": float(value),
            "ts": _iso(at), "lat": s.lat, "lon": s.lon, "area": s.area,
        })  # fmt: skip
    return out
