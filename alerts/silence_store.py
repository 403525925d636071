"""The ``silences`` table: silences as operators set them, kept after they end for the record.

A silence is never deleted: ending it early sets ``ended_at`` and ``ended_by``, so an after-action
review can still tell why a warning was muted. ``revision()`` is one small query that changes with
every insert and every end, so the mutes provider (``alerts.mutes``) re-reads the rows only then.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time

import sqlalchemy as sa

from alerts.silences import WEEKDAYS, Matchers, Recurrence, Silence
from config.timeutil import as_utc

metadata = sa.MetaData()

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("sensor", sa.String(128)),
    sa.Column("area", sa.String(128)),
    sa.Column("hazard", sa.String(64)),
    sa.Column("level", sa.String(8)),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ends_at", sa.DateTime(timezone=True)),
    # A weekly window: days as "tue,thu", local times as "HH:MM", an IANA zone.
    sa.Column("weekdays", sa.String(32)),
    sa.Column("window_start", sa.String(5)),
    sa.Column("window_end", sa.String(5)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("ended_by", sa.String(128)),
    # Set at every insert and end: with the row count, the revision the mutes provider polls.
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("silences_changed", "changed_at"),
)


class SilenceStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(
        self,
        matchers: Matchers,
        *,
        starts_at: datetime,
        ends_at: datetime | None,
        recurrence: Recurrence | None,
        comment: str,
        created_by: str,
        now: datetime,
    ) -> Silence:
        silence = Silence(
            id=str(uuid.uuid4()),
            matchers=matchers,
            comment=comment,
            created_by=created_by,
            created_at=as_utc(now),
            starts_at=as_utc(starts_at),
            ends_at=None if ends_at is None else as_utc(ends_at),
            recurrence=recurrence,
        )
        with self.engine.begin() as conn:
            conn.execute(silences.insert().values(**_row(silence), changed_at=silence.created_at))
        return silence

    def get(self, silence_id: str) -> Silence | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(silences).where(silences.c.id == silence_id)).mappings().first()
        return None if row is None else _silence(row)

    def not_over_by(self, at: datetime) -> list[Silence]:
        """Every silence that still applies at some instant at or after ``at``, oldest first."""
        c = silences.c
        at = as_utc(at)
        query = (
            sa.select(silences)
            .where(sa.or_(c.ends_at.is_(None), c.ends_at > at), sa.or_(c.ended_at.is_(None), c.ended_at > at))
            .order_by(c.created_at, c.id)
        )
        with self.engine.connect() as conn:
            return [_silence(r) for r in conn.execute(query).mappings()]

    def listed(self, *, now: datetime, include_ended: bool, limit: int) -> list[Silence]:
        """Active and upcoming silences (and ended ones when asked), newest first."""
        c = silences.c
        query = sa.select(silences).order_by(c.created_at.desc(), c.id).limit(limit)
        if not include_ended:
            now = as_utc(now)
            query = query.where(
                sa.or_(c.ends_at.is_(None), c.ends_at > now), sa.or_(c.ended_at.is_(None), c.ended_at > now)
            )
        with self.engine.connect() as conn:
            return [_silence(r) for r in conn.execute(query).mappings()]

    def end(self, silence_id: str, *, now: datetime, by: str) -> Silence | None:
        """End a silence now; one already over stays as it was (idempotent). None if unknown."""
        now = as_utc(now)
        c = silences.c
        with self.engine.begin() as conn:
            conn.execute(
                silences.update()
                .where(
                    c.id == silence_id,
                    c.ended_at.is_(None),
                    sa.or_(c.ends_at.is_(None), c.ends_at > now),
                )
                .values(ended_at=now, ended_by=by, changed_at=now)
            )
        return self.get(silence_id)

    def revision(self) -> tuple[int, datetime | None]:
        """Changes with every insert and every end: equal revisions, same silences."""
        with self.engine.connect() as conn:
            count, changed = conn.execute(
                sa.select(sa.func.count(), sa.func.max(silences.c.changed_at))
            ).one()
        return int(count), None if changed is None else as_utc(changed)


def _row(s: Silence) -> dict[str, object]:
    m, r = s.matchers, s.recurrence
    return {
        "id": s.id,
        "sensor": m.sensor,
        "area": m.area,
        "hazard": m.hazard,
        "level": m.level,
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "weekdays": None if r is None else ",".join(WEEKDAYS[d] for d in sorted(r.weekdays)),
        "window_start": None if r is None else r.start.strftime("%H:%M"),
        "window_end": None if r is None else r.end.strftime("%H:%M"),
        "timezone": None if r is None else r.timezone,
        "comment": s.comment,
        "created_by": s.created_by,
        "created_at": s.created_at,
        "ended_at": s.ended_at,
    }


def _silence(row: sa.RowMapping) -> Silence:
    recurrence = None
    if row["weekdays"]:
        recurrence = Recurrence(
            weekdays=frozenset(WEEKDAYS.index(d) for d in row["weekdays"].split(",")),
            start=time.fromisoformat(row["window_start"]),
            end=time.fromisoformat(row["window_end"]),
            timezone=row["timezone"],
        )
    ended = row["ended_at"]
    return Silence(
        id=row["id"],
        matchers=Matchers(sensor=row["sensor"], area=row["area"], hazard=row["hazard"], level=row["level"]),
        comment=row["comment"],
        created_by=row["created_by"],
        created_at=as_utc(row["created_at"]),
        starts_at=as_utc(row["starts_at"]),
        ends_at=None if row["ends_at"] is None else as_utc(row["ends_at"]),
        recurrence=recurrence,
        ended_at=None if ended is None else as_utc(ended),
        ended_by=row["ended_by"],
    )
