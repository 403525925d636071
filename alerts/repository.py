"""All SQL against the state database for warnings, their evidence and their history.

The service speaks to the small ``WarningRepository`` port; ``SqlWarningRepository``
is its adapter for SQLite and PostgreSQL (SQLAlchemy Core).

Concurrency, which the service relies on: ``writing()`` transactions run
one at a time, and inside one a warning read through the writer is locked
until it ends, so a level or status read there cannot be changed underneath.
On SQLite the transaction starts with ``BEGIN IMMEDIATE`` and holds the
database's write lock. On PostgreSQL it first takes one transaction-scoped
advisory lock (``WRITERS_LOCK``), then locks rows with ``SELECT ... FOR
UPDATE``. Row locks alone deadlocked: a signal batch locks the warnings it
joins in the order it meets them, neighbour fusion reaches into grids another
worker owns, and the lifecycle and the roll-up lock in id and area order.
Two workers then waited on each other until PostgreSQL broke the cycle after
its ``deadlock_timeout`` (1 s), and again on the retry: pauses of 3 to 6 s
in ``bench.pipeline``'s latency phase. A writer's transaction is short (no
network but the database's), so one at a time costs little. Status changes
are also compare-and-set, so an adapter without locks still cannot make one
transition twice.

Every datetime is bound as UTC and read back aware (``config.timeutil``):
SQLite stores naive text and compares it as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, NamedTuple, Protocol, Unpack

import sqlalchemy as sa

from alerts import db
from alerts.lifecycle import CHANGES, OPEN
from alerts.outbox import Outbox, Recorded
from alerts.schemas import (
    Evidence,
    Status,
    WarningDetail,
    WarningEvent,
    WarningFilters,
    WarningOut,
    WarningPage,
)
from alerts.timeline import DeliveryEntry, HistoryRow, Rank
from config.timeutil import as_utc, from_ns
from models.signals import Signal

_DATETIMES = (
    "first_signal_at",
    "last_signal_at",
    "created_at",
    "updated_at",
    "resolved_at",
    "responder_since",
    "activated_at",
    "clock_at",
    "below_since",
    "at",
    "event_time",
)


class Settled(NamedTuple):
    """Of a warning's evidence at or before ``at``, the reader needs only the newest ``rows``.

    The lifecycle's walk from its clock judges each window by its newest rows (``EVIDENCE_FUSED``),
    so a row older than that many rows before the clock never enters a window it judges. Reading
    all of them made each batch's warning work grow with the warning's evidence (about 2 s a batch
    at 12,000 rows), under the writers' lock, exactly while an incident goes on.
    """

    at: datetime
    rows: int


class WarningWriter(Protocol):
    """One transaction's view: warnings read here stay locked until it ends. ``connection`` is the
    transaction's own, for helpers (roll-up, silences) that write in the same transaction."""

    @property
    def connection(self) -> sa.Connection: ...

    def open_warning(
        self, hazard: str, area: str, subject: str | None = None, *, exercise: bool = False
    ) -> WarningOut | None: ...

    def latest_open_of(
        self, keys: Sequence[tuple[str, str]], *, since: datetime, exercise: bool = False
    ) -> WarningOut | None: ...

    def open_in(self, areas: Sequence[str], *, exercise: bool = False) -> list[WarningOut]: ...

    def open_with_status(self, status: Status) -> list[WarningOut]: ...

    def change_times(self, warning_id: str, *, since: datetime) -> list[datetime]: ...

    def change_times_of(self, since: Mapping[str, datetime]) -> dict[str, list[datetime]]: ...

    def last_action(self, warning_id: str) -> str | None: ...

    def locked(self, warning_id: str) -> WarningOut | None: ...

    def insert(self, warning: WarningOut, subject: str | None = None) -> None: ...

    def update(self, warning_id: str, values: dict[str, Any]) -> None: ...

    def change_status(
        self, warning_id: str, *, from_status: Status, to_status: Status, now: datetime
    ) -> bool: ...

    def add_evidence(self, warning_id: str, signals: Sequence[Signal]) -> None: ...

    def evidence_since(
        self, warning_id: str, *, since: datetime, limit: int, settled: Settled | None = None
    ) -> list[Evidence]: ...

    def evidence_since_of(
        self, since: Mapping[str, datetime], *, limit: int, settled: Mapping[str, Settled] | None = None
    ) -> dict[str, list[Evidence]]: ...

    def evidence_count(self, warning_id: str) -> int: ...

    def record(self, warning_id: str, event: WarningEvent) -> None: ...


class WarningRepository(Protocol):
    def writing(self) -> AbstractContextManager[WarningWriter]: ...

    def page(self, **filters: Unpack[WarningFilters]) -> WarningPage: ...

    def detail(self, warning_id: str, *, evidence_shown: int) -> WarningDetail | None: ...

    def evidence_in(self, areas: Sequence[str], *, since: datetime, limit: int) -> list[Evidence]: ...

    def summary(self, warning_id: str) -> WarningOut | None: ...

    def history_count(
        self, warning_id: str, *, before: datetime | None = None, owner: str | None = None
    ) -> int: ...

    def history_slice(
        self, warning_id: str, *, offset: int, limit: int, owner: str | None = None
    ) -> list[HistoryRow]: ...

    def report_evidence(self, warning_id: str) -> list[Evidence]: ...


def _in_areas(areas: Sequence[str]) -> sa.ColumnElement[bool]:
    """Warnings of these areas or covering one of them: neighbour fusion files an incident under the
    grid where it began, and a grid whose gauge joined it must still see it as its own.

    ``covers`` is a JSON list of area ids; matching its text for the quoted id works alike on SQLite
    (JSON kept as text) and PostgreSQL (json cast to text), and area ids hold no quotes. ``_`` and
    ``%`` are escaped, since ids are matched with LIKE.
    """
    w = db.warnings.c
    covers = sa.cast(w.covers, sa.Text)
    quoted = [_like_literal(json.dumps(a)) for a in areas]
    return sa.or_(w.area.in_(list(areas)), *(covers.like(f"%{q}%", escape="\\") for q in quoted))


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _open_key(hazard: str, area: str, subject: str | None = None, *, exercise: bool = False) -> str:
    """Set while a warning is open, NULL once resolved; unique, so one open warning per (hazard, area).

    A warning about one thing (``subject``: a sensor, for ``sensor_fault``) is one per subject instead;
    '@' starts no area id, so the two kinds of key never meet. A drill's warning is keyed
    ``exercise|...`` so drills and real incidents never share a warning; real keys stay as they were,
    so warnings stored before drills existed keep theirs.
    """
    key = f"{hazard}|{area}" if subject is None else f"{hazard}|@{subject}"
    return f"exercise|{key}" if exercise else key


# Any fixed 64-bit number unique among this database's advisory locks: "warnings" in ASCII
# (the migrations take "citywarn").
WRITERS_LOCK = 0x7761726E_696E6773


class SqlWarningRepository:
    """``outbox``: where the history lines a transaction records are staged as webhook deliveries, in
    that transaction (``alerts.outbox``); None stages nothing."""

    def __init__(self, engine: sa.Engine, outbox: Outbox | None = None) -> None:
        self.engine = engine
        self.outbox = outbox

    @contextmanager
    def writing(self) -> Iterator[WarningWriter]:
        with self.engine.begin() as conn:
            # pysqlite would BEGIN only at the first write, after our reads: take the lock first
            # (unless the engine is set up to begin transactions itself).
            if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITERS_LOCK})
            writer = _SqlWriter(conn)
            yield writer
            # Reached only if the body returned: a body that raised rolls back its lines, and stages none.
            if self.outbox is not None and writer.recorded:
                self.outbox.stage(conn, writer.recorded, reissued=writer.reissued, warning_of=writer.current)

    def page(self, **filters: Unpack[WarningFilters]) -> WarningPage:
        f = filters
        areas, since, until = f.get("areas"), f.get("since"), f.get("until")
        status, level, area, hazard = f.get("status"), f.get("level"), f.get("area"), f.get("hazard")
        limit, offset = f.get("limit", 50), f.get("offset", 0)
        w = db.warnings.c
        where: list[sa.ColumnElement[bool]] = []
        if areas is not None:
            where.append(_in_areas(areas))
        if f.get("open_only", False):
            where.append(w.open_key.is_not(None))
        if status:
            where.append(w.status == status)
        if level:
            where.append(w.level == level)
        if area:
            where.append(_in_areas([area]))
        if hazard:
            where.append(w.hazard == hazard)
        exercise, scope = f.get("exercise"), f.get("scope")
        if exercise is not None:
            where.append(w.exercise == exercise)
        if scope:
            where.append(w.scope == scope)
        if since:
            where.append(w.updated_at >= as_utc(since))
        if until:
            where.append(w.updated_at < as_utc(until))
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(db.warnings).where(*where)
            ).scalar_one()
            rows = conn.execute(
                sa.select(db.warnings)
                .where(*where)
                .order_by(w.updated_at.desc(), w.id)
                .limit(limit)
                .offset(offset)
            )
            items = [_warning(r) for r in rows]
        return WarningPage(items=items, total=total, limit=limit, offset=offset)

    def detail(self, warning_id: str, *, evidence_shown: int) -> WarningDetail | None:
        e, h = db.evidence.c, db.events.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.warnings).where(db.warnings.c.id == warning_id)).first()
            if row is None:
                return None
            evidence = conn.execute(
                sa.select(db.evidence)
                .where(e.warning_id == warning_id)
                .order_by(e.observed_at.desc())
                .limit(evidence_shown)
            ).all()
            history = conn.execute(
                sa.select(db.events).where(h.warning_id == warning_id).order_by(h.id)
            ).all()
        return WarningDetail(
            **_warning(row).model_dump(),
            evidence=[_evidence(r) for r in evidence],
            events=[_event(r) for r in history],
        )

    def evidence_in(self, areas: Sequence[str], *, since: datetime, limit: int) -> list[Evidence]:
        e, w = db.evidence.c, db.warnings.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(db.evidence)
                .join(db.warnings, e.warning_id == w.id)
                .where(_in_areas(areas), w.exercise.is_(False), e.observed_at >= as_utc(since))
                .order_by(e.observed_at.desc())
                .limit(limit)
            ).all()
        return [_evidence(r) for r in rows]

    # ---- the timeline (alerts.timeline): evidence rows, events and deliveries as one ordered history ----
    # ``owner``: only the deliveries to subscriptions of this API key (an integrator's own); None: all.

    def summary(self, warning_id: str) -> WarningOut | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.warnings).where(db.warnings.c.id == warning_id)).first()
        return None if row is None else _warning(row)

    def history_count(
        self, warning_id: str, *, before: datetime | None = None, owner: str | None = None
    ) -> int:
        """Evidence rows, events and deliveries of the warning; with ``before``, those strictly before it."""
        e, h, d = db.evidence.c, db.events.c, db.deliveries.c
        evidence = sa.select(sa.func.count()).where(e.warning_id == warning_id)
        events = sa.select(sa.func.count()).where(h.warning_id == warning_id)
        deliveries = sa.select(sa.func.count()).where(_deliveries_of(warning_id, owner))
        if before is not None:
            evidence = evidence.where(e.observed_at < as_utc(before))
            events = events.where(h.at < as_utc(before))
            deliveries = deliveries.where(d.created_at < as_utc(before))
        query = sa.select(
            evidence.select_from(db.evidence).scalar_subquery()
            + events.select_from(db.events).scalar_subquery()
            + deliveries.select_from(db.deliveries).scalar_subquery()
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def history_slice(
        self, warning_id: str, *, offset: int, limit: int, owner: str | None = None
    ) -> list[HistoryRow]:
        """Evidence rows, events and deliveries in time order; at one instant evidence first, then
        events, then deliveries, each in the order stored (``alerts.timeline.Rank``)."""
        e, h, d = db.evidence.c, db.events.c, db.deliveries.c
        keys = sa.union_all(
            sa.select(e.observed_at.label("at"), sa.literal(int(Rank.EVIDENCE)).label("rank"), e.id).where(
                e.warning_id == warning_id
            ),
            sa.select(h.at.label("at"), sa.literal(int(Rank.TRANSITION)).label("rank"), h.id).where(
                h.warning_id == warning_id
            ),
            sa.select(d.created_at.label("at"), sa.literal(int(Rank.DELIVERY)).label("rank"), d.id).where(
                _deliveries_of(warning_id, owner)
            ),
        ).subquery()
        page = sa.select(keys.c.rank, keys.c.id).order_by(keys.c.at, keys.c.rank, keys.c.id)
        with self.engine.connect() as conn:
            wanted = conn.execute(page.offset(offset).limit(limit)).all()
            ids = {rank: [i for r, i in wanted if r == rank] for rank in Rank}
            evidence = conn.execute(sa.select(db.evidence).where(e.id.in_(ids[Rank.EVIDENCE]))).all()
            events = conn.execute(sa.select(db.events).where(h.id.in_(ids[Rank.TRANSITION]))).all()
            deliveries = conn.execute(
                sa.select(*(d[c] for c in _DELIVERY_SHOWN)).where(d.id.in_(ids[Rank.DELIVERY]))
            ).all()
        found: dict[tuple[int, int], HistoryRow] = {(Rank.EVIDENCE, r.id): _evidence(r) for r in evidence}
        found |= {(Rank.TRANSITION, r.id): _event(r) for r in events}
        found |= {(Rank.DELIVERY, r.id): _delivery(r) for r in deliveries}
        return [found[(rank, i)] for rank, i in wanted]

    def report_evidence(self, warning_id: str) -> list[Evidence]:
        """The warning's evidence from bursts of reports, oldest first: what its reports are found by."""
        e = db.evidence.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(db.evidence)
                .where(e.warning_id == warning_id, e.source == "reports")
                .order_by(e.observed_at, e.id)
            ).all()
        return [_evidence(r) for r in rows]


class _SqlWriter:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        # For the outbox: the lines recorded, in order, and the warnings whose recommendations were written.
        self.recorded: list[Recorded] = []
        self.reissued: set[str] = set()

    @property
    def connection(self) -> sa.Connection:
        return self.conn

    def _one_locked(self, query: sa.Select[Any]) -> WarningOut | None:
        row = self.conn.execute(query.with_for_update()).first()
        return None if row is None else _warning(row)

    def open_warning(
        self, hazard: str, area: str, subject: str | None = None, *, exercise: bool = False
    ) -> WarningOut | None:
        key = _open_key(hazard, area, subject, exercise=exercise)
        return self._one_locked(sa.select(db.warnings).where(db.warnings.c.open_key == key))

    def latest_open_of(
        self, keys: Sequence[tuple[str, str]], *, since: datetime, exercise: bool = False
    ) -> WarningOut | None:
        w = db.warnings.c
        return self._one_locked(
            sa.select(db.warnings)
            .where(
                w.open_key.in_([_open_key(*k, exercise=exercise) for k in keys]),
                w.last_signal_at >= as_utc(since),
            )
            .order_by(w.last_signal_at.desc())
            .limit(1)
        )

    def open_in(self, areas: Sequence[str], *, exercise: bool = False) -> list[WarningOut]:
        """Open grid warnings in these areas or covering them, real or (``exercise``) a drill's, locked,
        in id order (one lock order)."""
        w = db.warnings.c
        wanted = set(areas)
        candidates = self.conn.execute(
            sa.select(w.id, w.area, w.covers).where(
                w.open_key.is_not(None),
                w.scope == "grid",
                w.hazard != "sensor_fault",
                w.exercise.is_(exercise),
            )
        ).all()
        ids = sorted(r.id for r in candidates if r.area in wanted or wanted.intersection(r.covers or ()))
        if not ids:
            return []
        rows = self.conn.execute(
            sa.select(db.warnings)
            .where(w.id.in_(ids), w.open_key.is_not(None))
            .order_by(w.id)
            .with_for_update()
        ).all()
        return [_warning(r) for r in rows]

    def open_with_status(self, status: Status) -> list[WarningOut]:
        """Open grid warnings in ``status``, locked, in id order."""
        w = db.warnings.c
        rows = self.conn.execute(
            sa.select(db.warnings)
            .where(w.open_key.is_not(None), w.status == status, w.scope == "grid")
            .order_by(w.id)
            .with_for_update()
        ).all()
        return [_warning(r) for r in rows]

    def change_times(self, warning_id: str, *, since: datetime) -> list[datetime]:
        """Event times of the warning's automatic level and status changes after ``since``, oldest first:
        what flapping counts (``lifecycle.CHANGES``)."""
        h = db.events.c
        rows = self.conn.execute(
            sa.select(h.event_time)
            .where(h.warning_id == warning_id, h.event_time > as_utc(since), h.action.in_(sorted(CHANGES)))
            .order_by(h.event_time, h.id)
        ).scalars()
        return [as_utc(t) for t in rows]

    def change_times_of(self, since: Mapping[str, datetime]) -> dict[str, list[datetime]]:
        """``change_times`` of many warnings (each after its own time) in one round trip."""
        if not since:
            return {}
        h = db.events.c
        rows = self.conn.execute(
            sa.select(h.warning_id, h.event_time)
            .where(
                h.warning_id.in_(sorted(since)),
                h.event_time > as_utc(min(since.values())),
                h.action.in_(sorted(CHANGES)),
            )
            .order_by(h.event_time, h.id)
        ).all()
        out: dict[str, list[datetime]] = {warning_id: [] for warning_id in since}
        for r in rows:
            at = as_utc(r.event_time)
            if at > since[r.warning_id]:
                out[r.warning_id].append(at)
        return out

    def last_action(self, warning_id: str) -> str | None:
        h = db.events.c
        query = sa.select(h.action).where(h.warning_id == warning_id).order_by(h.id.desc()).limit(1)
        return self.conn.execute(query).scalar_one_or_none()

    def locked(self, warning_id: str) -> WarningOut | None:
        return self._one_locked(sa.select(db.warnings).where(db.warnings.c.id == warning_id))

    def current(self, warning_id: str) -> WarningOut | None:
        """The warning as this transaction has it now (no lock: the outbox reads it at the end)."""
        row = self.conn.execute(sa.select(db.warnings).where(db.warnings.c.id == warning_id)).first()
        return None if row is None else _warning(row)

    def insert(self, warning: WarningOut, subject: str | None = None) -> None:
        values = _utc_values(warning.model_dump())
        if warning.status in OPEN:
            values["open_key"] = _open_key(warning.hazard, warning.area, subject, exercise=warning.exercise)
        self.conn.execute(db.warnings.insert().values(**values))
        if warning.recommendations:
            self.reissued.add(warning.id)

    def update(self, warning_id: str, values: dict[str, Any]) -> None:
        self.conn.execute(
            db.warnings.update().where(db.warnings.c.id == warning_id).values(**_utc_values(values))
        )
        if "recommendations" in values:
            self.reissued.add(warning_id)

    def change_status(
        self, warning_id: str, *, from_status: Status, to_status: Status, now: datetime
    ) -> bool:
        """Compare-and-set: true only if the warning was still ``from_status`` when it changed."""
        w = db.warnings.c
        values: dict[str, Any] = {"status": to_status, "updated_at": as_utc(now)}
        if to_status not in OPEN:
            values.update(open_key=None, resolved_at=as_utc(now))
        result = self.conn.execute(
            db.warnings.update().where(w.id == warning_id, w.status == from_status).values(**values)
        )
        return result.rowcount == 1

    def add_evidence(self, warning_id: str, signals: Sequence[Signal]) -> None:
        rows = [
            {
                "warning_id": warning_id,
                "observed_at": from_ns(s.ts_ns),
                "source": s.source,
                "sensor_id": s.sensor_id,
                "kind": s.kind,
                "value": s.value,
                "score": s.score,
                "detector": s.detector,
                "level": s.level,
                "details": dict(s.evidence),
                "report_ids": list(s.report_ids),
            }
            for s in signals
        ]
        # A replayed batch brings the same evidence again: keep the first copy.
        self.conn.execute(db.dialect_insert(self.conn, db.evidence).on_conflict_do_nothing(), rows)

    def evidence_since(
        self, warning_id: str, *, since: datetime, limit: int, settled: Settled | None = None
    ) -> list[Evidence]:
        """The warning's evidence observed at or after ``since``, newest first, at most ``limit`` rows;
        with ``settled``, of the rows at or before its instant only its newest ``rows``.

        Plain ordered reads, not ``evidence_since_of``'s window function: that one query cost a small
        warning's batch a twentieth to three fifths more (``bench.incident`` with 2 gauges, medians
        alternated).
        """
        e = db.evidence.c
        start = as_utc(since)
        if settled is None:
            return self._newest(e.warning_id == warning_id, e.observed_at >= start, limit=limit)
        at = as_utc(settled.at)
        after = self._newest(
            e.warning_id == warning_id, e.observed_at >= start, e.observed_at > at, limit=limit
        )
        before = self._newest(
            e.warning_id == warning_id, e.observed_at >= start, e.observed_at <= at, limit=settled.rows
        )
        return after + before

    def _newest(self, *where: sa.ColumnElement[bool], limit: int) -> list[Evidence]:
        e = db.evidence.c
        query = sa.select(db.evidence).where(*where).order_by(e.observed_at.desc(), e.id.desc()).limit(limit)
        return [_evidence(r) for r in self.conn.execute(query).all()]

    def evidence_since_of(
        self, since: Mapping[str, datetime], *, limit: int, settled: Mapping[str, Settled] | None = None
    ) -> dict[str, list[Evidence]]:
        """``evidence_since`` of many warnings (each from its own time, and each with its own settled
        instant if given) in one round trip."""
        if not since:
            return {}
        e = db.evidence.c
        held = settled or {}
        # Whether a row is at or before its warning's settled instant: those rows are ranked apart.
        old = sa.or_(
            sa.false(), *(sa.and_(e.warning_id == w, e.observed_at <= as_utc(s.at)) for w, s in held.items())
        )
        newest = sa.func.row_number().over(
            partition_by=(e.warning_id, old), order_by=(e.observed_at.desc(), e.id.desc())
        )
        ranked = (
            sa.select(db.evidence, newest.label("nth"), old.label("old"))
            .where(
                sa.or_(*(sa.and_(e.warning_id == w, e.observed_at >= as_utc(t)) for w, t in since.items()))
            )
            .subquery()
        )
        r = ranked.c
        kept = (
            sa.case(*((sa.and_(r.warning_id == w, r.old), s.rows) for w, s in held.items()), else_=limit)
            if held
            else limit
        )
        rows = self.conn.execute(
            sa.select(*(r[c.name] for c in db.evidence.columns))
            .where(r.nth <= kept)
            .order_by(r.warning_id, r.observed_at.desc(), r.id.desc())
        ).all()
        out: dict[str, list[Evidence]] = {warning_id: [] for warning_id in since}
        for row in rows:
            out[row.warning_id].append(_evidence(row))
        return out

    def evidence_count(self, warning_id: str) -> int:
        count = (
            sa.select(sa.func.count()).select_from(db.evidence).where(db.evidence.c.warning_id == warning_id)
        )
        return int(self.conn.execute(count).scalar_one())

    def record(self, warning_id: str, event: WarningEvent) -> None:
        result = self.conn.execute(
            db.events.insert().values(warning_id=warning_id, **_utc_values(event.model_dump()))
        )
        key = result.inserted_primary_key
        assert key is not None
        self.recorded.append(Recorded(warning_id, int(key[0]), event))


# What a timeline shows of a delivery: never the target URL (it lives on the subscription) nor the body.
_DELIVERY_SHOWN = (
    "id",
    "created_at",
    "message_id",
    "subscription_id",
    "event_type",
    "event_id",
    "status",
    "attempts",
    "last_status_code",
    "last_attempt_at",
    "delivered_at",
)


def _deliveries_of(warning_id: str, owner: str | None) -> sa.ColumnElement[bool]:
    d, s = db.deliveries.c, db.subscriptions.c
    if owner is None:
        return d.warning_id == warning_id
    return sa.and_(d.warning_id == warning_id, d.subscription_id.in_(sa.select(s.id).where(s.owner == owner)))


def _delivery(row: Any) -> DeliveryEntry:
    data = {k: v for k, v in row._mapping.items() if k not in ("id", "created_at")}
    for k in ("last_attempt_at", "delivered_at"):
        if data[k] is not None:
            data[k] = as_utc(data[k])
    return DeliveryEntry(at=as_utc(row.created_at), **data)


def _utc_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: as_utc(v) if k in _DATETIMES and v is not None else v for k, v in values.items()}


def _evidence(row: Any) -> Evidence:
    return Evidence(**{**row._mapping, "observed_at": as_utc(row.observed_at)})


def _event(row: Any) -> WarningEvent:
    data = {**row._mapping, "at": as_utc(row.at)}
    if data.get("event_time") is not None:
        data["event_time"] = as_utc(data["event_time"])
    return WarningEvent(**data)


def _warning(row: Any) -> WarningOut:
    data = {k: v for k, v in row._mapping.items() if k != "open_key"}
    return WarningOut(**_utc_values(data))
