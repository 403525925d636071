"""The warning lifecycle: signals open or raise warnings, operators acknowledge and resolve.

All writes for one batch of signals happen in one transaction, so a crash
leaves either all of a batch's effect or none; every transition is recorded
in ``warning_events`` with the actor that caused it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from alerts import db, explain
from alerts.exceptions import InvalidTransition, WarningNotFound
from alerts.levels import CAP_SEVERITY, CAP_URGENCY, higher
from alerts.schemas import Evidence, WarningDetail, WarningEvent, WarningOut, WarningPage
from config.catalog import Catalog
from config.playbooks import Playbooks
from models.signals import Signal

EVIDENCE_SHOWN = 200


def _aware(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _from_ns(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)


class WarningService:
    def __init__(self, engine: sa.Engine, *, catalog: Catalog, playbooks: Playbooks) -> None:
        self.engine = engine
        self.catalog = catalog
        self.playbooks = playbooks
        self._units = {name: k.unit for name, k in catalog.kinds.items()}

    # ---- signals in -------------------------------------------------------------------

    def apply_signals(self, signals: Sequence[Signal], *, now: datetime, actor: str) -> list[str]:
        """Open or update one warning per (hazard, area); returns the ids touched."""
        if not signals:
            return []
        groups: dict[tuple[str, str], list[Signal]] = defaultdict(list)
        for s in signals:
            groups[(s.hazard, s.area)].append(s)
        # Two consumers may open the same (hazard, area) at once; the unique open_key
        # makes one of them fail, and its retry then finds the other's warning.
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    return self._apply(conn, groups, now=now, actor=actor)
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _apply(self, conn: sa.Connection, groups: dict[tuple[str, str], list[Signal]], *,
               now: datetime, actor: str) -> list[str]:
        keys = [f"{h}|{a}" for h, a in groups]
        open_rows = {
            r.open_key: r
            for r in conn.execute(sa.select(db.warnings).where(db.warnings.c.open_key.in_(keys)))
        }
        touched = []
        for (hazard, area), group in groups.items():
            row = open_rows.get(f"{hazard}|{area}")
            if row is None:
                touched.append(self._open(conn, hazard, area, group, now=now, actor=actor))
            else:
                touched.append(self._update(conn, row, group, now=now, actor=actor))
        return touched

    def _open(self, conn: sa.Connection, hazard: str, area: str, group: list[Signal], *,
              now: datetime, actor: str) -> str:
        level = _level_of(group)
        warning_id = str(uuid.uuid4())
        first = _from_ns(min(s.ts_ns for s in group))
        last = _from_ns(max(s.ts_ns for s in group))
        conn.execute(db.warnings.insert().values(
            id=warning_id, hazard=hazard, area=area, open_key=f"{hazard}|{area}", status="active",
            exercise=False, signal_count=0, first_signal_at=first, last_signal_at=last,
            created_at=now, updated_at=now,
            **self._describe(hazard, area, level, group, now=now),
        ))
        self._add_evidence(conn, warning_id, group)
        self._record(conn, warning_id, now=now, actor=actor, action="opened", from_status=None,
                     to_status="active", from_level=None, to_level=level,
                     note=f"{len(group)} signal(s)")
        return warning_id

    def _update(self, conn: sa.Connection, row: Any, group: list[Signal], *,
                now: datetime, actor: str) -> str:
        level = higher(row.level, _level_of(group))
        values: dict[str, Any] = {
            "updated_at": now,
            "last_signal_at": max(_aware(row.last_signal_at), _from_ns(max(s.ts_ns for s in group))),
        }
        if level != row.level:
            values.update(self._describe(row.hazard, row.area, level, group, now=now))
            self._record(conn, row.id, now=now, actor=actor, action="escalated",
                         from_status=row.status, to_status=row.status, from_level=row.level,
                         to_level=level, note=f"{len(group)} new signal(s)")
        conn.execute(db.warnings.update().where(db.warnings.c.id == row.id).values(**values))
        self._add_evidence(conn, row.id, group)
        return str(row.id)

    def _describe(self, hazard: str, area: str, level: str, group: list[Signal], *,
                  now: datetime) -> dict[str, Any]:
        observed = any(s.level is not None for s in group)
        why = explain.explanation(level=level, hazard=hazard, area=area, signals=group,
                                  units=self._units)
        return {
            "level": level,
            "severity": CAP_SEVERITY[level],
            "urgency": CAP_URGENCY[level],
            # A measured value past an agreed warning line is an observation; a
            # statistical anomaly alone is only a possibility until corroborated.
            "certainty": "Observed" if observed else "Possible",
            "headline": explain.headline(level=level, hazard=hazard, area=area),
            "explanation": why,
            "recommendations": explain.recommendations(
                playbooks=self.playbooks, hazard=hazard, level=level, area=area,
                sensors=[s.sensor_id for s in group], now=now, why=why),
        }

    def _add_evidence(self, conn: sa.Connection, warning_id: str, group: list[Signal]) -> None:
        rows = [
            {"warning_id": warning_id, "observed_at": _from_ns(s.ts_ns), "sensor_id": s.sensor_id,
             "kind": s.kind, "value": s.value, "score": s.score, "detector": s.detector,
             "level": s.level, "details": dict(s.evidence)}
            for s in group
        ]
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        # A replayed batch brings the same evidence again: keep the first copy.
        conn.execute(insert(db.evidence).on_conflict_do_nothing(), rows)
        count = conn.execute(sa.select(sa.func.count()).select_from(db.evidence)
                             .where(db.evidence.c.warning_id == warning_id)).scalar_one()
        conn.execute(db.warnings.update().where(db.warnings.c.id == warning_id)
                     .values(signal_count=count))

    @staticmethod
    def _record(conn: sa.Connection, warning_id: str, *, now: datetime, actor: str, action: str,
                from_status: str | None, to_status: str, from_level: str | None, to_level: str,
                note: str = "") -> None:
        conn.execute(db.events.insert().values(
            warning_id=warning_id, at=now, actor=actor, action=action, from_status=from_status,
            to_status=to_status, from_level=from_level, to_level=to_level, note=note))

    # ---- operators --------------------------------------------------------------------

    def acknowledge(self, warning_id: str, *, now: datetime, actor: str, note: str = "") -> WarningDetail:
        return self._set_status(warning_id, "acknowledged", now=now, actor=actor, note=note,
                                allowed_from={"active"})

    def resolve(self, warning_id: str, *, now: datetime, actor: str, note: str = "") -> WarningDetail:
        return self._set_status(warning_id, "resolved", now=now, actor=actor, note=note,
                                allowed_from={"active", "acknowledged"})

    def _set_status(self, warning_id: str, status: str, *, now: datetime, actor: str, note: str,
                    allowed_from: set[str]) -> WarningDetail:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(db.warnings).where(db.warnings.c.id == warning_id)
                               .with_for_update()).first()
            if row is None:
                raise WarningNotFound(warning_id)
            if row.status not in allowed_from:
                raise InvalidTransition(f"warning {warning_id} is {row.status}; cannot become {status}")
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if status == "resolved":
                values.update(open_key=None, resolved_at=now)
            conn.execute(db.warnings.update().where(db.warnings.c.id == warning_id).values(**values))
            self._record(conn, warning_id, now=now, actor=actor, action=status,
                         from_status=row.status, to_status=status, from_level=row.level,
                         to_level=row.level, note=note)
        detail = self.get(warning_id)
        assert detail is not None
        return detail

    # ---- reads ------------------------------------------------------------------------

    def list(
        self, *, status: str | None = None, level: str | None = None, area: str | None = None,
        hazard: str | None = None, since: datetime | None = None, until: datetime | None = None,
        limit: int = 50, offset: int = 0,
    ) -> WarningPage:
        w = db.warnings.c
        where = []
        if status:
            where.append(w.status == status)
        if level:
            where.append(w.level == level)
        if area:
            where.append(w.area == area)
        if hazard:
            where.append(w.hazard == hazard)
        if since:
            where.append(w.updated_at >= since)
        if until:
            where.append(w.updated_at < until)
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(db.warnings)
                                 .where(*where)).scalar_one()
            rows = conn.execute(sa.select(db.warnings).where(*where)
                                .order_by(w.updated_at.desc(), w.id).limit(limit).offset(offset))
            items = [_warning_out(r) for r in rows]
        return WarningPage(items=items, total=total, limit=limit, offset=offset)

    def get(self, warning_id: str) -> WarningDetail | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.warnings).where(db.warnings.c.id == warning_id)).first()
            if row is None:
                return None
            ev = conn.execute(sa.select(db.evidence).where(db.evidence.c.warning_id == warning_id)
                              .order_by(db.evidence.c.observed_at.desc())
                              .limit(EVIDENCE_SHOWN)).all()
            hist = conn.execute(sa.select(db.events).where(db.events.c.warning_id == warning_id)
                                .order_by(db.events.c.id)).all()
        base = _warning_out(row).model_dump()
        return WarningDetail(
            **base,
            evidence=[Evidence(**{**e._mapping, "observed_at": _aware(e.observed_at)}) for e in ev],
            events=[WarningEvent(**{**h._mapping, "at": _aware(h.at)}) for h in hist],
        )


def _level_of(group: list[Signal]) -> str:
    """The highest line any signal crossed; a statistical anomaly alone is blue."""
    level = "blue"
    for s in group:
        if s.level is not None:
            level = higher(level, s.level)
    return level


def _warning_out(row: Any) -> WarningOut:
    data = dict(row._mapping)
    for key in ("first_signal_at", "last_signal_at", "created_at", "updated_at", "resolved_at"):
        if data[key] is not None:
            data[key] = _aware(data[key])
    return WarningOut(**data)
