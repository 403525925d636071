"""Sensors registered over the API, kept in the state database beside the catalog file.

A deleted sensor keeps its row with ``deleted_at`` set, and every change
takes a new ``revision``: another process sees that the registry changed by
reading one number, ``max(revision)`` (``config.live_catalog``).

That only works if revisions are handed out in commit order: were two
writers to take the same number, or commit a lower one after a reader saw a
higher, the reader would miss a change for good. So every write holds the
table's write lock from before it reads until it commits (PostgreSQL: a
self-exclusive table lock that plain reads do not wait for; SQLite:
``BEGIN IMMEDIATE``), and takes ``max(revision) + 1`` under it. Writes are
rare (an administrator onboarding a sensor), so serialising them costs
nothing that matters.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from config.catalog import Sensor
from config.problems import Located
from config.timeutil import as_utc

# Created and changed by the state database's migrations (alerts/migrations), not from here.
metadata = sa.MetaData()

registered_sensors = sa.Table(
    "registered_sensors",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("area", sa.String(128), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("thresholds", sa.JSON),
    sa.Column("expected_interval_s", sa.Float),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(160), nullable=False),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.Index("registered_sensors_revision", "revision"),
)

_SENSOR_COLUMNS = ("id", "kind", "area", "name", "lat", "lon", "thresholds", "expected_interval_s")

# A sensor's problems beyond its own fields (its kind, area and location against the city files), by field.
Check = Callable[[Sensor], list[Located]]


class SensorConflict(Exception):
    """The id belongs to a sensor of the catalog file, or to another active registration."""


class SensorNotFound(LookupError):
    """No active registered sensor has this id."""


class InvalidSensor(ValueError):
    def __init__(self, problems: list[Located]) -> None:
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RegisteredSensor:
    sensor: Sensor
    revision: int
    created_at: datetime
    updated_at: datetime
    updated_by: str


class SensorRegistry:
    """``reserved``: the catalog file's sensor ids, which only the file may define.

    ``check`` runs on every sensor before it is stored, a changed one included.
    """

    def __init__(
        self, engine: sa.Engine, *, reserved: Collection[str] = (), check: Check | None = None
    ) -> None:
        self.engine = engine
        self.reserved = frozenset(reserved)
        self.check: Check = check or (lambda _sensor: [])

    # ---- reading --------------------------------------------------------------------------------

    def revision(self) -> int:
        """The latest change's number (0: none yet); one indexed read, cheap enough to poll."""
        with self.engine.connect() as conn:
            latest = conn.execute(sa.select(sa.func.max(registered_sensors.c.revision))).scalar()
        return int(latest or 0)

    def active(self) -> list[Sensor]:
        """The registered sensors not deleted, by id."""
        return [r.sensor for r in self.listing()]

    def listing(self) -> list[RegisteredSensor]:
        c = registered_sensors.c
        query = sa.select(registered_sensors).where(c.deleted_at.is_(None)).order_by(c.id)
        with self.engine.connect() as conn:
            return [_registered(row) for row in conn.execute(query)]

    def get(self, sensor_id: str) -> RegisteredSensor | None:
        with self.engine.connect() as conn:
            row = _active_row(conn, sensor_id)
        return None if row is None else _registered(row)

    # ---- writing --------------------------------------------------------------------------------

    def add(self, sensor: Sensor, *, actor: str, now: datetime) -> RegisteredSensor:
        """Register a new sensor, or again one that was deleted; SensorConflict while its id is taken."""
        if sensor.id in self.reserved:
            raise SensorConflict(f"sensor {sensor.id} is in the catalog file")
        self._check(sensor)
        now = as_utc(now)
        with self._writing() as conn:
            found = conn.execute(
                sa.select(registered_sensors.c.deleted_at).where(registered_sensors.c.id == sensor.id)
            ).first()
            if found is not None and found.deleted_at is None:
                raise SensorConflict(f"sensor {sensor.id} is already registered")
            values = {
                **_columns(sensor),
                "revision": _next_revision(conn),
                "created_at": now,
                "updated_at": now,
                "updated_by": actor,
                "deleted_at": None,
            }
            if found is None:
                conn.execute(sa.insert(registered_sensors).values(values))
            else:
                conn.execute(
                    sa.update(registered_sensors).where(registered_sensors.c.id == sensor.id).values(values)
                )
        return RegisteredSensor(sensor, values["revision"], now, now, actor)

    def update(
        self, sensor_id: str, changes: Mapping[str, Any], *, actor: str, now: datetime
    ) -> RegisteredSensor:
        """Change some fields; the sensor they make is checked whole. A null clears an optional field."""
        self._refuse_reserved(sensor_id)
        if changes.get("id", sensor_id) != sensor_id:
            raise InvalidSensor([("id", "cannot be changed: delete the sensor and register it anew")])
        now = as_utc(now)
        # Read, merged and written under the lock, so two concurrent changes of one sensor both count.
        with self._writing() as conn:
            row = _active_row(conn, sensor_id)
            if row is None:
                raise SensorNotFound(sensor_id)
            try:
                sensor = Sensor.model_validate({**_sensor(row).model_dump(), **changes})
            except ValidationError as exc:
                raise InvalidSensor(_problems(exc)) from exc
            self._check(sensor)
            revision = _next_revision(conn)
            conn.execute(
                sa.update(registered_sensors)
                .where(registered_sensors.c.id == sensor_id)
                .values({**_columns(sensor), "revision": revision, "updated_at": now, "updated_by": actor})
            )
        return RegisteredSensor(sensor, revision, as_utc(row.created_at), now, actor)

    def delete(self, sensor_id: str, *, actor: str, now: datetime) -> int:
        """Mark the sensor deleted (its row stays, for the record); returns the change's revision."""
        self._refuse_reserved(sensor_id)
        c = registered_sensors.c
        with self._writing() as conn:
            revision = _next_revision(conn)
            done = conn.execute(
                sa.update(registered_sensors)
                .where(c.id == sensor_id, c.deleted_at.is_(None))
                .values(revision=revision, deleted_at=as_utc(now), updated_at=as_utc(now), updated_by=actor)
            )
            if done.rowcount != 1:
                raise SensorNotFound(sensor_id)
        return revision

    def _refuse_reserved(self, sensor_id: str) -> None:
        if sensor_id in self.reserved:
            raise SensorConflict(
                f"sensor {sensor_id} is in the catalog file, which is its source: change it there"
            )

    def _check(self, sensor: Sensor) -> None:
        problems = self.check(sensor)
        if problems:
            raise InvalidSensor(problems)

    @contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        """A transaction holding the registry's write lock from its first read; see the module docstring."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE registered_sensors IN SHARE ROW EXCLUSIVE MODE")
            elif conn.dialect.name == "sqlite":
                # pysqlite would begin only at the first write, after our reads.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn


def _next_revision(conn: sa.Connection) -> int:
    latest = conn.execute(sa.select(sa.func.max(registered_sensors.c.revision))).scalar()
    return int(latest or 0) + 1


def _active_row(conn: sa.Connection, sensor_id: str) -> sa.Row[Any] | None:
    c = registered_sensors.c
    return conn.execute(
        sa.select(registered_sensors).where(c.id == sensor_id, c.deleted_at.is_(None))
    ).first()


def _columns(sensor: Sensor) -> dict[str, Any]:
    values = sensor.model_dump(include=set(_SENSOR_COLUMNS))
    # SQL NULL, not a JSON null, for "no warning lines of its own".
    values["thresholds"] = sa.null() if sensor.thresholds is None else sensor.thresholds.model_dump()
    return values


def _sensor(row: sa.Row[Any]) -> Sensor:
    return Sensor.model_validate({name: getattr(row, name) for name in _SENSOR_COLUMNS})


def _registered(row: sa.Row[Any]) -> RegisteredSensor:
    return RegisteredSensor(
        sensor=_sensor(row),
        revision=int(row.revision),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        updated_by=row.updated_by,
    )


def _problems(error: ValidationError) -> list[Located]:
    """pydantic's errors by field path (``thresholds.red``), as the API names them."""
    return [(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in error.errors(include_url=False)]
