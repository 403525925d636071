"""The webhook outbox: deliveries staged in the very transaction that changes the warning.

``SqlWarningRepository.writing()`` hands ``Outbox.stage`` the history lines its transaction
recorded, just before it commits; the ``webhook_deliveries`` rows written here therefore commit
or roll back with the change they tell of, so a crash can neither lose an event nor announce one
that never happened. The delivery worker (``alerts.delivery``) sends each row's ``payload`` as is.

What integrators are told, by the history line's ``action``:

============================================  =====================================================
``opened``, ``activated``                     ``warning.opened`` (a warning opened pending tells
                                              nothing until it is activated)
``escalated`` / ``deescalated``               ``warning.escalated`` / ``warning.deescalated``
``acknowledged``                              ``warning.acknowledged``
``resolved``                                  ``warning.resolved``, if it was ever told (a pending
                                              warning that "did not hold" told nobody)
``unmuted``                                   ``warning.updated``; ``warning.opened`` if never told
``muted``                                     nothing: the mute holds its notifications
``assigned``, ``annotated``, ``handed_up``,   ``warning.updated``
``stale``, ``certainty``, ``flapping``,
``steady``, ``fault`` and any other
============================================  =====================================================

A warning is *told* from the first committed change that leaves it active or acknowledged and not
muted: that change is its ``warning.opened``, whatever its action (an operator acknowledging a
pending warning confirms it). Before that nothing is told. A warning muted when the transaction
commits tells nothing of it either, with one exception: a warning already told still sends its
``warning.resolved``, or receivers would hold it open for ever. Whether a warning was told before
is replayed from its history: lines recorded at one instant (``at``) are taken as one commit, as
every writer stamps a transaction's lines with one ``now``.

``recommendation.issued`` follows a warning's other events of the transaction when its
recommendations were written in it (first issued, or re-issued as the level moved) or it became
told in it, if it is told and unmuted at commit. Its row refers to the transaction's last line.

A subscription (enabled, not deleted, read in the same transaction) receives an event when each of
its filters passes; an empty list passes everything: the event type; the warning's hazard; the
warning's own area, equal to or inside one of its areas; the level before or after the change (for
``recommendation.issued``, the warning's level) at or above ``min_level``; and, for a drill's
warning, ``include_exercises``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby
from typing import Any

import sqlalchemy as sa

from alerts import db
from alerts.levels import rank
from alerts.schemas import WarningEvent, WarningOut
from alerts.silences import area_within
from alerts.webhook_payloads import (
    Change,
    EventType,
    RecommendationData,
    RecommendationPayload,
    WarningEventData,
    WarningEventPayload,
    WarningEventType,
    WarningState,
)
from config.areas import AreaIndex
from config.catalog import LEVELS
from config.timeutil import as_utc

_LIVE = frozenset({"active", "acknowledged"})
_BY_ACTION: dict[str, WarningEventType] = {
    "opened": "warning.opened",
    "activated": "warning.opened",
    "escalated": "warning.escalated",
    "deescalated": "warning.deescalated",
    "acknowledged": "warning.acknowledged",
    "resolved": "warning.resolved",
}


@dataclass(frozen=True, slots=True)
class Recorded:
    """A history line a transaction recorded: the warning, the line's row id, the line."""

    warning_id: str
    event_id: int
    event: WarningEvent


@dataclass(frozen=True, slots=True)
class Heard:
    """What integrators know of a warning after a commit: whether it was told, and whether it is muted."""

    told: bool = False
    muted: bool = False


def tellings(
    heard: Heard, events: Sequence[WarningEvent], *, muted_at_commit: bool
) -> tuple[list[tuple[int, WarningEventType]], Heard]:
    """The event type each line of one transaction tells (by index), and what is known after it."""
    told, muted = heard.told, heard.muted
    told_of: list[tuple[int, WarningEventType]] = []
    for i, e in enumerate(events):
        if e.action in ("muted", "unmuted"):
            muted = e.action == "muted"
            if muted:
                continue
        if muted or muted_at_commit:
            if told and e.action == "resolved":
                told_of.append((i, "warning.resolved"))
            continue
        if not told:
            if e.to_status in _LIVE:
                told_of.append((i, "warning.opened"))
                told = True
            continue
        told_of.append((i, _BY_ACTION.get(e.action, "warning.updated")))
    return told_of, Heard(told=told, muted=muted_at_commit)


def muted_after(muted: bool, events: Sequence[WarningEvent]) -> bool:
    for e in events:
        if e.action in ("muted", "unmuted"):
            muted = e.action == "muted"
    return muted


def replay(history: Sequence[WarningEvent]) -> Heard:
    """What integrators were told of a warning by these lines (oldest first), one commit per instant."""
    heard = Heard()
    for _, lines in groupby(history, key=lambda e: e.at):
        commit = list(lines)
        _, heard = tellings(heard, commit, muted_at_commit=muted_after(heard.muted, commit))
    return heard


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription's filters, as the outbox matches events against them."""

    id: str
    event_types: frozenset[str]
    hazards: frozenset[str]
    min_level: str | None
    areas: tuple[str, ...]
    include_exercises: bool

    @classmethod
    def of(cls, row: Any) -> Subscription:
        return cls(
            id=row.id,
            event_types=frozenset(row.event_types or ()),
            hazards=frozenset(row.hazards or ()),
            min_level=row.min_level,
            areas=tuple(row.areas or ()),
            include_exercises=bool(row.include_exercises),
        )


class Outbox:
    """Stages one ``webhook_deliveries`` row per (event told, matching subscription)."""

    def __init__(self, *, areas: AreaIndex | None, first_attempt_after_s: float = 0.0) -> None:
        self._within = area_within(areas)
        self.first_attempt_after = timedelta(seconds=first_attempt_after_s)

    def stage(
        self,
        conn: sa.Connection,
        recorded: Sequence[Recorded],
        *,
        reissued: Collection[str],
        warning_of: Callable[[str], WarningOut | None],
    ) -> int:
        """Write the deliveries of these lines (in recording order) in ``conn``'s transaction.

        ``reissued``: the warnings whose recommendations the transaction wrote; ``warning_of``: a warning
        as it stands in the transaction. Returns how many rows it wrote."""
        if not recorded:
            return 0
        subscriptions = self._subscriptions(conn)
        if not subscriptions:
            return 0
        by_warning: dict[str, list[Recorded]] = {}
        for r in recorded:
            by_warning.setdefault(r.warning_id, []).append(r)
        rows: list[dict[str, Any]] = []
        for warning_id, lines in by_warning.items():
            warning = warning_of(warning_id)
            if warning is not None:
                rows += self._rows(conn, warning, lines, subscriptions, reissued=warning_id in reissued)
        if rows:
            conn.execute(db.deliveries.insert(), rows)
        return len(rows)

    def _rows(
        self,
        conn: sa.Connection,
        warning: WarningOut,
        lines: list[Recorded],
        subscriptions: list[Subscription],
        *,
        reissued: bool,
    ) -> list[dict[str, Any]]:
        before = replay(_history(conn, warning.id, before=lines[0].event_id))
        muted = warning.muted_by is not None
        told_of, after = tellings(before, [r.event for r in lines], muted_at_commit=muted)
        state = WarningState.of(warning)
        rows = []
        for i, event_type in told_of:
            line = lines[i]
            payload = WarningEventPayload(
                type=event_type,
                timestamp=line.event.at,
                data=WarningEventData(warning=state, change=Change.of(line.event_id, line.event)),
            )
            levels = [lv for lv in (line.event.from_level, line.event.to_level) if lv is not None]
            rows += self._matching(
                subscriptions, warning, event_type, levels, line, payload.model_dump_json()
            )
        visible_before = before.told and not before.muted
        visible = after.told and not muted and warning.status in _LIVE
        if visible and (reissued or (not visible_before and state.recommendations)):
            last = lines[-1]
            issued = RecommendationPayload(
                type="recommendation.issued",
                timestamp=last.event.at,
                data=RecommendationData(warning=state, recommendations=state.recommendations),
            )
            rows += self._matching(
                subscriptions,
                warning,
                "recommendation.issued",
                [warning.level],
                last,
                issued.model_dump_json(),
            )
        return rows

    def _matching(
        self,
        subscriptions: list[Subscription],
        warning: WarningOut,
        event_type: EventType,
        levels: list[str],
        line: Recorded,
        payload: str,
    ) -> list[dict[str, Any]]:
        at = as_utc(line.event.at)
        return [
            {
                "message_id": f"msg_{uuid.uuid4().hex}",
                "subscription_id": s.id,
                "warning_id": warning.id,
                "event_id": line.event_id,
                "event_type": event_type,
                "payload": payload,
                "created_at": at,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": at + self.first_attempt_after,
            }
            for s in subscriptions
            if self._wants(s, warning, event_type, levels)
        ]

    def _wants(self, s: Subscription, warning: WarningOut, event_type: str, levels: list[str]) -> bool:
        if s.event_types and event_type not in s.event_types:
            return False
        if s.hazards and warning.hazard not in s.hazards:
            return False
        if warning.exercise and not s.include_exercises:
            return False
        if s.areas and not any(self._within(warning.area, a) for a in s.areas):
            return False
        if s.min_level is None:
            return True
        # A level this city does not know matches nothing, rather than fail the warning's transaction.
        return s.min_level in LEVELS and any(rank(lv) >= rank(s.min_level) for lv in levels)

    @staticmethod
    def _subscriptions(conn: sa.Connection) -> list[Subscription]:
        s = db.subscriptions.c
        rows = conn.execute(
            sa.select(db.subscriptions)
            .where(s.enabled.is_(True), s.deleted_at.is_(None))
            .order_by(s.created_at, s.id)
        ).all()
        return [Subscription.of(r) for r in rows]


def _history(conn: sa.Connection, warning_id: str, *, before: int) -> list[WarningEvent]:
    """The warning's lines recorded before this transaction's, oldest first (what ``replay`` reads)."""
    h = db.events.c
    rows = conn.execute(
        sa.select(h.at, h.actor, h.action, h.from_status, h.to_status, h.from_level, h.to_level)
        .where(h.warning_id == warning_id, h.id < before)
        .order_by(h.id)
    ).all()
    return [WarningEvent(**r._mapping, note="") for r in rows]
