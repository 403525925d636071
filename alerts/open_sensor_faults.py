"""Which sensors are faulty now: their open ``sensor_fault`` warnings (``alerts.sensor_faults``), read back.

The sensor is the warning's subject, kept in its ``open_key`` (``sensor_fault|@<sensor id>``)
exactly while the warning is open, so an open key names the sensor without parsing a headline.
The fault is the newest piece of evidence's ``details.fault``: a sensor stuck and later silent
shows "silent". Drills' warnings are left out: a fault in a drill is not a broken sensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from alerts import db
from alerts.levels import rank
from config.catalog import SENSOR_FAULT
from config.timeutil import as_utc

KEY_PREFIX = f"{SENSOR_FAULT}|@"
FAULTS = ("silent", "flatline", "out_of_range")


@dataclass(frozen=True, slots=True)
class OpenFault:
    sensor_id: str
    kind: str
    area: str
    fault: str
    since: datetime  # the first faulty reading's time (the warning's first signal)
    warning_id: str
    level: str


def open_faults(conn: sa.Connection) -> list[OpenFault]:
    """One per sensor with an open fault warning, worst first: level, then the longest-standing."""
    w, e = db.warnings.c, db.evidence.c
    warnings = conn.execute(
        sa.select(w.id, w.open_key, w.area, w.level, w.first_signal_at).where(
            w.hazard == SENSOR_FAULT, w.open_key.like(f"{KEY_PREFIX}%"), w.exercise.is_(False)
        )
    ).all()
    if not warnings:
        return []
    newest = (
        sa.select(e.warning_id, sa.func.max(e.id).label("last"))
        .where(e.warning_id.in_([r.id for r in warnings]), e.score > 0)
        .group_by(e.warning_id)
        .subquery()
    )
    latest = {
        r.warning_id: r
        for r in conn.execute(
            sa.select(e.warning_id, e.kind, e.details).join(newest, newest.c.last == e.id)
        ).all()
    }
    found = []
    for r in warnings:
        evidence = latest.get(r.id)
        fault = (evidence.details or {}).get("fault") if evidence is not None else None
        found.append(
            OpenFault(
                sensor_id=r.open_key.removeprefix(KEY_PREFIX),
                kind=evidence.kind if evidence is not None else "",
                area=r.area,
                fault=fault if fault in FAULTS else "silent",
                since=as_utc(r.first_signal_at),
                warning_id=r.id,
                level=r.level,
            )
        )
    return sorted(found, key=lambda f: (-rank(f.level), f.since, f.sensor_id))
