"""Drills in the state database: what was started, by whom, how far it got and how it ended.

A drill is ``running`` until it ``finished`` its scenario, was ``stopped`` by an operator, ``failed``,
or was ``interrupted`` (the service stopped or died while it ran: every drill still ``running`` when
a service starts is marked so, since its thread is gone). ``running_key`` holds the scenario's name
while the drill runs and NULL after; it is unique, so two requests at once cannot both start a
drill of one scenario: the second insert fails and becomes a conflict.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field

from config.timeutil import as_utc

DrillState = Literal["running", "finished", "stopped", "failed", "interrupted"]

metadata = sa.MetaData()

drills = sa.Table(
    "drills",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("scenario", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("running_key", sa.String(64), unique=True),
    sa.Column("speed", sa.Float),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("requested_by", sa.String(128), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("readings", sa.Integer, nullable=False),
    sa.Column("reports", sa.Integer, nullable=False),
    sa.Column("signals", sa.Integer, nullable=False),
    sa.Column("warning_ids", sa.JSON, nullable=False),
    sa.Column("error", sa.Text),
)


class AlreadyRunning(RuntimeError):
    """A drill of this scenario is running: one at a time per scenario."""


class Drill(BaseModel):
    id: str
    scenario: str
    state: DrillState
    speed: float | None = Field(
        description="Scenario seconds per second of wall time; None: as fast as it can"
    )
    note: str
    requested_by: str = Field(description="The label of the API key that started it")
    started_at: datetime
    ended_at: datetime | None
    readings: int = Field(description="Scenario readings scored so far")
    reports: int = Field(description="Scenario reports read so far")
    signals: int = Field(description="Signals handed to the warning service, each marked exercise")
    warning_ids: list[str] = Field(description="The exercise warnings its signals opened or joined")
    error: str | None = Field(description="Why it failed, if it did")


class DrillStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def start(
        self, scenario: str, *, speed: float | None, note: str, requested_by: str, now: datetime
    ) -> Drill:
        """Record a new running drill; ``AlreadyRunning`` if one of the scenario runs."""
        drill = Drill(
            id=str(uuid.uuid4()),
            scenario=scenario,
            state="running",
            speed=speed,
            note=note,
            requested_by=requested_by,
            started_at=as_utc(now),
            ended_at=None,
            readings=0,
            reports=0,
            signals=0,
            warning_ids=[],
            error=None,
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(drills.insert().values(running_key=scenario, **drill.model_dump()))
        except sa.exc.IntegrityError:
            raise AlreadyRunning(scenario) from None
        return drill

    def get(self, drill_id: str) -> Drill | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(drills).where(drills.c.id == drill_id)).mappings().first()
        return None if row is None else _drill(row)

    def page(self, *, limit: int, offset: int) -> tuple[list[Drill], int]:
        """A page of drills, newest first, and how many there are."""
        query = (
            sa.select(drills).order_by(drills.c.started_at.desc(), drills.c.id).limit(limit).offset(offset)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            total = conn.execute(sa.select(sa.func.count()).select_from(drills)).scalar_one()
        return [_drill(r) for r in rows], int(total)

    def progress(
        self, drill_id: str, *, readings: int, reports: int, signals: int, warning_ids: list[str]
    ) -> None:
        """Add a batch's counts and the warnings it touched (each listed once, first seen first)."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(drills.c.warning_ids).where(drills.c.id == drill_id)).first()
            if row is None:
                return
            known: list[str] = list(row[0])
            known += [wid for wid in dict.fromkeys(warning_ids) if wid not in known]
            c = drills.c
            conn.execute(
                drills.update()
                .where(c.id == drill_id)
                .values(
                    readings=c.readings + readings,
                    reports=c.reports + reports,
                    signals=c.signals + signals,
                    warning_ids=known,
                )
            )

    def end(
        self, drill_id: str, state: DrillState, *, now: datetime, error: str | None = None
    ) -> Drill | None:
        """End a running drill in ``state``; a drill already ended keeps how it ended. Returns it."""
        c = drills.c
        with self.engine.begin() as conn:
            conn.execute(
                drills.update()
                .where(c.id == drill_id, c.state == "running")
                .values(state=state, running_key=None, ended_at=as_utc(now), error=error)
            )
        return self.get(drill_id)

    def interrupt_running(self, *, now: datetime) -> int:
        """Mark every running drill interrupted (its thread is gone); how many there were."""
        c = drills.c
        with self.engine.begin() as conn:
            result = conn.execute(
                drills.update()
                .where(c.state == "running")
                .values(state="interrupted", running_key=None, ended_at=as_utc(now))
            )
        return int(result.rowcount)


def _drill(row: Any) -> Drill:
    fields = {k: row[k] for k in Drill.model_fields}
    fields["started_at"] = as_utc(row["started_at"])
    fields["ended_at"] = as_utc(row["ended_at"]) if row["ended_at"] is not None else None
    return Drill(**fields)
