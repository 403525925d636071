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

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, Unpack

import sqlalchemy as sa
from tenacity import retry, retry_if_exception, stop_after_attempt

from alerts import certainty, explanation, lifecycle, recommendations
from alerts.exceptions import InvalidTransition, WarningNotFound
from alerts.grouping import Grouping, by_hazard_and_area, incidents
from alerts.levels import CAP_SEVERITY, CAP_URGENCY, LevelRule, higher
from alerts.repository import SqlWarningRepository, WarningRepository, WarningWriter
from alerts.schemas import (
    Evidence,
    Status,
    WarningDetail,
    WarningEvent,
    WarningFilters,
    WarningOut,
    WarningPage,
)
from alerts.witnesses import as_evidence
from config.areas import AreaIndex
from config.assets import AssetRegister
from config.catalog import Catalog
from config.playbooks import Playbooks
from config.settings import Settings
from config.timeutil import as_utc, from_ns
from models.signals import Signal

EVIDENCE_SHOWN = 200
EVIDENCE_FUSED = 500  # the most recent evidence rows of a window that level, certainty and explanation read
EVIDENCE_SCANNED = 20_000  # the most rows read to assess the windows of one incident's new signals

_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # PostgreSQL: serialization failure, deadlock detected


def _worth_retrying(exc: BaseException) -> bool:
    """Two batches opening one (hazard, area) at once: the loser's unique key fails, and its
    retry joins the winner's warning. PostgreSQL may also break a lock cycle by failing one."""
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
    ) -> None:
        self.repository: WarningRepository = repository or SqlWarningRepository(engine)
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

    @retry(retry=retry_if_exception(_worth_retrying), stop=stop_after_attempt(3), reraise=True)
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
                for run in incidents(group, self.fusion_window):
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
        """One incident's time-ordered signals: join or open a warning, ending a quiet one first."""
        joining = self.grouping.warning_for(tx, key, run)
        ended = joining.ended
        if ended is not None:
            changed.add((ended.hazard, ended.area, ended.exercise))
        if ended is not None:
            # First, so its (hazard, area) slot is free for the warning this evidence opens.
            lifecycle.check_transition(ended.id, ended.status, "resolved")
            if not tx.change_status(ended.id, from_status=ended.status, to_status="resolved", now=now):
                raise InvalidTransition(f"warning {ended.id} changed while ending")
        warning = joining.warning or self._open(tx, key, run, now=now, actor=actor)
        if ended is not None:
            note = lifecycle.quiet_note(
                window=self.fusion_window,
                last_signal=ended.last_signal_at,
                new_signal=from_ns(run[0].ts_ns),
                successor=warning.id,
                opened=joining.warning is None,
            )
            quiet = lifecycle.status_event(
                ended, "resolved", action="resolved", at=now, actor=lifecycle.AUTOMATIC, note=note
            )
            tx.record(ended.id, quiet)
        tx.add_evidence(warning.id, run)
        if self._refresh(tx, warning, run, opened=joining.warning is None, now=now, actor=actor):
            changed.add((warning.hazard, warning.area, warning.exercise))
        return warning.id

    def _earned(self, evidence: Sequence[Evidence], run: Sequence[Signal]) -> str:
        """The highest level any new signal's own window (evidence in [its time - window, its time])
        earns: what the same signals earn however they were batched."""
        ordered = sorted(evidence, key=lambda e: e.observed_at)
        times = [e.observed_at for e in ordered]
        best = "blue"
        for at in sorted({from_ns(s.ts_ns) for s in run}):
            hi = bisect_right(times, at)
            lo = max(bisect_left(times, at - self.fusion_window), hi - EVIDENCE_FUSED)
            best = higher(best, self.levels.assess(ordered[lo:hi]).level)
        return best

    def _open(
        self, tx: WarningWriter, key: tuple[str, str, bool], group: list[Signal], *, now: datetime, actor: str
    ) -> WarningOut:
        hazard, area, exercise = key
        # The evidence as stored: one row per sensor and time, the first given (``add_evidence``).
        stored = {(s.sensor_id, s.ts_ns): s for s in reversed(group)}
        level = self._earned([as_evidence(s) for s in stored.values()], group)
        warning = lifecycle.new_warning(
            hazard,
            area,
            level,
            first=from_ns(min(s.ts_ns for s in group)),
            last=from_ns(max(s.ts_ns for s in group)),
            now=now,
        )
        drill = next((s.drill_id for s in group if s.drill_id), None)
        warning = warning.model_copy(update={"exercise": exercise, "drill_id": drill})
        tx.insert(warning)
        opened = lifecycle.opened_event(level, at=now, actor=actor, note=f"{len(group)} signal(s)")
        tx.record(warning.id, opened)
        return warning

    def _refresh(
        self,
        tx: WarningWriter,
        warning: WarningOut,
        group: list[Signal],
        *,
        opened: bool,
        now: datetime,
        actor: str,
    ) -> bool:
        """Re-derive level, certainty and explanation from the warning's evidence, ``group`` (time-ordered)
        already stored with it.

        The level is the highest of the warning's own, what any new signal's window earns and what
        the latest window earns; certainty and explanation read the latest window (the fusion window
        before the last signal). ``warning`` was read locked in this transaction, so the level it
        holds is the latest committed one and the level written here can only be higher: never
        lower than a level a concurrent batch raised. True when it opened or its level changed.
        """
        first_new, last_new = from_ns(group[0].ts_ns), from_ns(group[-1].ts_ns)
        last_signal = max(warning.last_signal_at, last_new)
        scanned = tx.evidence_since(warning.id, since=first_new - self.fusion_window, limit=EVIDENCE_SCANNED)
        evidence = [e for e in scanned if e.observed_at >= last_signal - self.fusion_window][:EVIDENCE_FUSED]
        assessed = self.levels.assess(evidence)
        level = higher(higher(warning.level, assessed.level), self._earned(scanned, group))
        backing = certainty.corroborate(evidence)
        why = explanation.explanation(
            level=level,
            hazard=warning.hazard,
            area=warning.area,
            evidence=evidence,
            corroboration=backing,
            assessment=assessed,
            units=self._units,
            names=self._names,
        )
        values: dict[str, Any] = {
            "level": level,
            "severity": CAP_SEVERITY[level],
            "urgency": CAP_URGENCY[level],
            "certainty": backing.certainty,
            "confidence": backing.confidence,
            "headline": explanation.headline(
                level=level, hazard=warning.hazard, area=warning.area, names=self._names
            ),
            "explanation": why,
            "first_signal_at": min(warning.first_signal_at, first_new),
            "last_signal_at": last_signal,
            "updated_at": now,
            "signal_count": tx.evidence_count(warning.id),
        }
        if opened or level != warning.level:
            # Recommendations are re-issued only when the level changes, so their
            # deadlines do not slide with every new signal.
            # Deadlines count from the observation that earned the level, not from processing time.
            cause = recommendations.trigger(
                self.levels, scanned, group, level=level, window=self.fusion_window, units=self._units
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
        if self.mutes is not None:
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
        self._record_mute(tx, warning.model_copy(update={"level": level}), muted_by, now=now, actor=actor)
        if opened:
            return True

        def same_status(action: str, from_level: str, note: str) -> WarningEvent:
            status = warning.status
            return WarningEvent(
                at=now,
                actor=actor,
                action=action,
                from_status=status,
                to_status=status,
                from_level=from_level,
                to_level=level,
                note=note,
            )

        if level != warning.level:
            tx.record(warning.id, same_status("escalated", warning.level, f"{len(group)} new signal(s)"))
        if backing.certainty != warning.certainty:
            change = f"{warning.certainty} -> {backing.certainty} ({backing.confidence:.0%})"
            tx.record(warning.id, same_status("certainty", level, change))
        return level != warning.level

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
        return self._transition(
            warning_id, "acknowledged", now=as_utc(now), actor=actor, actor_role=actor_role, note=note
        )

    def resolve(
        self, warning_id: str, *, now: datetime, actor: str, actor_role: str | None = None, note: str = ""
    ) -> WarningDetail:
        """``actor`` and ``actor_role``: the label and role of the API key that asked."""
        return self._transition(
            warning_id, "resolved", now=as_utc(now), actor=actor, actor_role=actor_role, note=note
        )

    def _transition(
        self, warning_id: str, target: Status, *, now: datetime, actor: str, actor_role: str | None, note: str
    ) -> WarningDetail:
        with self.repository.writing() as tx:
            current = tx.locked(warning_id)
            if current is None:
                raise WarningNotFound(warning_id)
            lifecycle.check_transition(warning_id, current.status, target)
            # The row is locked, so this cannot miss; the compare-and-set is the guard that makes
            # a second, concurrent transition fail even where a store cannot lock.
            if not tx.change_status(warning_id, from_status=current.status, to_status=target, now=now):
                raise InvalidTransition(f"warning {warning_id} changed while becoming {target}")
            changed = lifecycle.status_event(
                current, target, action=target, at=now, actor=actor, actor_role=actor_role, note=note
            )
            tx.record(warning_id, changed)
        self._roll_up({(current.hazard, current.area, current.exercise)}, now=now)
        detail = self.get(warning_id)
        assert detail is not None
        return detail

    # ---- reads ------------------------------------------------------------------------

    def recent_evidence_in(self, areas: Sequence[str], *, since: datetime, limit: int = 50) -> list[Evidence]:
        """The latest signals behind warnings in these areas, newest first."""
        return self.repository.evidence_in(areas, since=since, limit=limit)

    def list(self, **filters: Unpack[WarningFilters]) -> WarningPage:
        """A page of warnings, newest change first (50 from the start unless ``limit``/``offset``)."""
        return self.repository.page(**filters)

    def get(self, warning_id: str) -> WarningDetail | None:
        return self.repository.detail(warning_id, evidence_shown=EVIDENCE_SHOWN)
