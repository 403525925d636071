"""The mutes provider ``WarningService`` asks on every refresh, and the sweep that sets and lifts mutes.

``Mutes.mute_for`` answers from two snapshots refreshed at most every ``poll_s`` (a second): the
silences (re-read only when the store's revision moved; ``refresh()`` after a change in this
process shows it at once) and the open cause warnings of the inhibition rules. A refresh runs inside
the warning writer's transaction, so a query per refresh would cost every batch. A second's delay is
the price: a warning refreshed in that second is judged on the snapshot before it until its next
refresh, or the sweep's next round for a silence set or a cause closed.

``sweep`` runs on the wall clock. ``mute_matching``: an open warning that a silence in force now
matches is muted at once, so a silence set during an incident needs no new signal to apply.
``lift_mutes``: an open warning whose silence is over now (ended, expired, or its weekly window
closed) or whose cause warning is no longer open is unmuted, and ``WarningService.set_muted``
records the "unmuted" event: the notification that it is still live.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa

from alerts import db
from alerts.inhibition import RULES, Cause, Rule, inhibitor, inhibitor_id_of, mute_tag
from alerts.silence_store import SilenceStore
from alerts.silences import Silence, area_within, silence_for, silence_id_of
from config.areas import AreaIndex
from config.live_catalog import CatalogView
from config.timeutil import as_utc

log = logging.getLogger(__name__)

POLL_S = 1.0


class MuteRecorder(Protocol):
    """What the sweep needs of ``alerts.service.WarningService``: mute or unmute with a note."""

    def set_muted(self, warning_id: str, muted_by: str | None, *, now: datetime, note: str = "") -> None: ...


class SilencesAndInhibition:
    """``alerts.service.Mutes``: a silence first (an operator's explicit word), then inhibition."""

    def __init__(
        self,
        store: SilenceStore,
        *,
        catalog: CatalogView,
        areas: AreaIndex | None,
        lookback: timedelta,
        rules: Sequence[Rule] = RULES,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime],
    ) -> None:
        """``lookback``: how old a signal's event time may be (older readings are refused at ingest),
        so silences over for longer than that can never match again and are not kept in memory."""
        self.store = store
        self.catalog = catalog
        self.within = area_within(areas)
        self.lookback = lookback
        self.rules = tuple(rules)
        self.poll_s = poll_s
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._silences: list[Silence] = []
        self._causes: list[tuple[Cause, bool]] = []  # (cause, exercise)
        self._revision: object = None
        self._next_poll = -math.inf

    def mute_for(
        self, *, hazard: str, area: str, level: str, sensors: Sequence[str], at: datetime, exercise: bool
    ) -> str | None:
        silences, causes = self._snapshot()
        found = silence_for(
            silences,
            hazard=hazard,
            area=area,
            level=level,
            sensors=sensors,
            at=as_utc(at),
            within=self.within,
        )
        if found is not None:
            return found.mute_tag
        # A drill's outage never mutes a real warning, nor a real one a drill's.
        candidates = [c for c, drill in causes if drill == exercise]
        if not candidates:
            return None
        catalog = self.catalog.current()  # the areas of just these sensors: this runs on every refresh
        cause = inhibitor(
            candidates,
            hazard=hazard,
            sensors=sensors,
            sensor_area={sid: known.area for sid in sensors if (known := catalog.sensor(sid)) is not None},
            within=self.within,
            rules=self.rules,
        )
        return None if cause is None else mute_tag(cause)

    def sweep(self, warnings: MuteRecorder, *, now: datetime) -> tuple[list[str], list[str]]:
        """One round at wall time ``now``: open warnings a silence in force now matches are muted (a
        silence set during an incident mutes it at once, not at its next signal); then mutes that are
        over are lifted. Returns (muted, unmuted) warning ids."""
        now = as_utc(now)
        in_force = [s for s in self.store.not_over_by(now) if s.applies_at(now)]
        muted = mute_matching(self.store.engine, in_force, warnings, now=now, within=self.within)
        return muted, lift_mutes(self.store.engine, self.store, warnings, now=now)

    def refresh(self) -> None:
        """Read silences and causes now: after a change this process made."""
        with self._lock:
            self._poll(force=True)

    def _snapshot(self) -> tuple[list[Silence], list[tuple[Cause, bool]]]:
        # Another thread polling already: this one goes on with the snapshot it has.
        if self._clock() >= self._next_poll and self._lock.acquire(blocking=False):
            try:
                self._poll(force=False)
            finally:
                self._lock.release()
        return self._silences, self._causes

    def _poll(self, *, force: bool) -> None:
        self._next_poll = self._clock() + self.poll_s
        try:
            revision = self.store.revision()
            if force or revision != self._revision:
                self._silences = self.store.not_over_by(self._wall() - self.lookback)
                self._revision = revision
            self._causes = open_causes(self.store.engine, self.rules)
        except Exception:
            # Warnings go on with the mutes known; the next poll tries again.
            log.warning("silences or causes not read; keeping revision %s", self._revision, exc_info=True)


def open_causes(engine: sa.Engine, rules: Sequence[Rule] = RULES) -> list[tuple[Cause, bool]]:
    """Open warnings of the rules' cause hazards, each with its exercise flag."""
    w = db.warnings.c
    query = sa.select(w.id, w.hazard, w.area, w.open_key, w.exercise).where(
        w.open_key.is_not(None), w.hazard.in_({r.cause for r in rules})
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [(Cause(r.id, r.hazard, r.area, subject=_subject(r.open_key)), bool(r.exercise)) for r in rows]


def _subject(open_key: str) -> str | None:
    """The sensor in a per-sensor key (``sensor_fault|@<sensor>``, ``alerts.repository``)."""
    _, at, subject = open_key.rpartition("|@")
    return subject if at else None


def mute_matching(
    engine: sa.Engine,
    silences: Sequence[Silence],
    warnings: MuteRecorder,
    *,
    now: datetime,
    within: Callable[[str, str], bool],
) -> list[str]:
    """Mute the open, unmuted warnings one of ``silences`` matches at ``now``, judged by the sensors
    of each warning's latest signal (as a refresh judges them); returns their ids."""
    if not silences:
        return []
    w, e = db.warnings.c, db.evidence.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(w.id, w.hazard, w.area, w.level, w.last_signal_at)
            .where(w.open_key.is_not(None), w.muted_by.is_(None))
            .order_by(w.id)
        ).all()
        latest = sa.select(e.warning_id, e.sensor_id).where(
            e.warning_id.in_([r.id for r in rows]),
            e.observed_at == w.last_signal_at,
            e.warning_id == w.id,
            e.sensor_id != "",
        )
        sensors: dict[str, set[str]] = {}
        for wid, sensor in conn.execute(latest) if rows else ():
            sensors.setdefault(wid, set()).add(sensor)
    muted = []
    for row in rows:
        found = silence_for(
            silences,
            hazard=row.hazard,
            area=row.area,
            level=row.level,
            sensors=sorted(sensors.get(row.id, ())),
            at=now,
            within=within,
        )
        if found is not None:
            warnings.set_muted(row.id, found.mute_tag, now=now, note=f"silence {found.id} set")
            muted.append(row.id)
    return muted


def lift_mutes(engine: sa.Engine, store: SilenceStore, warnings: MuteRecorder, *, now: datetime) -> list[str]:
    """Unmute the open warnings whose silence is over at wall time ``now``, or whose cause is no longer
    open; returns their ids."""
    now = as_utc(now)
    w = db.warnings.c
    with engine.connect() as conn:
        muted = conn.execute(
            sa.select(w.id, w.muted_by).where(w.open_key.is_not(None), w.muted_by.is_not(None)).order_by(w.id)
        ).all()
        causes = {c for r in muted if (c := inhibitor_id_of(r.muted_by)) is not None}
        query = sa.select(w.id).where(w.id.in_(causes), w.open_key.is_not(None))
        open_ids = {r.id for r in conn.execute(query)} if causes else set()
    lifted = []
    for row in muted:
        note = _lifted_because(row.muted_by, store, open_ids, now)
        if note is not None:
            warnings.set_muted(row.id, None, now=now, note=note)
            lifted.append(row.id)
    return lifted


def _lifted_because(muted_by: str, store: SilenceStore, open_ids: set[str], now: datetime) -> str | None:
    """Why the mute is over at ``now``, or None while it holds."""
    if (silence_id := silence_id_of(muted_by)) is not None:
        silence = store.get(silence_id)
        if silence is None or silence.over_by(now):
            return f"silence {silence_id} ended"
        if not silence.applies_at(now):
            return f"silence {silence_id}: its maintenance window ended"
        return None
    if (cause_id := inhibitor_id_of(muted_by)) is not None:
        return None if cause_id in open_ids else f"warning {cause_id}, which inhibited it, is no longer open"
    return None
