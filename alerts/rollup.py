"""District and city roll-up: grid warnings of one hazard raise a district warning, districts a city one.

The rule, one scope up at a time (grid -> district -> city):

- **Raise** a roll-up warning when at least ``RAISE_AT`` (2) areas of the scope below have a live
  warning of the hazard, or any one of them is red. One grid's incident is that grid's business;
  two grids at once, or one at the top of the scale, are the district's. The same holds for
  districts and the city.
- **Keep** it while any member is live, at the level of the highest live member (so it
  de-escalates as members calm down or resolve), and **resolve** it when none is: once raised, the
  EOC that took it on is told when it is over, not when it dips under the raising rule (which
  would make a district warning flap with its second grid).
- **Live** means active or acknowledged. A pending warning has not yet held its condition for the
  hazard's hold time; counting it would let a district warning skip the very check that keeps a
  grid's momentary blip from reaching anyone.
- Drills stay apart: exercise warnings roll up only into exercise roll-ups, real ones into real.
- An operator who resolves a roll-up warning by hand while members are live has taken that
  incident off the board: those members (still referencing it) raise no new one, or it would
  reopen the moment it was resolved. New members raise one by the rule above, which then takes in
  every live member.

A roll-up warning has no evidence of its own: it references its members (their ``parent_id`` is its
id), covers every area they cover, and its explanation lists them by place and level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from tenacity import retry, retry_if_exception, stop_after_attempt

from alerts import db, lifecycle
from alerts.exceptions import InvalidTransition
from alerts.explanation import Names, headline_for
from alerts.levels import CAP_SEVERITY, CAP_URGENCY, rank
from alerts.repository import SqlWarningRepository, WarningWriter
from alerts.schemas import Scope, WarningEvent
from alerts.service import worth_retrying
from config.areas import AreaIndex
from config.catalog import SENSOR_FAULT
from config.timeutil import as_utc

RAISE_AT = 2  # live members (areas) that make a roll-up warning
RAISES_ALONE = "red"  # the level at which one member alone raises it
LIVE = frozenset({"active", "acknowledged"})
# The areas file has no area for the whole city (its districts have no parent): the city's
# roll-up warnings take this id as their area.
CITY_AREA = "city"


@dataclass(frozen=True, slots=True)
class Member:
    """A warning one scope down, as a roll-up reads it."""

    id: str
    area: str
    level: str
    status: str
    covers: tuple[str, ...]
    certainty: str
    confidence: float
    first_signal_at: datetime
    last_signal_at: datetime
    dismissed: bool = False  # it references a roll-up warning an operator resolved while it was live
    drill_id: str | None = None  # the drill whose exercise warning it is


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the roll-up warning must be: its level, the members it references and the areas it covers."""

    level: str
    members: tuple[Member, ...]
    covers: tuple[str, ...]

    @property
    def leader(self) -> Member:
        """The member that sets the level (the most confident, then the latest, among the highest)."""
        return max(self.members, key=lambda m: (rank(m.level), m.confidence, m.last_signal_at, m.id))


def raises(members: Iterable[Member]) -> bool:
    """True when these live members are enough to raise a roll-up warning that is not open yet."""
    live = [m for m in members if m.status in LIVE]
    return len({m.area for m in live}) >= RAISE_AT or any(m.level == RAISES_ALONE for m in live)


def verdict(members: Sequence[Member], *, already_open: bool) -> Verdict | None:
    """The roll-up warning these members call for, or None: none should be open (resolve an open one)."""
    live = tuple(sorted((m for m in members if m.status in LIVE), key=lambda m: (m.area, m.id)))
    if not live or (not already_open and not raises(m for m in live if not m.dismissed)):
        return None
    level = max((m.level for m in live), key=rank)
    covers = sorted({a for m in live for a in (*m.covers, m.area)})
    return Verdict(level=level, members=live, covers=tuple(covers))


def district_of(areas: AreaIndex, area: str) -> str | None:
    """The district a grid warning rolls up into: its grid's district, or the area itself when the
    evidence lay in a district outside any grid; None for an area the city does not know."""
    found = areas.area(area)
    if found is None:
        return None
    return found.parent if found.level == "grid" else found.id


# ---- the state database ----------------------------------------------------------------------------

_MEMBER_COLUMNS = (
    "id",
    "parent_id",
    "area",
    "level",
    "status",
    "covers",
    "certainty",
    "confidence",
    "first_signal_at",
    "last_signal_at",
    "drill_id",
)
_CERTAINTY_ORDER = ("Unlikely", "Possible", "Likely", "Observed")
_SCOPE_BELOW: dict[Scope, Scope] = {"district": "grid", "city": "district"}
_IN_A_SCOPE: dict[Scope, str] = {"district": "grid", "city": "district"}


def open_key(scope: Scope, hazard: str, area: str, *, exercise: bool) -> str:
    """The roll-up warning's ``open_key``: '^' starts no hazard and no area id, so a roll-up never
    takes the slot of a grid warning whose evidence lay in a district outside any grid (same area id);
    drills are keyed apart, as ``alerts.repository`` keys them."""
    key = f"^{scope}|{hazard}|{area}"
    return f"exercise|{key}" if exercise else key


class RollUp:
    """Keeps district and city warnings in step with the grid warnings below them.

    ``refresh`` runs after the warning service has committed a change, in two transactions:
    districts first, then the city from the committed district warnings. The city reads what the
    district step writes, so two refreshes of different districts must each see the other's
    committed district warning; within one transaction neither would. Each step locks as
    ``alerts.repository`` does (``writing()``: ``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
    SQLite): the open roll-up warning, then its members. When no roll-up warning is open yet there is
    no row to lock, so two refreshes may both decide to raise it: the unique ``open_key`` fails the
    second, and its retry finds the first's warning and updates it.
    """

    def __init__(
        self, repository: SqlWarningRepository, *, areas: AreaIndex, names: Names | None = None
    ) -> None:
        self.repository = repository
        self.areas = areas
        self.names = names or Names(areas)

    def refresh(self, keys: Sequence[tuple[str, str, bool]], *, now: datetime) -> None:
        """Settle the roll-ups over these (hazard, area, exercise) keys, whose warnings changed."""
        now = as_utc(now)
        districts = sorted(
            {
                (hazard, district, exercise)
                for hazard, area, exercise in keys
                if hazard != SENSOR_FAULT and (district := district_of(self.areas, area)) is not None
            }
        )
        if not districts:
            return
        self._settle_all([("district", *d) for d in districts], now=now)
        cities = sorted({(hazard, exercise) for hazard, _, exercise in districts})
        self._settle_all([("city", hazard, CITY_AREA, exercise) for hazard, exercise in cities], now=now)

    @retry(retry=retry_if_exception(worth_retrying), stop=stop_after_attempt(4), reraise=True)
    def _settle_all(self, targets: Sequence[tuple[Scope, str, str, bool]], *, now: datetime) -> None:
        with self.repository.writing() as tx:
            for scope, hazard, area, exercise in targets:
                self._settle(tx, scope, hazard, area, exercise, now=now)

    def _member_areas(self, scope: Scope, area: str) -> list[str]:
        if scope == "city":
            return [d.id for d in self.areas.districts()]
        return [area, *(g.id for g in self.areas.grids(area))]

    def _settle(
        self, tx: WarningWriter, scope: Scope, hazard: str, area: str, exercise: bool, *, now: datetime
    ) -> None:
        conn, w = tx.connection, db.warnings.c
        key = open_key(scope, hazard, area, exercise=exercise)
        current = conn.execute(sa.select(db.warnings).where(w.open_key == key).with_for_update()).first()
        rows = conn.execute(
            sa.select(*(w[c] for c in _MEMBER_COLUMNS))
            .where(
                w.open_key.is_not(None),
                w.scope == _SCOPE_BELOW[scope],
                w.hazard == hazard,
                w.exercise == exercise,
                w.area.in_(self._member_areas(scope, area)),
            )
            .order_by(w.area, w.id)
            .with_for_update()
        ).all()
        dismissed = self._resolved_parents(tx, {r.parent_id for r in rows if r.parent_id is not None})
        members = [_member(r, dismissed=r.parent_id in dismissed) for r in rows]
        found = verdict(members, already_open=current is not None)
        if current is None:
            if found is not None:
                self._raise(tx, scope, hazard, area, exercise, found, now=now)
        elif found is None:
            self._resolve(tx, scope, current, now=now)
        else:
            self._update(tx, scope, current, found, now=now)

    def _resolved_parents(self, tx: WarningWriter, parent_ids: set[str]) -> set[str]:
        """Of these roll-up warnings, those resolved: live members can only reference one that an
        operator resolved, since citywarn resolves a roll-up only when no member is live."""
        if not parent_ids:
            return set()
        w = db.warnings.c
        query = sa.select(w.id).where(w.id.in_(sorted(parent_ids)), w.open_key.is_(None))
        return set(tx.connection.execute(query).scalars())

    def _describe(self, scope: Scope, hazard: str, area: str, found: Verdict) -> dict[str, Any]:
        """The roll-up's level and what it says: its members by place and level, and how sure the
        surest of them is."""
        level, surest = found.level, max(found.members, key=lambda m: (_certainty_rank(m), m.confidence))
        place = self._place(area)
        members = ", ".join(
            f"{self.names.place(m.area)} {m.level}{' (acknowledged)' if m.status == 'acknowledged' else ''}"
            for m in sorted(found.members, key=lambda m: (-rank(m.level), m.area, m.id))
        )
        kind = _IN_A_SCOPE[scope]
        why = (
            f"{level.capitalize()} {hazard.replace('_', ' ')} risk across {len(found.members)} "
            f"{kind} warning(s) of {place}: {members}. {level.capitalize()} is the highest of them; "
            f"this warning rolls them up and has no evidence of its own (each {kind}'s warning has it)."
        )
        return {
            "level": level,
            "severity": CAP_SEVERITY[level],
            "urgency": CAP_URGENCY[level],
            "certainty": surest.certainty,
            "confidence": surest.confidence,
            "headline": headline_for(level=level, hazard=hazard, place=place),
            "explanation": why,
            "covers": list(found.covers),
            "first_signal_at": min(m.first_signal_at for m in found.members),
            "last_signal_at": max(m.last_signal_at for m in found.members),
        }

    def _place(self, area: str) -> str:
        return "the city" if area == CITY_AREA else self.names.place(area)

    def _raise(
        self,
        tx: WarningWriter,
        scope: Scope,
        hazard: str,
        area: str,
        exercise: bool,
        found: Verdict,
        *,
        now: datetime,
    ) -> None:
        described = self._describe(scope, hazard, area, found)
        opened = lifecycle.new_warning(
            hazard,
            area,
            found.level,
            first=described["first_signal_at"],
            last=described["last_signal_at"],
            now=now,
        )
        warning = opened.model_copy(
            update={
                **described,
                "status": "active",
                "scope": scope,
                "exercise": exercise,
                "drill_id": next((m.drill_id for m in found.members if m.drill_id), None),
                "activated_at": now,
            }
        )
        values = {k: as_utc(v) if isinstance(v, datetime) else v for k, v in warning.model_dump().items()}
        values["open_key"] = open_key(scope, hazard, area, exercise=exercise)
        tx.connection.execute(db.warnings.insert().values(**values))
        self._link(tx, warning.id, found)
        note = f"raised by {len(found.members)} {_IN_A_SCOPE[scope]} warning(s): {_listed(found, self.names)}"
        tx.record(
            warning.id, lifecycle.opened_event(found.level, at=now, actor=lifecycle.AUTOMATIC, note=note)
        )

    def _update(
        self, tx: WarningWriter, scope: Scope, current: Any, found: Verdict, *, now: datetime
    ) -> None:
        described = self._describe(scope, current.hazard, current.area, found)
        changed = {k: v for k, v in described.items() if _differs(getattr(current, k), v)}
        self._link(tx, current.id, found)
        if not changed:
            return
        level_changed = found.level != current.level
        # An escalation of an acknowledged warning needs someone to look again: it is active again.
        status = "active" if level_changed and rank(found.level) > rank(current.level) else current.status
        if set(changed) - {"first_signal_at", "last_signal_at"}:
            changed["updated_at"] = now
        tx.update(current.id, {**changed, "status": status})
        if level_changed:
            up = rank(found.level) > rank(current.level)
            leader = found.leader
            tx.record(
                current.id,
                WarningEvent(
                    at=now,
                    actor=lifecycle.AUTOMATIC,
                    action="escalated" if up else "deescalated",
                    from_status=current.status,
                    to_status=status,
                    from_level=current.level,
                    to_level=found.level,
                    note=f"highest {_IN_A_SCOPE[scope]} warning now {self.names.place(leader.area)} "
                    f"{leader.level} (warning {leader.id})",
                ),
            )

    def _resolve(self, tx: WarningWriter, scope: Scope, current: Any, *, now: datetime) -> None:
        w = db.warnings.c
        last = tx.connection.execute(
            sa.select(w.id, w.area, w.resolved_at)
            .where(w.parent_id == current.id)
            .order_by(w.resolved_at.desc().nulls_last(), w.id.desc())
            .limit(1)
        ).first()
        kind = _IN_A_SCOPE[scope]
        note = (
            f"no {kind} warning of {current.hazard.replace('_', ' ')} in {self._place(current.area)} is live"
        )
        if last is not None:
            note += f"; the last was {self.names.place(last.area)} (warning {last.id})"
        if not tx.change_status(current.id, from_status=current.status, to_status="resolved", now=now):
            raise InvalidTransition(f"roll-up warning {current.id} changed while resolving")
        resolved = WarningEvent(
            at=now,
            actor=lifecycle.AUTOMATIC,
            action="resolved",
            from_status=current.status,
            to_status="resolved",
            from_level=current.level,
            to_level=current.level,
            note=note,
        )
        tx.record(current.id, resolved)

    def _link(self, tx: WarningWriter, parent_id: str, found: Verdict) -> None:
        """Each member references the roll-up warning it is part of (members stay linked once they end)."""
        w = db.warnings.c
        ids = [m.id for m in found.members]
        tx.connection.execute(
            db.warnings.update()
            .where(w.id.in_(ids), sa.or_(w.parent_id.is_(None), w.parent_id != parent_id))
            .values(parent_id=parent_id)
        )


def _member(row: Any, *, dismissed: bool) -> Member:
    return Member(
        dismissed=dismissed,
        id=row.id,
        area=row.area,
        level=row.level,
        status=row.status,
        covers=tuple(row.covers or ()),
        certainty=row.certainty,
        confidence=row.confidence,
        first_signal_at=as_utc(row.first_signal_at),
        last_signal_at=as_utc(row.last_signal_at),
        drill_id=row.drill_id,
    )


def _certainty_rank(m: Member) -> int:
    return _CERTAINTY_ORDER.index(m.certainty) if m.certainty in _CERTAINTY_ORDER else -1


def _listed(found: Verdict, names: Names) -> str:
    return ", ".join(f"{names.place(m.area)} {m.level} (warning {m.id})" for m in found.members)


def _differs(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, datetime) and isinstance(wanted, datetime):
        return as_utc(stored) != as_utc(wanted)
    return bool(stored != wanted)
