"""A megacity's sensors on the demo city's map, and their readings: the load ``bench.pipeline`` carries.

The catalog is generated, not bundled: thousands of sensors of the bundled
kinds, dealt round-robin over the demo city's community grids, each at a
random point inside its grid, so ``citywarn check`` accepts it as it would a
city's own file. Readings are quiet (a per-sensor level below the first
warning line, with noise far smaller than the kind's minimum deviation, so
no detector has reason to signal), except for the anomalies the benchmark
injects: one reading past the kind's red line, which the decision step turns
into a signal at once.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shapely.geometry import Point as ShapelyPoint

from config.areas import AreaIndex
from config.catalog import SensorKind, load_catalog
from config.settings import CITY_DIR
from ingest.keys import area_key

DEFAULT_KINDS = ("water_level", "rainfall", "gas", "power_load", "traffic_speed", "temperature")


@dataclass(frozen=True, slots=True)
class BenchSensor:
    id: str
    kind: str
    area: str
    unit: str
    level: float  # its quiet value
    noise: float  # standard deviation around it
    spike: float  # a value past the kind's red line


def quiet_level(kind: SensorKind, fraction: float) -> float:
    """A value ``fraction`` of the way from the physical limit to the first (blue) line."""
    assert kind.thresholds is not None
    t = kind.thresholds
    if t.direction == "above":
        return kind.valid_min + fraction * (t.blue - kind.valid_min)
    return kind.valid_max - fraction * (kind.valid_max - t.blue)


def past_red(kind: SensorKind) -> float:
    """A quarter of the orange-to-red gap past the red line: a line crossing, whatever the detector."""
    assert kind.thresholds is not None
    t = kind.thresholds
    return t.red + 0.25 * (t.red - t.orange)


def random_point_in(area: Any, rng: random.Random) -> tuple[float, float]:
    """A uniformly drawn (lon, lat) strictly inside the area's polygon (rejection sampling)."""
    min_x, min_y, max_x, max_y = area.geometry.bounds
    while True:
        lon, lat = rng.uniform(min_x, max_x), rng.uniform(min_y, max_y)
        if area.geometry.contains(ShapelyPoint(lon, lat)):
            return round(lon, 6), round(lat, 6)


def make_city(
    n_sensors: int, kinds: tuple[str, ...], areas: AreaIndex, path: Path, *, seed: int = 12
) -> list[BenchSensor]:
    """Write a catalog of ``n_sensors`` to ``path`` (the bundled kinds, generated sensors); return them."""
    bundled = load_catalog(CITY_DIR / "sensors.yaml").kinds
    unknown = [k for k in kinds if k not in bundled or bundled[k].thresholds is None]
    if unknown:
        raise ValueError(f"kinds without warning lines in the bundled catalog: {unknown}")
    rng = random.Random(seed)
    grids = areas.grids()
    sensors, entries = [], []
    for n in range(n_sensors):
        kind_id, grid = kinds[n % len(kinds)], grids[(n // len(kinds)) % len(grids)]
        kind = bundled[kind_id]
        lon, lat = random_point_in(grid, rng)
        sensor = BenchSensor(
            id=f"b-{grid.id}-{kind_id}-{n:06d}",
            kind=kind_id,
            area=grid.id,
            unit=kind.unit,
            level=quiet_level(kind, rng.uniform(0.2, 0.5)),
            noise=0.05 * kind.min_deviation,
            spike=past_red(kind),
        )
        sensors.append(sensor)
        entries.append({"id": sensor.id, "kind": kind_id, "area": grid.id, "lat": lat, "lon": lon})
    # JSON is YAML: the file loads as any catalog does, and writes in a fraction of PyYAML's time.
    doc = {"kinds": {k: v.model_dump(mode="json") for k, v in bundled.items()}, "sensors": entries}
    path.write_text(json.dumps(doc, indent=None), encoding="utf-8")
    return sensors


def rfc3339_ms(ts_ms: int) -> str:
    seconds, millis = divmod(ts_ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def reading(sensor: BenchSensor, ts: str, value: float) -> bytes:
    """A reading as a gateway sends it."""
    return json.dumps(
        {
            "sensor_id": sensor.id,
            "kind": sensor.kind,
            "value": value,
            "unit": sensor.unit,
            "ts": ts,
            "area": sensor.area,
        }
    ).encode()


def quiet_value(sensor: BenchSensor, rng: random.Random) -> float:
    return round(sensor.level + rng.gauss(0.0, sensor.noise), 4)


def steps(
    sensors: list[BenchSensor],
    *,
    first: int,
    count: int,
    start_ms: int,
    cadence_ms: int,
    anomalies: int,
    seed: int,
) -> tuple[list[tuple[bytes, bytes, None]], list[tuple[str, str]]]:
    """Every sensor's readings of steps ``first .. first+count-1`` (step k at ``start_ms + k*cadence_ms``),
    as (key, value, headers) messages in step order, with ``anomalies`` of them past the red line.

    Returns the messages and the injected anomalies as (sensor id, timestamp).
    """
    rng = random.Random(seed)
    spiked = {(rng.randrange(first, first + count), rng.randrange(len(sensors))) for _ in range(anomalies)}
    messages, injected = [], []
    for k in range(first, first + count):
        ts = rfc3339_ms(start_ms + k * cadence_ms)
        for n, sensor in enumerate(sensors):
            if (k, n) in spiked:
                value = sensor.spike
                injected.append((sensor.id, ts))
            else:
                value = quiet_value(sensor, rng)
            messages.append((area_key(sensor.area), reading(sensor, ts, value), None))
    return messages, injected
