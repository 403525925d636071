"""Turn raw message bytes into store points, or into the reason they were refused.

Two layers: pydantic checks the shape (types, NaN, lengths), then the catalog
checks the meaning (a catalogued sensor, as catalogued: its kind, unit and
area; a physically possible value; a timestamp inside the accepted window).
Every refusal names the field and the value at fault, because an integrator
fixing a gateway at night needs to know which field to look at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from config.areas import AreaIndex
from config.catalog import Catalog, Sensor
from config.live_catalog import CatalogView
from config.timeutil import EARLIEST, LATEST, STORE_RANGE, to_ns
from ingest.schemas import Reading, ReadingFields, Rejection, reading_fields
from store.schemas import Point

Message = TypeVar("Message", bound=BaseModel)
Accepted = TypeVar("Accepted")


@dataclass(frozen=True, slots=True)
class Invalid:
    """A refused message: the reasons, and the original bytes for the dead-letter topic.

    ``observed`` is set when a catalogued sensor sent an impossible value and
    nothing else was wrong: the reading is refused, yet it says something about
    the sensor's health, so the consumer hands it to the sink too.
    """

    rejections: list[Rejection]
    raw: bytes
    observed: Point | None = None

    @property
    def reason(self) -> str:
        return "; ".join(
            f"{r.field}: {r.reason}" + (f" ({r.value})" if r.value is not None else "")
            for r in self.rejections
        )


def parse_message(
    raw: bytes,
    now: datetime,
    *,
    model: type[Message],
    check: Callable[[Message, datetime], Accepted | list[Rejection]],
) -> Accepted | Invalid:
    """Shape first (pydantic), then meaning (``check``); either failure keeps the original bytes."""
    try:
        message = model.model_validate_json(raw)
    except ValidationError as exc:
        return Invalid(rejections_from(exc), raw)
    checked = check(message, now)
    return Invalid(checked, raw) if isinstance(checked, list) else checked


def rejections_from(error: ValidationError, prefix: str = "") -> list[Rejection]:
    out = []
    for e in error.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"]) or "body"
        value = e.get("input")
        shown = None if isinstance(value, dict | list) else repr(value)[:80]
        out.append(Rejection(field=f"{prefix}{loc}", reason=_reason(e), value=shown))
    return out


# ``schemas.Timestamp``'s bounds as pydantic's errors name them (its JSON form of an instant).
_STORE_BOUNDS = {t.isoformat().replace("+00:00", "Z") for t in (EARLIEST, LATEST)}


def _reason(error: ErrorDetails) -> str:
    """pydantic's message, except that a time outside what the stores hold says so, with both ends."""
    ctx = error.get("ctx") or {}
    if {str(ctx.get("ge")), str(ctx.get("le"))} & _STORE_BOUNDS:
        return STORE_RANGE
    return error["msg"]


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The accepted timestamps around "now"; InfluxDB itself stores only 1677..2262."""

    max_future_skew_s: float
    max_past_age_s: float

    def bounds_ns(self, now: datetime) -> tuple[int, int]:
        """The earliest and latest accepted instants, in ns, around ``now``."""
        now_ns = to_ns(now)
        return now_ns - int(self.max_past_age_s * 1e9), now_ns + int(self.max_future_skew_s * 1e9)

    def check(self, ts: datetime, now: datetime, *, ts_ns: int | None = None) -> list[Rejection]:
        """``ts_ns``, when the caller has it already, saves converting ``ts`` twice."""
        ts_ns = to_ns(ts) if ts_ns is None else ts_ns
        earliest, latest = self.bounds_ns(now)
        if ts_ns > latest:
            return [Rejection(field="ts", reason="too far in the future", value=ts.isoformat())]
        if ts_ns < earliest:
            return [Rejection(field="ts", reason="older than the accepted window", value=ts.isoformat())]
        return []


_READING = TypeAdapter(ReadingFields).validator


class ReadingValidator:
    """Checks readings against the sensor catalog and the accepted time window around ``now``.

    Only catalogued sensors are taken, and only as catalogued: anyone can post
    to a sensor id, so a made-up gauge (or a real one claiming another kind,
    unit or area) would otherwise be judged by warning lines it has no right to.

    The catalog is a view (``config.live_catalog``): sensors registered over the
    API count as catalogued from the moment the view has them. A sensor id the
    view does not know makes it look for changes once per ``now`` (one batch)
    before the reading is refused, so a reading sent after its sensor was
    registered by another process is taken even if this one has not polled yet.
    """

    def __init__(
        self,
        catalog: CatalogView,
        *,
        areas: AreaIndex | None = None,
        max_future_skew_s: float,
        max_past_age_s: float,
    ) -> None:
        self.catalog = catalog
        self.areas = areas
        # A plain dict per catalog snapshot: the catalog's own lookup goes through pydantic's
        # private-attribute hook. Kept as one tuple, so a thread never pairs a snapshot with another's dict.
        self._known: tuple[Catalog, dict[str, Sensor]] = self._index(catalog.current())
        self._missed_at: datetime | None = None
        self.window = TimeWindow(max_future_skew_s=max_future_skew_s, max_past_age_s=max_past_age_s)
        # What readings are checked against for the last ``now`` seen (a batch shares one): the
        # catalog, its sensors by id and the accepted window's bounds in ns. Asked of the catalog
        # view per reading, that was a clock read and two calls each.
        self._batch: tuple[datetime | None, Catalog, dict[str, Sensor], int, int] = (None, *self._known, 0, 0)

    @staticmethod
    def _index(catalog: Catalog) -> tuple[Catalog, dict[str, Sensor]]:
        return catalog, {s.id: s for s in catalog.sensors}

    def _lookup(self, sensor_id: str, now: datetime) -> tuple[Catalog, Sensor | None]:
        """The current catalog and the sensor in it; an unknown id looks for changes once per ``now``."""
        catalog = self.catalog.current()
        known = self._reindexed(catalog)
        sensor = known[1].get(sensor_id)
        if sensor is None and self._missed_at != now:
            self._missed_at = now
            catalog = self.catalog.refresh()
            known = self._reindexed(catalog)
            sensor = known[1].get(sensor_id)
        return catalog, sensor

    def _reindexed(self, catalog: Catalog) -> tuple[Catalog, dict[str, Sensor]]:
        """The index of ``catalog``, rebuilt if it is a new snapshot (the batch's next reading sees it)."""
        known = self._known
        if known[0] is not catalog:
            known = self._known = self._index(catalog)
            self._batch = (None, *known, 0, 0)
        return known

    def _for_batch(self, now: datetime) -> tuple[datetime | None, Catalog, dict[str, Sensor], int, int]:
        """What the readings of the batch at ``now`` are checked against: the catalog as it stood at
        the batch's first reading, unless an unknown id made ``_lookup`` read it again."""
        batch = self._batch
        if batch[0] is not now:
            known = self._reindexed(self.catalog.current())
            batch = self._batch = (now, *known, *self.window.bounds_ns(now))
        return batch

    def parse(self, raw: bytes, now: datetime) -> Point | Invalid:
        try:
            # The validator itself: ``TypeAdapter.validate_json`` wraps the same call in a Python
            # method that was a quarter of its time (0.45 of 1.9 µs a reading).
            reading: ReadingFields = _READING.validate_json(raw)
        except ValidationError as exc:
            return Invalid(rejections_from(exc), raw)
        checked = self.check_fields(reading, now)
        if not isinstance(checked, list):
            return checked
        # Only the value is impossible: refused, yet evidence of the sensor's health.
        only_value = {r.field for r in checked} == {"value"}
        return Invalid(checked, raw, observed=self._as_catalogued(reading, now) if only_value else None)

    def _as_catalogued(self, r: ReadingFields, now: datetime) -> Point | None:
        _, sensor = self._lookup(r["sensor_id"], now)
        if sensor is None:
            return None
        return Point(sensor.id, sensor.kind, sensor.area, ts_ns=to_ns(r["ts"]), value=r["value"])

    def check(self, r: Reading, now: datetime) -> Point | list[Rejection]:
        """``check_fields`` for a reading validated as the model (the HTTP API's)."""
        return self.check_fields(reading_fields(r), now)

    def check_fields(self, r: ReadingFields, now: datetime) -> Point | list[Rejection]:
        """Semantic checks on a well-formed reading; all problems are reported, not just the first.

        Almost every reading passes, so passing is decided first with the fewest
        steps (about a tenth of a worker's time went here); only a reading that
        fails is looked at again to name each of its problems.
        """
        sensor_id, kind_name, value = r["sensor_id"], r["kind"], r["value"]
        unit, area = r.get("unit", ""), r.get("area")
        _, catalog, sensors, earliest, latest = self._for_batch(now)
        sensor = sensors.get(sensor_id)
        if sensor is None:
            catalog, sensor = self._lookup(sensor_id, now)
        ts_ns = to_ns(r["ts"])
        if sensor is not None and sensor.kind == kind_name:
            kind = catalog.kinds.get(kind_name)
            if (
                kind is not None
                and kind.valid_min <= value <= kind.valid_max
                and earliest <= ts_ns <= latest
                and (not unit or unit == kind.unit)
                and (area is None or area == sensor.area)
            ):
                return Point(sensor.id, sensor.kind, sensor.area, ts_ns, value)
        return self._problems(r, now, catalog, sensor, ts_ns) or [
            Rejection(field="body", reason="refused by a check that named no field")  # never expected
        ]

    def _problems(
        self, r: ReadingFields, now: datetime, catalog: Catalog, sensor: Sensor | None, ts_ns: int
    ) -> list[Rejection]:
        sensor_id, value, unit, area = r["sensor_id"], r["value"], r.get("unit", ""), r.get("area")
        problems: list[Rejection] = []
        if sensor is None:
            problems.append(Rejection(field="sensor_id", reason="not in the sensor catalog", value=sensor_id))
        elif sensor.kind != r["kind"]:
            problems.append(
                Rejection(field="kind", reason=f"sensor {sensor_id} is a {sensor.kind}", value=r["kind"])
            )
        kind_name = sensor.kind if sensor is not None else r["kind"]
        kind = catalog.kinds.get(kind_name)
        if kind is None:
            problems.append(Rejection(field="kind", reason="unknown sensor kind", value=r["kind"]))
        else:
            if unit and unit != kind.unit:
                problems.append(
                    Rejection(field="unit", reason=f"expected {kind.unit!r} for {kind_name}", value=unit)
                )
            if not kind.valid_min <= value <= kind.valid_max:
                problems.append(
                    Rejection(
                        field="value",
                        reason=f"outside the valid range {kind.valid_min}..{kind.valid_max} {kind.unit}",
                        value=repr(value),
                    )
                )
        if sensor is not None and area is not None and area != sensor.area:
            known = self.areas is None or area in self.areas
            reason = f"sensor {sensor_id} is in {sensor.area}" if known else "unknown area"
            problems.append(Rejection(field="area", reason=reason, value=area))
        problems.extend(self.window.check(r["ts"], now, ts_ns=ts_ns))
        return problems
