"""The warning lifecycle: signals open or raise warnings, operators acknowledge and resolve.

All writes for one batch of signals happen in one transaction, so a crash
leaves either all of a batch's effect or none; every transition is recorded
in ``warning_events`` with the actor that caused it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from alerts import db, explain, fusion
from alerts.exceptions import InvalidTransition, WarningNotFound
from alerts.levels import CAP_SEVERITY, CAP_URGENCY, higher
from alerts.schemas import Evidence, WarningDetail, WarningEvent, WarningOut, WarningPage
from config.areas import AreaIndex
from config.catalog import Catalog
from config.playbooks import Playbooks
from models.signals import Signal

EVIDENCE_SHOWN = 200
EVIDENCE_FUSED = 500  # the most recent evidence rows that certainty and explanation are derived from


def _aware(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _from_ns(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)


class WarningService:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        catalog: Catalog,
        playbooks: Playbooks,
        areas: AreaIndex | None = None,
        fusion_window: timedelta = timedelta(hours=6),
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.playbooks = playbooks
        self.areas = areas
        self.fusion_window = fusion_window
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

    def _apply(
        self, conn: sa.Connection, groups: dict[tuple[str, str], list[Signal]], *, now: datetime, actor: str
    ) -> list[str]:
        touched = []
        for (hazard, area), group in groups.items():
            row = self._open_warning_for(conn, hazard, area, group)
            if row is None:
                warning_id, old_level, old_certainty = (
                    self._open(conn, hazard, area, group, now=now, actor=actor),
                    None,
                    None,
                )
            else:
                warning_id, old_level, old_certainty = str(row.id), row.level, row.certainty
            self._add_evidence(conn, warning_id, group)
            self._refresh(
                conn,
                warning_id,
                group,
                old_level=old_level,
                old_certainty=old_certainty,
                now=now,
                actor=actor,
            )
            touched.append(warning_id)
        return touched

    def _open_warning_for(
        self, conn: sa.Connection, hazard: str, area: str, group: list[Signal]
    ) -> Any | None:
        """The open warning these signals join: the area's own, else a recent neighbour's.

        A flooded street on a grid border is reported from both sides; one
        warning with all the evidence serves the EOC better than two.
        """
        w = db.warnings.c
        own = conn.execute(sa.select(db.warnings).where(w.open_key == f"{hazard}|{area}")).first()
        if own is not None or self.areas is None or area not in self.areas:
            return own
        neighbours = [f"{hazard}|{n}" for n in self.areas.neighbours(area)]
        if not neighbours:
            return None
        since = _from_ns(min(s.ts_ns for s in group)) - self.fusion_window
        return conn.execute(
            sa.select(db.warnings)
            .where(w.open_key.in_(neighbours), w.last_signal_at >= since)
            .order_by(w.last_signal_at.desc())
            .limit(1)
        ).first()

    def _open(
        self, conn: sa.Connection, hazard: str, area: str, group: list[Signal], *, now: datetime, actor: str
    ) -> str:
        level = _level_of(group)
        warning_id = str(uuid.uuid4())
        conn.execute(
            db.warnings.insert().values(
                id=warning_id,
                hazard=hazard,
                area=area,
                open_key=f"{hazard}|{area}",
                status="active",
                level=level,
                severity=CAP_SEVERITY[level],
                urgency=CAP_URGENCY[level],
                certainty="Possible",
                confidence=0.0,
                exercise=False,
                headline="",
                explanation="",
                recommendations=[],
                signal_count=0,
                first_signal_at=_from_ns(min(s.ts_ns for s in group)),
                last_signal_at=_from_ns(max(s.ts_ns for s in group)),
                created_at=now,
                updated_at=now,
            )
        )
        self._record(
            conn,
            warning_id,
            now=now,
            actor=actor,
            action="opened",
            from_status=None,
            to_status="active",
            from_level=None,
            to_level=level,
            note=f"{len(group)} signal(s)",
        )
        return warning_id

    def _refresh(
        self,
        conn: sa.Connection,
        warning_id: str,
        group: list[Signal],
        *,
        old_level: str | None,
        old_certainty: str | None,
        now: datetime,
        actor: str,
    ) -> None:
        """Re-derive level, certainty and explanation from all of the warning's recent evidence."""
        row = conn.execute(sa.select(db.warnings).where(db.warnings.c.id == warning_id)).one()
        last_signal = max(_aware(row.last_signal_at), _from_ns(max(s.ts_ns for s in group)))
        evidence = self._recent_evidence(conn, warning_id, since=last_signal - self.fusion_window)
        level = higher(row.level, _level_of(group))
        backing = fusion.corroborate(evidence)
        why = explain.explanation(
            level=level,
            hazard=row.hazard,
            area=row.area,
            evidence=evidence,
            corroboration=backing,
            units=self._units,
        )
        values: dict[str, Any] = {
            "level": level,
            "severity": CAP_SEVERITY[level],
            "urgency": CAP_URGENCY[level],
            "certainty": backing.certainty,
            "confidence": backing.confidence,
            "headline": explain.headline(level=level, hazard=row.hazard, area=row.area),
            "explanation": why,
            "last_signal_at": last_signal,
            "updated_at": now,
            "signal_count": conn.execute(
                sa.select(sa.func.count())
                .select_from(db.evidence)
                .where(db.evidence.c.warning_id == warning_id)
            ).scalar_one(),
        }
        if level != old_level:
            # Recommendations are re-issued only when the level changes, so their
            # deadlines do not slide with every new signal.
            values["recommendations"] = explain.recommendations(
                playbooks=self.playbooks,
                hazard=row.hazard,
                level=level,
                area=row.area,
                sensors=list(backing.sensors),
                now=now,
                why=why,
            )
        conn.execute(db.warnings.update().where(db.warnings.c.id == warning_id).values(**values))
        if old_level is not None and level != old_level:
            self._record(
                conn,
                warning_id,
                now=now,
                actor=actor,
                action="escalated",
                from_status=row.status,
                to_status=row.status,
                from_level=old_level,
                to_level=level,
                note=f"{len(group)} new signal(s)",
            )
        if old_certainty is not None and backing.certainty != old_certainty:
            self._record(
                conn,
                warning_id,
                now=now,
                actor=actor,
                action="certainty",
                from_status=row.status,
                to_status=row.status,
                from_level=level,
                to_level=level,
                note=f"{old_certainty} -> {backing.certainty} ({backing.confidence:.0%})",
            )

    @staticmethod
    def _recent_evidence(conn: sa.Connection, warning_id: str, *, since: datetime) -> list[Evidence]:
        e = db.evidence.c
        rows = conn.execute(
            sa.select(db.evidence)
            .where(e.warning_id == warning_id, e.observed_at >= since)
            .order_by(e.observed_at.desc())
            .limit(EVIDENCE_FUSED)
        ).all()
        return [_evidence(r) for r in rows]

    def _add_evidence(self, conn: sa.Connection, warning_id: str, group: list[Signal]) -> None:
        rows = [
            {
                "warning_id": warning_id,
                "observed_at": _from_ns(s.ts_ns),
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
            for s in group
        ]
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        # A replayed batch brings the same evidence again: keep the first copy.
        conn.execute(insert(db.evidence).on_conflict_do_nothing(), rows)

    @staticmethod
    def _record(
        conn: sa.Connection,
        warning_id: str,
        *,
        now: datetime,
        actor: str,
        action: str,
        from_status: str | None,
        to_status: str,
        from_level: str | None,
        to_level: str,
        note: str = "",
    ) -> None:
        conn.execute(
            db.events.insert().values(
                warning_id=warning_id,
                at=now,
                actor=actor,
                action=action,
                from_status=from_status,
                to_status=to_status,
                from_level=from_level,
                to_level=to_level,
                note=note,
            )
        )

    # ---- operators --------------------------------------------------------------------

    def acknowledge(self, warning_id: str, *, now: datetime, actor: str, note: str = "") -> WarningDetail:
        return self._set_status(
            warning_id, "acknowledged", now=now, actor=actor, note=note, allowed_from={"active"}
        )

    def resolve(self, warning_id: str, *, now: datetime, actor: str, note: str = "") -> WarningDetail:
        return self._set_status(
            warning_id, "resolved", now=now, actor=actor, note=note, allowed_from={"active", "acknowledged"}
        )

    def _set_status(
        self, warning_id: str, status: str, *, now: datetime, actor: str, note: str, allowed_from: set[str]
    ) -> WarningDetail:
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(db.warnings).where(db.warnings.c.id == warning_id).with_for_update()
            ).first()
            if row is None:
                raise WarningNotFound(warning_id)
            if row.status not in allowed_from:
                raise InvalidTransition(f"warning {warning_id} is {row.status}; cannot become {status}")
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if status == "resolved":
                values.update(open_key=None, resolved_at=now)
            conn.execute(db.warnings.update().where(db.warnings.c.id == warning_id).values(**values))
            self._record(
                conn,
                warning_id,
                now=now,
                actor=actor,
                action=status,
                from_status=row.status,
                to_status=status,
                from_level=row.level,
                to_level=row.level,
                note=note,
            )
        detail = self.get(warning_id)
        assert detail is not None
        return detail

    # ---- reads ------------------------------------------------------------------------

    def recent_evidence_in(self, areas: Sequence[str], *, since: datetime, limit: int = 50) -> list[Evidence]:
        """The latest signals behind warnings in these areas, newest first."""
        e, w = db.evidence.c, db.warnings.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(db.evidence)
                .join(db.warnings, e.warning_id == w.id)
                .where(w.area.in_(list(areas)), e.observed_at >= since)
                .order_by(e.observed_at.desc())
                .limit(limit)
            ).all()
        return [_evidence(r) for r in rows]

    def list(
        self,
        *,
        status: str | None = None,
        level: str | None = None,
        area: str | None = None,
        hazard: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        areas: Sequence[str] | None = None,
        open_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> WarningPage:
        w = db.warnings.c
        where: list[sa.ColumnElement[bool]] = []
        if areas is not None:
            where.append(w.area.in_(list(areas)))
        if open_only:
            where.append(w.open_key.is_not(None))
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
            items = [_warning_out(r) for r in rows]
        return WarningPage(items=items, total=total, limit=limit, offset=offset)

    def get(self, warning_id: str) -> WarningDetail | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.warnings).where(db.warnings.c.id == warning_id)).first()
            if row is None:
                return None
            ev = conn.execute(
                sa.select(db.evidence)
                .where(db.evidence.c.warning_id == warning_id)
                .order_by(db.evidence.c.observed_at.desc())
                .limit(EVIDENCE_SHOWN)
            ).all()
            hist = conn.execute(
                sa.select(db.events).where(db.events.c.warning_id == warning_id).order_by(db.events.c.id)
            ).all()
        base = _warning_out(row).model_dump()
        return WarningDetail(
            **base,
            evidence=[_evidence(e) for e in ev],
            events=[WarningEvent(**{**h._mapping, "at": _aware(h.at)}) for h in hist],
        )


def _level_of(group: list[Signal]) -> str:
    """The highest line any signal crossed; a statistical anomaly alone is blue."""
    level = "blue"
    for s in group:
        if s.level is not None:
            level = higher(level, s.level)
    return level


def _evidence(row: Any) -> Evidence:
    return Evidence(**{**row._mapping, "observed_at": _aware(row.observed_at)})


def _warning_out(row: Any) -> WarningOut:
    data = dict(row._mapping)
    for key in ("first_signal_at", "last_signal_at", "created_at", "updated_at", "resolved_at"):
        if data[key] is not None:
            data[key] = _aware(data[key])
    return WarningOut(**data)
