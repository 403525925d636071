"""The database side of GET /v1/stream: ``warning_events`` rows in id order, each with its warning now.

Why a cursor that remembers holes: PostgreSQL hands out sequence values when a
row is inserted, not when its transaction commits, so two writers can make id
11 visible while id 10 is still uncommitted. A reader that only asks for
``id > highest seen`` would skip 10 for ever. ``EventCursor`` keeps every id
below the highest seen that has not shown up yet as a hole and asks for it
again on each poll, for ``grace_s`` seconds; after that the id is taken for a
rolled-back transaction's (a sequence value is never given back). On SQLite a
writer holds the database's one write lock from its first statement
(``SqlWarningRepository.writing``), so ids commit in order and holes close at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from alerts import db
from alerts.schemas import WarningOut
from config.timeutil import as_utc

# The event fields a stream frame carries (the console contract's ``event`` object).
EVENT_FIELDS = (
    "id",
    "warning_id",
    "at",
    "actor",
    "action",
    "from_status",
    "to_status",
    "from_level",
    "to_level",
    "note",
)


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One ``warning_events`` row, with what filters need and its frame's data serialised once:
    every connected client is sent the same bytes."""

    id: int
    hazard: str
    area: str
    exercise: bool
    levels: tuple[str, ...]  # the level before and after the change: min_level is met by either
    data: str  # JSON: {"event": {...}, "warning": WarningOut}


def latest_id(conn: sa.Connection) -> int:
    """The highest event id committed now; 0 for an empty table."""
    return int(conn.execute(sa.select(sa.func.max(db.events.c.id))).scalar_one() or 0)


def read_events(
    conn: sa.Connection,
    *,
    after: int,
    upto: int | None = None,
    also: Collection[int] = (),
    limit: int = 500,
) -> list[FeedEvent]:
    """Events with ``after < id <= upto`` (no upper bound when None), plus the ids in ``also``,
    in id order, at most ``limit``; each joined to its warning as it stands now."""
    h = db.events.c
    rows = conn.execute(
        sa.select(db.events, *_warning_columns())
        .join(db.warnings, db.warnings.c.id == h.warning_id)
        .where(unread(h.id, after=after, upto=upto, also=also))
        .order_by(h.id)
        .limit(limit)
    ).all()
    return [_feed_event(row) for row in rows]


def unread(
    id_column: sa.ColumnElement[int], *, after: int, upto: int | None = None, also: Collection[int] = ()
) -> sa.ColumnElement[bool]:
    """A cursor's next read: ids past ``after`` (up to ``upto``), or in ``also``, its holes."""
    newer = id_column > after if upto is None else sa.and_(id_column > after, id_column <= upto)
    return sa.or_(newer, id_column.in_(sorted(also))) if also else newer


def _warning_columns() -> list[sa.Label[Any]]:
    return [c.label(f"w_{c.name}") for c in db.warnings.c if c.name != "open_key"]


def _feed_event(row: Any) -> FeedEvent:
    values = row._mapping
    warning = WarningOut.model_validate(
        {key[2:]: _utc(value) for key, value in values.items() if key.startswith("w_")}
    )
    event = {name: _utc(values[name]) for name in EVENT_FIELDS}
    event["at"] = event["at"].isoformat()
    data = json.dumps({"event": event, "warning": json.loads(warning.model_dump_json())})
    levels = tuple(lv for lv in (values["from_level"], values["to_level"]) if lv is not None)
    return FeedEvent(
        id=int(values["id"]),
        hazard=warning.hazard,
        area=warning.area,
        exercise=warning.exercise,
        levels=levels,
        data=data,
    )


def _utc(value: Any) -> Any:
    return as_utc(value) if isinstance(value, datetime) else value


@dataclass
class EventCursor:
    """Where a reader of the events stands: the highest id seen, and the lower ids not seen yet.

    ``holes`` maps each missing id to when it was first missed (``clock``); ``expire`` gives up on
    those older than ``grace_s``. At most ``max_holes`` are kept (the newest): a gap wider than that
    is a burst of rolled-back inserts, not transactions still running.
    """

    high: int
    grace_s: float = 5.0
    max_holes: int = 10_000
    clock: Callable[[], float] = time.monotonic
    holes: dict[int, float] = field(default_factory=dict)

    def saw(self, ids: Iterable[int]) -> None:
        """Record ids read: a hole filled, or a new highest id (the ids skipped become holes)."""
        now = self.clock()
        for event_id in sorted(ids):
            if event_id in self.holes:
                del self.holes[event_id]
            elif event_id > self.high:
                first_missing = max(self.high + 1, event_id - self.max_holes)
                self.holes.update(dict.fromkeys(range(first_missing, event_id), now))
                self.high = event_id
        if len(self.holes) > self.max_holes:
            for event_id in sorted(self.holes)[: len(self.holes) - self.max_holes]:
                del self.holes[event_id]

    def expire(self) -> list[int]:
        """Give up on holes missed for longer than ``grace_s``; returns them."""
        cutoff = self.clock() - self.grace_s
        gone = [event_id for event_id, since in self.holes.items() if since <= cutoff]
        for event_id in gone:
            del self.holes[event_id]
        return gone

    def poll(self, conn: sa.Connection, *, limit: int = 500) -> list[FeedEvent]:
        """The events after the cursor and in its holes, in id order; the cursor is NOT moved
        (``saw`` does that, on the caller's side, once the events are handed on)."""
        return read_events(conn, after=self.high, also=list(self.holes), limit=limit)
