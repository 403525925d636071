"""The sensor catalog: what each sensor kind measures and where its warning lines are.

Kept as a YAML file the city edits (``config/city/sensors.yaml``), validated
on load so a typo in a threshold fails at start-up, not at 3 a.m. during a
storm.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

from config.problems import Located, collect_or_raise
from config.yaml_docs import load_yaml

if TYPE_CHECKING:
    from config.areas import AreaIndex

Level = Literal["blue", "yellow", "orange", "red"]
LEVELS: tuple[Level, ...] = ("blue", "yellow", "orange", "red")
# How much harm an anomaly of the kind can do before anyone could act: ranks warnings raised by
# anomalies alone (alerts.levels). The city states why for each kind in sensors.yaml.
Criticality = Literal["low", "normal", "high"]
# The hazard of a sensor's own health (silent, stuck, impossible values): a warning for the
# maintenance team, one per sensor, kept apart from the hazard the sensor watches.
SENSOR_FAULT = "sensor_fault"
# A value must be seen repeated at least this many reporting intervals before it can count as stuck:
# fewer readings in a row are just a quiet moment.
MIN_STUCK_INTERVALS = 3


class Thresholds(BaseModel):
    """Warning lines in the four-colour order; ``above`` means higher is worse."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    direction: Literal["above", "below"] = "above"
    blue: float
    yellow: float
    orange: float
    red: float

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        lines = [self.blue, self.yellow, self.orange, self.red]
        ordered = sorted(lines) if self.direction == "above" else sorted(lines, reverse=True)
        if lines != ordered:
            raise ValueError(f"thresholds must be ordered blue..red for {self.direction!r}")
        return self

    def level_of(self, value: float) -> Level | None:
        """The highest warning line the value has crossed, or None."""
        crossed: Level | None = None
        for level in LEVELS:
            line = getattr(self, level)
            if (value >= line) if self.direction == "above" else (value <= line):
                crossed = level
        return crossed


class SensorKind(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str
    hazard: str
    valid_min: float
    valid_max: float
    thresholds: Thresholds | None = None
    # Smallest departure from the usual value worth a warning, in ``unit``.
    min_deviation: float = Field(default=0.0, ge=0)
    criticality: Criticality = "normal"
    description: str = ""
    # Sensor health (models.sensor_health). How often a sensor of the kind reports, in seconds
    # (a sensor may say otherwise); None: its silence is not watched.
    expected_interval_s: float | None = Field(default=None, gt=0)
    # How long a value may stay exactly the same before the sensor counts as stuck; None: never.
    stuck_after_s: float | None = Field(default=None, gt=0)
    # Values a healthy sensor of the kind may hold for days, at its floor (a dry rain gauge's 0).
    steady_at: tuple[float, ...] = ()
    # Consecutive readings outside valid_min..valid_max that make a fault: one is a glitch.
    out_of_range_run: int = Field(default=3, ge=1, le=1000)

    @model_validator(mode="after")
    def _range(self) -> SensorKind:
        if self.valid_min >= self.valid_max:
            raise ValueError("valid_min must be below valid_max")
        outside = [v for v in self.steady_at if not self.valid_min <= v <= self.valid_max]
        if outside:
            raise ValueError(f"steady_at {outside} lies outside valid_min..valid_max")
        return self


class Sensor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    kind: str
    area: str
    name: str = ""
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    # A gauge's own warning lines (e.g. a river's) override its kind's.
    thresholds: Thresholds | None = None
    # A sensor reporting on its own schedule (a battery gauge every 15 minutes) overrides its kind's.
    expected_interval_s: float | None = Field(default=None, gt=0)


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: dict[str, SensorKind]
    sensors: list[Sensor] = []
    _by_id: dict[str, Sensor] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object) -> None:
        self._by_id = {s.id: s for s in self.sensors}

    @model_validator(mode="after")
    def _sensors_known(self, info: ValidationInfo) -> Catalog:
        collect_or_raise(sensor_problems(self.kinds, self.sensors), info)
        return self

    def current(self) -> Catalog:
        """A file catalog is its own view and never changes (``config.live_catalog.CatalogView``)."""
        return self

    def refresh(self) -> Catalog:
        """Nothing to look for: the file is read once, at start-up."""
        return self

    def sensor(self, sensor_id: str) -> Sensor | None:
        return self._by_id.get(sensor_id)

    def thresholds_for(self, sensor_id: str, kind: str) -> Thresholds | None:
        sensor = self._by_id.get(sensor_id)
        if sensor is not None and sensor.thresholds is not None:
            return sensor.thresholds
        k = self.kinds.get(kind)
        return k.thresholds if k else None

    def expected_interval_s(self, sensor_id: str) -> float | None:
        """How often the sensor should report: its own interval, else its kind's (None: not watched)."""
        sensor = self._by_id.get(sensor_id)
        if sensor is None:
            return None
        if sensor.expected_interval_s is not None:
            return sensor.expected_interval_s
        kind = self.kinds.get(sensor.kind)
        return kind.expected_interval_s if kind else None


def sensor_problems(kinds: dict[str, SensorKind], sensors: list[Sensor]) -> list[Located]:
    """Sensors of an unknown kind, sensor ids used twice, and health rules that contradict each other."""
    problems: list[Located] = []
    first: dict[str, int] = {}
    for kind_id, kind in kinds.items():
        problems += _stuck_problems(f"kinds[{kind_id}]", kind, kind.expected_interval_s)
    for n, s in enumerate(sensors, start=1):
        problems += [
            (f"sensors[{s.id}].{field}", message) for field, message in sensor_kind_problems(kinds, s)
        ]
        if s.id in first:
            problems.append((f"sensors[{s.id}].id", f"appears twice (items {first[s.id]} and {n})"))
        else:
            first[s.id] = n
    return problems


def registration_problems(kinds: dict[str, SensorKind], areas: AreaIndex, sensor: Sensor) -> list[Located]:
    """What the catalog file's checks (load and ``citywarn check``) would say of this one sensor, by field.

    For a sensor registered over the API, which must meet the same rules as one written in the file.
    """
    return sensor_kind_problems(kinds, sensor) + placement_problems(sensor, areas)


def placement_problems(sensor: Sensor, areas: AreaIndex) -> list[Located]:
    """A known area, and a location inside it (or inside one of its grids, for a district), by field."""
    if sensor.area not in areas:
        return [("area", f"{sensor.area!r} is not an area")]
    found = areas.assign(sensor.lon, sensor.lat)
    if found == sensor.area or (found is not None and areas.parent_of(found) == sensor.area):
        return []
    place = f"in {found!r}" if found else "outside every area"
    message = f"({sensor.lon}, {sensor.lat}) lies {place}, not in its area {sensor.area!r}"
    return [("lat", message), ("lon", message)]


def sensor_kind_problems(kinds: dict[str, SensorKind], s: Sensor) -> list[Located]:
    """One sensor's problems with the kinds (unknown, or an interval too long), by bare field name."""
    if s.kind not in kinds:
        return [("kind", f"{s.kind!r} is not a kind in kinds")]
    stuck = _stuck_problem(kinds[s.kind], s.expected_interval_s)
    return [("expected_interval_s", stuck)] if stuck else []


def _stuck_problems(where: str, kind: SensorKind, interval_s: float | None) -> list[Located]:
    stuck = _stuck_problem(kind, interval_s)
    return [(f"{where}.expected_interval_s", stuck)] if stuck else []


def _stuck_problem(kind: SensorKind, interval_s: float | None) -> str | None:
    """A stuck value must be judged over several reports, or every quiet moment would be a fault."""
    if kind.stuck_after_s is None or interval_s is None:
        return None
    if kind.stuck_after_s < MIN_STUCK_INTERVALS * interval_s:
        return (
            f"{interval_s:g} s leaves less than {MIN_STUCK_INTERVALS} reports within the kind's "
            f"stuck_after_s ({kind.stuck_after_s:g} s)"
        )
    return None


def load_catalog(path: Path) -> Catalog:
    with path.open(encoding="utf-8") as f:
        return Catalog.model_validate(load_yaml(f))
