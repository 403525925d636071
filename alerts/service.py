"""The warning service: signals open or raise warnings, operators acknowledge and resolve.

A thin layer over the alerts modules: ``grouping`` picks the warning a
signal joins, ``certainty`` weighs the evidence, ``explanation`` and
``recommendations`` say what it means and what to do, ``lifecycle`` says
which transitions are allowed, and ``repository`` holds all the SQL.

All writes for one batch of signals happen in one transaction, so a crash
leaves either all of a batch's effect or none; every transition is recorded
in the warning's events with the actor that caused it. Time comes in as
``now``: nothing here reads the clock.

What happens to a warning depends on its signals' event times, never on how
they were batched: each (hazard, area)'s signals are handled in time order,
one incident (``grouping.incidents``) at a time, and a warning's level is the
highest that any new signal's own window of evidence earns (``_earned``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, Unpack

import sqlalchemy as sa
from tenacity import retry, retry_if_exception, stop_after_attempt

from alerts import certainty, explanation, lifecycle, recommendations
from alerts.exceptions import InvalidTransition, WarningNotFound
from alerts.grouping import Grouping, by_hazard_and_area, incidents
from alerts.levels import CAP_SEVERITY, CAP_URGENCY, LevelRule, rank
from alerts.repository import Settled, SqlWarningRepository, WarningRepository, WarningWriter
from alerts.schemas import (
    Evidence,
    Status,
    WarningDetail,
    WarningFilters,
    WarningOut,
    WarningPage,
)
from alerts.witnesses import as_evidence
from config.areas import AreaIndex
from config.assets import AssetRegister
from config.catalog import LEVELS, SENSOR_FAULT, Catalog
from config.lifecycle import LifecycleConfig, load_lifecycle
from config.playbooks import Playbooks
from config.settings import CITY_DIR, Settings
from config.timeutil import as_utc, from_ns
from models.signals import Signal

EVIDENCE_SHOWN = 200
EVIDENCE_FUSED = 500  # the most recent evidence rows of a window that level, certainty and explanation read
EVIDENCE_SCANNED = 20_000  # the most rows read to assess the windows of one incident's new signals

_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # PostgreSQL: serialization failure, deadlock detected


def worth_retrying(exc: BaseException) -> bool:
    """Two writers opening one warning at once (two batches, or two workers raising one roll-up):
    the loser's unique open key fails, and its retry joins the winner's warning. PostgreSQL may
    also break a lock cycle by failing one."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


class Mutes(Protocol):
    """Which silence or inhibition holds a warning's notification (alerts.silences).

    Asked on every refresh of a warning with ``at`` the latest signal's event time; the answer
    ("silence:<id>", "inhibited:<warning id>" or None) is stored in ``muted_by``. A muted warning
    still moves through its whole lifecycle (stored, scored, recorded): only its notification is
    held, and the "unmuted" event is the notification that it is live.
    """

    def mute_for(
        self, *, hazard: str, area: str, level: str, sensors: Sequence[str], at: datetime, exercise: bool
    ) -> str | None: ...


RollUpKey = tuple[str, str, bool]  # (hazard, grid area, exercise)


@dataclass(frozen=True)
class _WalkInputs:
    """Change times and evidence of many warnings, read at once (``WarningService._walk_inputs``)."""

    changes: Mapping[str, list[datetime]]
    evidence: Mapping[str, list[Evidence]]


class RollUp(Protocol):
    """District and city warnings over grid ones (alerts.rollup): told, after each transaction
    commits, which (hazard, grid area, exercise) keys had a warning open, change level or status."""

    def refresh(self, keys: Sequence[RollUpKey], *, now: datetime) -> None: ...


class WarningService:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        catalog: Catalog,
        playbooks: Playbooks,
        areas: AreaIndex | None = None,
        fusion_window: timedelta = timedelta(hours=6),
        repository: WarningRepository | None = None,
        signal_threshold: float = Settings.model_fields["signal_threshold"].default,
        assets: AssetRegister | None = None,
        mutes: Mutes | None = None,
        rollup: RollUp | None = None,
        lifecycle_config: LifecycleConfig | None = None,
    ) -> None:
        self.repository: WarningRepository = repository or SqlWarningRepository(engine)
        # Hold, release, flapping and the escalation chain; the bundled city's unless given.
        self.lifecycle_config = lifecycle_config or load_lifecycle(CITY_DIR / "lifecycle.yaml")
        self.mutes = mutes
        self.rollup = rollup
        self.playbooks = playbooks
        self.assets = assets  # what recommendations name (alerts.recommendations)
        self.areas = areas
        self.fusion_window = fusion_window
        self.grouping = Grouping(areas, fusion_window)
        self._units = {name: k.unit for name, k in catalog.kinds.items()}
        self._names = explanation.Names(areas, catalog)  # places and sensors as people know them
        # Ranks anomaly-only warnings against the threshold the scoring engine signals at.
        self.levels = LevelRule(
            signal_threshold=signal_threshold,
            criticality={name: k.criticality for name, k in catalog.kinds.items()},
        )

    # ---- signals in -------------------------------------------------------------------

    def apply_signals(self, signals: Sequence[Signal], *, now: datetime, actor: str) -> list[str]:
        """Open or update the warnings these signals are evidence of; returns the ids they went to."""
        if not signals:
            return []
        now = as_utc(now)
        changed: set[RollUpKey] = set()
        touched = self._apply_once(by_hazard_and_area(signals), now=now, actor=actor, changed=changed)
        self._roll_up(changed, now=now)
        return touched

    def _roll_up(self, changed: set[RollUpKey], *, now: datetime) -> None:
        """Tell the roll-up which keys changed; only after the transaction committed."""
        if self.rollup is not None and changed:
            self.rollup.refresh(sorted(changed), now=now)

    @retry(retry=retry_if_exception(worth_retrying), stop=stop_after_attempt(3), reraise=True)
    def _apply_once(
        self,
        groups: dict[tuple[str, str, bool], list[Signal]],
        *,
        now: datetime,
        actor: str,
        changed: set[RollUpKey],
    ) -> list[str]:
        touched = []
        changed.clear()  # a retry starts again
        with self.repository.writing() as tx:
            for key, group in groups.items():
                # Cut where the condition lapses too, so the walk ends a warning before what follows.
                lapse = min(self.fusion_window, self.lifecycle_config.timing(key[0]).release_time)
                for run in incidents(group, lapse):
                    touched.append(self._apply_incident(tx, key, run, now=now, actor=actor, changed=changed))
        return touched

    def _apply_incident(
        self,
        tx: WarningWriter,
        key: tuple[str, str, bool],
        run: list[Signal],
        *,
        now: datetime,
        actor: str,
        changed: set[RollUpKey],
    ) -> str:
        """One incident's time-ordered signals: join or open a warning, ending a quiet one first.

        A warning they might join is first walked up to (not at) their first time, so one whose
        condition ended before them has resolved and they open a new one, however they were batched.
        """
        first = from_ns(run[0].ts_ns)

        def settle(w: WarningOut) -> WarningOut | None:
            return self._walk(
                tx, w, until=first, before=True, now=now, actor=actor, changed=changed, advise=True
            )

        joining = self.grouping.warning_for(tx, key, run, settle=settle)
        ended = joining.ended
        if ended is not None:
            changed.add((ended.hazard, ended.area, ended.exercise))
            # First, so its (hazard, area) slot is free for the warning this evidence opens.
            lifecycle.next_status(ended.id, ended.status, "superseded")
            if not tx.change_status(ended.id, from_status=ended.status, to_status="resolved", now=now):
                raise InvalidTransition(f"warning {ended.id} changed while ending")
        warning = joining.warning or self._open(tx, key, run, now=now, actor=actor)
        if ended is not None:
            note = lifecycle.quiet_note(
                window=self.fusion_window,
                last_signal=ended.last_signal_at,
                new_signal=first,
                successor=warning.id,
                opened=joining.warning is None,
            )
            quiet = lifecycle.status_event(
                ended,
                "resolved",
                action="resolved",
                at=now,
                actor=lifecycle.AUTOMATIC,
                note=note,
                event_time=first,
            )
            tx.record(ended.id, quiet)
        tx.add_evidence(warning.id, run)
        opened = joining.warning is None
        if opened:
            changed.add((warning.hazard, warning.area, warning.exercise))
        late = not opened and warning.clock_at is not None and first <= warning.clock_at
        walked = self._walk(
            tx, warning, until=from_ns(run[-1].ts_ns), revisit=late, now=now, actor=actor, changed=changed
        )
        self._refresh(
            tx, walked or warning, run, opened=opened, now=now, actor=actor, level_was=warning.level
        )
        return warning.id

    def _earn(self, window: Sequence[Evidence]) -> str:
        """The level a window of evidence (time-ordered) earns, from its latest rows."""
        return self.levels.assess(window[-EVIDENCE_FUSED:]).level

    def _open(
        self, tx: WarningWriter, key: tuple[str, str, bool], group: list[Signal], *, now: datetime, actor: str
    ) -> WarningOut:
        """A new warning at what its first instant's evidence earns; the walk takes it from there."""
        hazard, area, exercise = key
        first = from_ns(group[0].ts_ns)
        # The evidence as stored: one row per sensor and time, the first given (``add_evidence``).
        at_first = {(s.sensor_id, s.ts_ns): s for s in reversed(group) if s.ts_ns == group[0].ts_ns}
        level = self._earn([as_evidence(s) for s in at_first.values()])
        status = lifecycle.first_status(level, self.lifecycle_config.timing(hazard))
        drill = next((s.drill_id for s in group if s.drill_id), None)
        warning = lifecycle.new_warning(
            hazard, area, level, first=first, last=first, now=now, status=status
        ).model_copy(update={"exercise": exercise, "drill_id": drill})
        if status == "active":
            warning = warning.model_copy(update=self._first_responder(now))
        tx.insert(warning)
        # Pending or active is in the event's to_status; the hold it waits for, in lifecycle.yaml.
        note = f"{len(group)} signal(s)"
        opened = lifecycle.opened_event(
            level, at=now, actor=actor, note=note, status=status, event_time=first
        )
        tx.record(warning.id, opened)
        return warning

    def _first_responder(self, now: datetime) -> dict[str, Any]:
        return {"responder": self.lifecycle_config.chain[0], "responder_since": now}

    def _walk(
        self,
        tx: WarningWriter,
        warning: WarningOut,
        *,
        until: datetime,
        now: datetime,
        actor: str,
        changed: set[RollUpKey],
        before: bool = False,
        revisit: bool = False,
        advise: bool = False,
        read: _WalkInputs | None = None,
    ) -> WarningOut | None:
        """Move a locked warning along event time to ``until`` (``lifecycle.walk``) and store what
        happened; returns it as it now is, or None if it resolved. ``advise``: re-derive its advice
        when the level moved (after new signals the caller does, in ``_refresh``). ``read``: its
        change times and evidence as ``_walk_inputs`` read them for many warnings at once."""
        if not self._walks(warning, until=until, revisit=revisit):
            return warning
        timing = self.lifecycle_config.timing(warning.hazard)
        clock = warning.clock_at or warning.last_signal_at
        # The window at the clock, and all after it up to ``until``. A late signal (``revisit``, at or
        # before the clock) is judged at the clock, on every row up to the clock: bounding the rows by
        # its own older time would empty the window and release a warning whose line still holds.
        since = clock - timing.release_time
        upto = max(until, clock) if revisit else until
        if read is None:
            changes = tx.change_times(warning.id, since=clock - timing.flap_time)
            scanned = tx.evidence_since(
                warning.id, since=since, limit=EVIDENCE_SCANNED, settled=Settled(clock, EVIDENCE_FUSED)
            )
        else:
            changes, scanned = read.changes.get(warning.id, []), read.evidence.get(warning.id, [])
        life = lifecycle.Life.of(warning, changes)
        # Oldest first, rows of one instant in the reverse of the read's order: a window's newest rows
        # (its tail) are then those a settled read keeps, ties included.
        evidence = [e for e in reversed(scanned) if e.observed_at <= upto]
        moved, steps = lifecycle.walk(
            life, evidence, timing, self._earn, until=until, before=before, revisit=revisit
        )
        values: dict[str, Any] = {
            "clock_at": moved.clock_at,
            "below_since": moved.below_since,
            "condition_level": moved.condition_level,
            "flapping": moved.flapping,
            "activated_at": moved.activated_at,
        }
        current = warning
        for step in steps:
            event = lifecycle.status_event(
                current,
                step.to_status,
                action=step.action,
                at=now,
                actor=actor if step.by_evidence else lifecycle.AUTOMATIC,
                note=step.note,
                to_level=step.to_level,
                event_time=step.event_time,
            )
            if step.to_status != current.status:
                if not tx.change_status(
                    current.id, from_status=current.status, to_status=step.to_status, now=now
                ):
                    raise InvalidTransition(f"warning {current.id} changed while becoming {step.to_status}")
                if step.to_status == "active":
                    values |= (
                        self._first_responder(now)
                        if current.status == "pending"
                        else {"responder_since": now}
                    )
            tx.record(current.id, event)
            current = current.model_copy(update={"status": step.to_status, "level": step.to_level})
        level = moved.level
        if level != warning.level:
            values |= {"level": level, "severity": CAP_SEVERITY[level], "urgency": CAP_URGENCY[level]}
        if steps:
            values["updated_at"] = now
        tx.update(warning.id, values)
        if any(s.to_status != s.from_status or s.to_level != s.from_level for s in steps):
            changed.add((warning.hazard, warning.area, warning.exercise))
        if current.status == "resolved":
            return None
        walked = warning.model_copy(update={**values, "status": current.status})
        if level != warning.level and advise:
            self._refresh(tx, walked, [], opened=False, now=now, actor=actor, level_was=warning.level)
        return walked

    def _walks(self, warning: WarningOut, *, until: datetime, revisit: bool = False) -> bool:
        """Whether ``_walk`` has anything to do: an open grid warning whose clock is behind ``until``."""
        if warning.hazard == SENSOR_FAULT or warning.scope != "grid" or warning.status not in lifecycle.OPEN:
            return False
        return revisit or until > (warning.clock_at or warning.last_signal_at)

    def _walk_inputs(self, tx: WarningWriter, warnings: Sequence[WarningOut]) -> _WalkInputs:
        """What ``_walk`` reads of each of these warnings, in two queries for all of them: advancing
        every open warning of a batch's areas would otherwise cost two round trips each, per batch."""
        changes, evidence, settled = {}, {}, {}
        for w in warnings:
            clock, timing = w.clock_at or w.last_signal_at, self.lifecycle_config.timing(w.hazard)
            changes[w.id] = clock - timing.flap_time
            evidence[w.id] = clock - timing.release_time
            settled[w.id] = Settled(clock, EVIDENCE_FUSED)
        return _WalkInputs(
            tx.change_times_of(changes),
            tx.evidence_since_of(evidence, limit=EVIDENCE_SCANNED, settled=settled),
        )

    def advance(self, clock: Mapping[str, datetime], *, now: datetime, exercise: bool = False) -> None:
        """Move the open warnings of these areas (and those covering them) to each area's event time:
        the latest reading stored for it. Called by the sinks after each stored batch, and by a drill
        (``exercise``) with its own readings' times: each clock moves only its own warnings, so a
        drill's day never ends a real warning and the city's readings never end a drill's."""
        if not clock:
            return
        now = as_utc(now)
        clock = {a: as_utc(t) for a, t in clock.items()}
        changed: set[RollUpKey] = set()
        self._advance_once(clock, now=now, exercise=exercise, changed=changed)
        self._roll_up(changed, now=now)

    @retry(retry=retry_if_exception(worth_retrying), stop=stop_after_attempt(3), reraise=True)
    def _advance_once(
        self, clock: Mapping[str, datetime], *, now: datetime, exercise: bool, changed: set[RollUpKey]
    ) -> None:
        changed.clear()
        with self.repository.writing() as tx:
            walking = [
                (w, max(clock[a] for a in {w.area, *w.covers} if a in clock))
                for w in tx.open_in(sorted(clock), exercise=exercise)
            ]
            read = self._walk_inputs(tx, [w for w, until in walking if self._walks(w, until=until)])
            for warning, until in walking:
                # Up to, not at, the latest reading: readings of that same instant may come in the next batch.
                self._walk(
                    tx,
                    warning,
                    until=until,
                    before=True,
                    now=now,
                    actor=lifecycle.AUTOMATIC,
                    changed=changed,
                    advise=True,
                    read=read,
                )

    def _refresh(
        self,
        tx: WarningWriter,
        warning: WarningOut,
        group: list[Signal],
        *,
        opened: bool,
        now: datetime,
        actor: str,
        level_was: str,
    ) -> None:
        """Re-derive certainty, explanation and (when the level moved) advice for ``warning`` at the
        level the walk left it, from its evidence; ``group``: new signals (time-ordered) already stored
        with it, if any.

        Certainty and explanation read the latest window (the fusion window before the last signal);
        recommendations are re-issued only when the level changes, so their deadlines do not slide
        with every new signal, and count from the observation that earned the level.
        """
        level = warning.level
        last_new = from_ns(group[-1].ts_ns) if group else warning.clock_at or warning.last_signal_at
        first_new = from_ns(group[0].ts_ns) if group else last_new
        last_signal = max(warning.last_signal_at, last_new) if group else warning.last_signal_at
        # The latest window's newest rows; the whole span of the new signals' windows only when advice
        # is re-derived below (reading it every batch grew with the warning's evidence).
        latest = max(first_new, last_signal) - self.fusion_window
        evidence = tx.evidence_since(warning.id, since=latest, limit=EVIDENCE_FUSED)
        assessed = self.levels.assess(evidence)
        backing = certainty.corroborate(evidence)
        values: dict[str, Any] = {
            "certainty": backing.certainty,
            "confidence": backing.confidence,
            "headline": explanation.headline(
                level=level, hazard=warning.hazard, area=warning.area, names=self._names
            ),
            "explanation": explanation.explanation(
                level=level,
                hazard=warning.hazard,
                area=warning.area,
                evidence=evidence,
                corroboration=backing,
                assessment=assessed,
                units=self._units,
                names=self._names,
            ),
            "updated_at": now,
        }
        if group:
            values |= {
                "first_signal_at": min(warning.first_signal_at, first_new),
                "last_signal_at": last_signal,
                "signal_count": tx.evidence_count(warning.id),
                "covers": sorted({*warning.covers, warning.area, *(s.area for s in group)}),
            }
        if opened or level != level_was:
            release = self.lifecycle_config.timing(warning.hazard).release_time
            scanned = tx.evidence_since(
                warning.id, since=first_new - self.fusion_window, limit=EVIDENCE_SCANNED
            )
            cause = recommendations.trigger(
                self.levels, scanned, group, level=level, window=release, units=self._units
            )
            values["recommendations"] = recommendations.recommend(
                playbooks=self.playbooks,
                hazard=warning.hazard,
                level=level,
                area=warning.area,
                sensors=list(backing.sensors),
                now=cause.at if cause else last_new,
                why=cause.why if cause else recommendations.reason(assessed, evidence, self._units),
                assets=self.assets,
                areas=self.areas,
            )
        muted_by = warning.muted_by
        if self.mutes is not None and group:
            muted_by = self.mutes.mute_for(
                hazard=warning.hazard,
                area=warning.area,
                level=level,
                sensors=sorted({s.sensor_id for s in group if s.sensor_id}),
                at=last_new,
                exercise=warning.exercise,
            )
            values["muted_by"] = muted_by
        tx.update(warning.id, values)
        self._record_mute(tx, warning, muted_by, now=now, actor=actor)
        if not opened and backing.certainty != warning.certainty:
            change = f"{warning.certainty} -> {backing.certainty} ({backing.confidence:.0%})"
            tx.record(
                warning.id,
                lifecycle.status_event(
                    warning, warning.status, action="certainty", at=now, actor=actor, note=change
                ),
            )

    @staticmethod
    def _record_mute(
        tx: WarningWriter,
        warning: WarningOut,
        muted_by: str | None,
        *,
        now: datetime,
        actor: str,
        note: str = "",
    ) -> None:
        """A mute that starts records "muted" (note: what mutes it); one that ends records "unmuted",
        the notification that the warning is live."""
        if muted_by == warning.muted_by:
            return
        action = "muted" if muted_by is not None else "unmuted"
        reason = muted_by if muted_by is not None else note or f"was {warning.muted_by}"
        tx.record(
            warning.id,
            lifecycle.status_event(warning, warning.status, action=action, at=now, actor=actor, note=reason),
        )

    def set_muted(self, warning_id: str, muted_by: str | None, *, now: datetime, note: str = "") -> None:
        """Mute or unmute a warning without new signals: the sweep when a silence starts or ends."""
        now = as_utc(now)
        with self.repository.writing() as tx:
            current = tx.locked(warning_id)
            if current is None:
                raise WarningNotFound(warning_id)
            if current.muted_by == muted_by:
                return
            tx.update(warning_id, {"muted_by": muted_by})
            self._record_mute(tx, current, muted_by, now=now, actor=lifecycle.AUTOMATIC, note=note)

    # ---- operators --------------------------------------------------------------------

    def acknowledge(
        self, warning_id: str, *, now: datetime, actor: str, actor_role: str | None = None, note: str = ""
    ) -> WarningDetail:
        """``actor`` and ``actor_role``: the label and role of the API key that asked."""
        return self._operate(
            warning_id, "acknowledge", now=now, actor=actor, actor_role=actor_role, note=note
        )

    def resolve(
        self, warning_id: str, *, now: datetime, actor: str, actor_role: str | None = None, note: str = ""
    ) -> WarningDetail:
        return self._operate(warning_id, "resolve", now=now, actor=actor, actor_role=actor_role, note=note)

    def assign(
        self, warning_id: str, assignee: str, *, now: datetime, actor: str, actor_role: str | None = None
    ) -> WarningDetail:
        return self._operate(
            warning_id, "assign", now=now, actor=actor, actor_role=actor_role, note="", assignee=assignee
        )

    def annotate(
        self, warning_id: str, *, now: datetime, actor: str, note: str, actor_role: str | None = None
    ) -> WarningDetail:
        return self._operate(warning_id, "annotate", now=now, actor=actor, actor_role=actor_role, note=note)

    def escalate(
        self, warning_id: str, *, now: datetime, actor: str, actor_role: str | None = None, note: str = ""
    ) -> WarningDetail:
        """One level up; the level holds for the hazard's release before the clock may lower it."""
        return self._operate(warning_id, "escalate", now=now, actor=actor, actor_role=actor_role, note=note)

    def deescalate(
        self, warning_id: str, *, now: datetime, actor: str, actor_role: str | None = None, note: str = ""
    ) -> WarningDetail:
        """One level down; it holds until new evidence earns more."""
        return self._operate(warning_id, "deescalate", now=now, actor=actor, actor_role=actor_role, note=note)

    _ACTIONS: ClassVar[dict[lifecycle.Trigger, str]] = {
        "acknowledge": "acknowledged",
        "resolve": "resolved",
        "assign": "assigned",
        "annotate": "annotated",
        "escalate": "escalated",
        "deescalate": "deescalated",
    }

    def _operate(
        self,
        warning_id: str,
        trigger: lifecycle.Trigger,
        *,
        now: datetime,
        actor: str,
        actor_role: str | None,
        note: str,
        assignee: str | None = None,
    ) -> WarningDetail:
        """An operator's action through the transition table, recorded with who, when, before and after."""
        now = as_utc(now)
        with self.repository.writing() as tx:
            current = tx.locked(warning_id)
            if current is None:
                raise WarningNotFound(warning_id)
            target = lifecycle.next_status(warning_id, current.status, trigger)
            values: dict[str, Any] = {}
            level = current.level
            if trigger in ("escalate", "deescalate"):
                step = 1 if trigger == "escalate" else -1
                if not 0 <= rank(level) + step < len(LEVELS):
                    edge = "red already" if step > 0 else "blue: resolve it instead"
                    raise InvalidTransition(f"warning {warning_id} is {edge}")
                level = LEVELS[rank(level) + step]
                # An operator's level holds a release window before the clock may step it down again.
                below = current.clock_at if step > 0 else None
                values |= {
                    "level": level,
                    "severity": CAP_SEVERITY[level],
                    "urgency": CAP_URGENCY[level],
                    "below_since": below,
                }
            if trigger == "assign":
                values["assignee"] = assignee
                note = f"assigned to {assignee}"
            if target == "active" and current.status != "active":
                values |= {
                    "responder_since": now,
                    "responder": current.responder or self.lifecycle_config.chain[0],
                }
            # The row is locked, so this cannot miss; the compare-and-set is the guard that makes
            # a second, concurrent transition fail even where a store cannot lock.
            if target != current.status and not tx.change_status(
                warning_id, from_status=current.status, to_status=target, now=now
            ):
                raise InvalidTransition(f"warning {warning_id} changed while becoming {target}")
            if values:
                tx.update(warning_id, {**values, "updated_at": now})
            event = lifecycle.status_event(
                current,
                target,
                action=self._ACTIONS[trigger],
                at=now,
                actor=actor,
                actor_role=actor_role,
                note=note,
                to_level=level,
            )
            tx.record(warning_id, event)
            if target == "pending" and level == "red":
                target = self._activate_red(tx, current.model_copy(update={"level": level}), now=now)
            if level != current.level:
                self._refresh(
                    tx,
                    current.model_copy(update={"level": level, "status": target}),
                    [],
                    opened=False,
                    now=now,
                    actor=actor,
                    level_was=current.level,
                )
        if target != current.status or level != current.level:
            self._roll_up({(current.hazard, current.area, current.exercise)}, now=now)
        detail = self.get(warning_id)
        assert detail is not None
        return detail

    def _activate_red(self, tx: WarningWriter, pending: WarningOut, *, now: datetime) -> Status:
        """A pending warning an operator raised to red is active at once, as a red one opens."""
        target = lifecycle.next_status(pending.id, pending.status, "hold_elapsed")
        if not tx.change_status(pending.id, from_status=pending.status, to_status=target, now=now):
            raise InvalidTransition(f"warning {pending.id} changed while becoming {target}")
        tx.update(pending.id, {"activated_at": pending.clock_at, **self._first_responder(now)})
        event = lifecycle.status_event(
            pending,
            target,
            action="activated",
            at=now,
            actor=lifecycle.AUTOMATIC,
            note="red is active at once",
            event_time=pending.clock_at,
        )
        tx.record(pending.id, event)
        return target

    # ---- the escalation chain (wall clock) ------------------------------------------------

    def hand_up(self, *, now: datetime) -> list[str]:
        """Tell the next tier of the chain about each active warning nobody acknowledged in its
        level's ``ack_within`` (wall time, since its responder was told); returns their ids.
        A muted warning was told to nobody, so nobody is late answering it."""
        now = as_utc(now)
        config = self.lifecycle_config
        moved = []
        with self.repository.writing() as tx:
            for w in tx.open_with_status("active"):
                ack = config.ack_time(w.level)
                if ack is None or w.muted_by is not None or w.responder_since is None:
                    continue
                tier = config.chain.index(w.responder) if w.responder in config.chain else 0
                if tier + 1 >= len(config.chain) or now - w.responder_since < ack:
                    continue
                after = config.chain[tier + 1]
                tx.update(w.id, {"responder": after, "responder_since": now, "updated_at": now})
                note = (
                    f"{w.responder} -> {after}: not acknowledged within {ack.total_seconds() / 60:g} min "
                    f"at {w.level} (told {w.responder_since.isoformat()})"
                )
                tx.record(
                    w.id,
                    lifecycle.status_event(
                        w, "active", action="handed_up", at=now, actor=lifecycle.AUTOMATIC, note=note
                    ),
                )
                moved.append(w.id)
        return moved

    def note_stale(self, *, now: datetime) -> list[str]:
        """Say once, on each open warning that nothing has changed for ``stale_after`` of wall time, that
        its event-time clock may have stopped (no readings from its area) and that it is left as it is:
        absent data is no evidence that the danger has passed. Returns their ids."""
        now = as_utc(now)
        quiet_for = timedelta(minutes=self.lifecycle_config.stale_after)
        said = []
        with self.repository.writing() as tx:
            for status in sorted(lifecycle.OPEN):
                for w in tx.open_with_status(status):
                    if (
                        w.hazard == SENSOR_FAULT
                        or now - w.updated_at < quiet_for
                        or tx.last_action(w.id) == "stale"
                    ):
                        continue
                    clock = (w.clock_at or w.last_signal_at).isoformat()
                    note = (
                        f"no change since {w.updated_at.isoformat()} (wall); its readings' clock stands at "
                        f"{clock}: left {w.status} at {w.level}, as no data is no evidence the danger passed"
                    )
                    event = lifecycle.status_event(
                        w, w.status, action="stale", at=now, actor=lifecycle.AUTOMATIC, note=note
                    )
                    tx.record(w.id, event)
                    said.append(w.id)
        return said

    # ---- reads ------------------------------------------------------------------------

    def recent_evidence_in(self, areas: Sequence[str], *, since: datetime, limit: int = 50) -> list[Evidence]:
        """The latest signals behind warnings in these areas, newest first."""
        return self.repository.evidence_in(areas, since=since, limit=limit)

    def list(self, **filters: Unpack[WarningFilters]) -> WarningPage:
        """A page of warnings, newest change first (50 from the start unless ``limit``/``offset``)."""
        return self.repository.page(**filters)

    def get(self, warning_id: str) -> WarningDetail | None:
        return self.repository.detail(warning_id, evidence_shown=EVIDENCE_SHOWN)
