"""A warning's life: one transition table for the clock and the operators, and the event-time walk.

Statuses: ``pending`` (the condition has not held long enough to tell anyone), ``active`` (people
are told), ``acknowledged`` (someone is on it) and ``resolved`` (over; final: new evidence for the
same hazard and area opens a new warning, so a closed incident's history stays as it was).

``TRANSITIONS`` is the only place that says which trigger moves which status where; the automatic
clock (``walk``) and the operators (``alerts.service``) both go through ``next_status``.

The walk runs on the readings' own clock (event time), so a day replayed at any speed, in one
batch or in many, makes the same transitions. A warning's condition at event time ``t`` is what
its evidence in ``(t - release, t]`` earns (``LevelRule.assess``): the decision step re-signals a
held line every reminder interval, so a window longer than that interval holds a line as long as
the gauge does, and loses it ``release`` after the last reminder. The walk visits only the instants
where something can change (evidence entering or leaving the window, the next release step, the
flap window's end) in order, so visiting them in one walk or several is the same:

- pending becomes active when evidence comes ``hold`` or more after the first (the condition held,
  confirmed by the line's reminders or new anomalies; one reading's window is no confirmation), at
  once when it is red (danger to life does not wait for a second reading); a pending warning whose
  window empties resolves, "did not hold", having told nobody;
- evidence that earns more escalates (an acknowledged warning becomes active again: someone must
  look at the new level);
- a window that earns less steps the level down one colour, then another after each further
  ``release`` below; a window with no evidence at all resolves the warning;
- ``flap_changes`` changes within ``flap_window`` mark the warning ``flapping`` and hold it at its
  higher state (no step down, no resolve) until a window passes without change.

Only the absence of data needs the wall clock: a warning whose area sends nothing is left as it is
(no reading is no evidence that the danger has passed), and the wall-clock sweep says so once.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from alerts.exceptions import InvalidTransition
from alerts.levels import CAP_SEVERITY, CAP_URGENCY, rank
from alerts.schemas import Evidence, Status, WarningEvent, WarningOut
from config.catalog import LEVELS
from config.lifecycle import HazardTiming

AUTOMATIC = "citywarn"  # the actor of transitions nobody asked for

OPEN: frozenset[Status] = frozenset({"pending", "active", "acknowledged"})

Trigger = Literal[
    "hold_elapsed",  # the condition held for the hazard's hold: pending -> active
    "condition_gone",  # the window emptied before the hold: pending -> resolved, nobody told
    "released",  # the window emptied: resolved
    "superseded",  # new evidence after more than the fusion window of quiet: a new incident
    "acknowledge",
    "assign",
    "annotate",
    "escalate",  # a level up; an acknowledged warning is active again
    "deescalate",
    "resolve",  # an operator's
    "hand_up",  # the escalation chain's next tier is told
]

_PENDING: Status = "pending"
_ACTIVE: Status = "active"
_ACKED: Status = "acknowledged"
_RESOLVED: Status = "resolved"
_OPEN_ORDER: tuple[Status, ...] = (_PENDING, _ACTIVE, _ACKED)


def _same(trigger: Trigger, statuses: Sequence[Status]) -> dict[tuple[Status, Trigger], Status]:
    return {(s, trigger): s for s in statuses}


def _to(trigger: Trigger, target: Status) -> dict[tuple[Status, Trigger], Status]:
    return {(s, trigger): target for s in _OPEN_ORDER}


TRANSITIONS: dict[tuple[Status, Trigger], Status] = {
    (_PENDING, "hold_elapsed"): _ACTIVE,
    (_PENDING, "condition_gone"): _RESOLVED,
    (_ACTIVE, "released"): _RESOLVED,
    (_ACKED, "released"): _RESOLVED,
    # An operator who takes on a pending warning has confirmed it: it is theirs, told or not.
    (_PENDING, "acknowledge"): _ACKED,
    (_ACTIVE, "acknowledge"): _ACKED,
    **_same("assign", _OPEN_ORDER),
    # Notes are the after-action record too, so a resolved warning still takes them (and stays resolved).
    **_same("annotate", (*_OPEN_ORDER, _RESOLVED)),
    (_PENDING, "escalate"): _PENDING,
    (_ACTIVE, "escalate"): _ACTIVE,
    (_ACKED, "escalate"): _ACTIVE,  # a higher level than the one acknowledged: someone must look again
    **_same("deescalate", _OPEN_ORDER),
    **_to("resolve", _RESOLVED),
    **_to("superseded", _RESOLVED),
    (_ACTIVE, "hand_up"): _ACTIVE,
}


def next_status(warning_id: str, current: Status, trigger: Trigger) -> Status:
    """Where ``trigger`` takes a warning in ``current``; ``InvalidTransition`` if it cannot."""
    target = TRANSITIONS.get((current, trigger))
    if target is None:
        raise InvalidTransition(f"warning {warning_id} is {current}; cannot {trigger.replace('_', ' ')}")
    return target


def check_transition(warning_id: str, current: Status, target: Status) -> None:
    """Raise ``InvalidTransition`` unless some trigger in the table moves ``current`` to ``target``."""
    if current == target or not any(to == target for (frm, _), to in TRANSITIONS.items() if frm == current):
        raise InvalidTransition(f"warning {warning_id} is {current}; cannot become {target}")


def first_status(level: str, timing: HazardTiming) -> Status:
    """A new warning is pending until its condition has held, unless the hazard needs no hold or it
    is red (danger to life now: waiting for a second reading would delay an evacuation)."""
    return _ACTIVE if timing.hold == 0 or level == "red" else _PENDING


def quiet_note(
    *, window: timedelta, last_signal: datetime, new_signal: datetime, successor: str, opened: bool
) -> str:
    """Why citywarn resolved a warning: how long it was quiet, and where the new evidence went."""
    went = "opened" if opened else "joined"
    return (
        f"quiet for longer than the fusion window ({window.total_seconds() / 3600:g} h): last signal "
        f"{last_signal.isoformat()}, new evidence {new_signal.isoformat()} {went} warning {successor}"
    )


def new_warning(
    hazard: str,
    area: str,
    level: str,
    *,
    first: datetime,
    last: datetime,
    now: datetime,
    status: Status = "active",
) -> WarningOut:
    """A warning as it opens, at ``level``, before its evidence, certainty and advice are derived."""
    return WarningOut(
        id=str(uuid.uuid4()),
        hazard=hazard,
        area=area,
        status=status,
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
        first_signal_at=first,
        last_signal_at=last,
        created_at=now,
        updated_at=now,
        resolved_at=None,
        activated_at=first if status == _ACTIVE else None,
        clock_at=first,
        condition_level=level,
        covers=[area],
    )


def opened_event(
    level: str,
    *,
    at: datetime,
    actor: str,
    note: str,
    status: Status = "active",
    event_time: datetime | None = None,
) -> WarningEvent:
    """The history's first line: the warning opened, in ``status``, at ``level``."""
    return WarningEvent(
        at=at,
        actor=actor,
        action="opened",
        from_status=None,
        to_status=status,
        from_level=None,
        to_level=level,
        note=note,
        event_time=event_time,
    )


def status_event(
    warning: WarningOut,
    to_status: str,
    *,
    action: str,
    at: datetime,
    actor: str,
    note: str,
    actor_role: str | None = None,
    to_level: str | None = None,
    event_time: datetime | None = None,
) -> WarningEvent:
    """A history line that moves ``warning`` to ``to_status`` (or keeps it), at ``to_level`` (or the
    level it has); ``actor_role`` is the role of the API key that asked, None when citywarn acts."""
    return WarningEvent(
        at=at,
        actor=actor,
        actor_role=actor_role,
        action=action,
        from_status=warning.status,
        to_status=to_status,
        from_level=warning.level,
        to_level=to_level or warning.level,
        note=note,
        event_time=event_time,
    )


# ---- the event-time walk ------------------------------------------------------------------------

CHANGES = frozenset({"escalated", "deescalated", "activated"})  # what counts towards flapping


@dataclass(frozen=True, slots=True)
class Life:
    """What the walk reads and moves: a warning's lifecycle state at event time ``clock_at``."""

    status: Status
    level: str
    first_signal_at: datetime
    clock_at: datetime
    below_since: datetime | None = None
    flapping: bool = False
    activated_at: datetime | None = None
    condition_level: str | None = None
    changes: tuple[datetime, ...] = ()  # event times of recent changes (``CHANGES``), oldest first

    @classmethod
    def of(cls, w: WarningOut, changes: Sequence[datetime]) -> Life:
        return cls(
            status=w.status,
            level=w.level,
            first_signal_at=w.first_signal_at,
            clock_at=w.clock_at or w.last_signal_at,
            below_since=w.below_since,
            flapping=w.flapping,
            activated_at=w.activated_at,
            condition_level=w.condition_level,
            changes=tuple(changes),
        )


@dataclass(frozen=True, slots=True)
class Step:
    """One transition the walk made, at event time ``event_time``. ``by_evidence``: caused by evidence
    entering the window (its actor is the detector that sent it), else by the clock (citywarn)."""

    event_time: datetime
    action: str
    from_status: Status
    to_status: Status
    from_level: str
    to_level: str
    note: str
    by_evidence: bool = False


@dataclass(slots=True)
class _Walk:
    life: Life
    evidence: Sequence[Evidence]  # time-ordered
    times: list[datetime]
    timing: HazardTiming
    earn: Callable[[Sequence[Evidence]], str]
    steps: list[Step] = field(default_factory=list)

    def window(self, c: datetime) -> Sequence[Evidence]:
        lo = bisect_right(self.times, c - self.timing.release_time)
        return self.evidence[lo : bisect_right(self.times, c)]

    def step(
        self,
        c: datetime,
        action: str,
        *,
        to_status: Status | None = None,
        to_level: str | None = None,
        note: str,
        by_evidence: bool = False,
    ) -> None:
        life = self.life
        status, level = to_status or life.status, to_level or life.level
        self.steps.append(Step(c, action, life.status, status, life.level, level, note, by_evidence))
        changes = (*life.changes, c) if action in CHANGES else life.changes
        self.life = replace(life, status=status, level=level, changes=changes)

    def evaluate(self, c: datetime, *, entering: bool) -> None:
        life, t = self.life, self.timing
        if life.status == _RESOLVED:
            return
        window = self.window(c)
        earned = self.earn(window) if window else None
        self.life = replace(self.life, condition_level=earned, clock_at=max(life.clock_at, c))
        recent = tuple(x for x in self.life.changes if x > c - t.flap_time)
        self.life = replace(self.life, changes=recent)
        if self.life.flapping and not recent:
            self.life = replace(self.life, flapping=False)
            self.step(c, "steady", note=f"no change in the {t.flap_window:g} min before {c.isoformat()}")
        if earned is None:
            if not self._flaps_instead(c, "resolve"):
                self._emptied(c)
            return
        level = self.life.level
        if entering and rank(earned) > rank(level):
            status = next_status("", self.life.status, "escalate")
            self.step(
                c,
                "escalated",
                to_status=status,
                to_level=earned,
                by_evidence=True,
                note=f"evidence in ({_hm(c - t.release_time)}, {_hm(c)}] earns {earned}",
            )
            self.life = replace(self.life, below_since=None)
            self._flaps_instead(c, "escalate")
        elif rank(earned) < rank(level):
            since = self.life.below_since
            due = since is None or c - since >= t.release_time
            if due and not self.life.flapping and not self._flaps_instead(c, "step down"):
                lower = LEVELS[rank(level) - 1]
                below = f"below {level} since {_hm(since)}" if since else f"no {level} evidence"
                self.step(
                    c,
                    "deescalated",
                    to_level=lower,
                    note=f"{below}: evidence in ({_hm(c - t.release_time)}, {_hm(c)}] earns {earned}",
                )
                self.life = replace(self.life, below_since=c)
        else:
            self.life = replace(self.life, below_since=None)
        life = self.life
        held = c - life.first_signal_at >= t.hold_time
        # Held means confirmed: new evidence at least ``hold`` after the first, not one reading's window.
        if life.status == _PENDING and ((entering and held) or life.level == "red"):
            why = (
                f"held {t.hold:g} min since {_hm(life.first_signal_at)}" if held else "red is active at once"
            )
            self.step(c, "activated", to_status=next_status("", _PENDING, "hold_elapsed"), note=why)
            self.life = replace(self.life, activated_at=c)
            self._flaps_instead(c, "activate")

    def _flaps_instead(self, c: datetime, change: str) -> bool:
        """Whether the warning is (now) flapping: ``flap_changes`` changes within the window, counting
        a step down or resolve about to be made. Marking it holds the state it is in: the higher one."""
        life, t = self.life, self.timing
        if life.flapping:
            return True
        coming = 0 if change in ("escalate", "activate") else 1
        if len(life.changes) + coming < t.flap_changes:
            return False
        self.life = replace(life, flapping=True)
        count = len(life.changes) + coming
        note = f"{count} changes within {t.flap_window:g} min to {_hm(c)}: held at {life.level}"
        self.step(c, "flapping", note=note)
        return True

    def _emptied(self, c: datetime) -> None:
        life, t = self.life, self.timing
        since = c - t.release_time
        if life.status == _PENDING:
            self.step(
                c,
                "resolved",
                to_status=next_status("", _PENDING, "condition_gone"),
                note=f"did not hold: no evidence in ({_hm(since)}, {_hm(c)}], nobody was told",
            )
        else:
            self.step(
                c,
                "resolved",
                to_status=next_status("", life.status, "released"),
                note=f"released: no evidence in ({_hm(since)}, {_hm(c)}]",
            )

    def deadlines(self, after: datetime) -> list[datetime]:
        life, t = self.life, self.timing
        found = []
        if life.below_since is not None:
            found.append(life.below_since + t.release_time)
        if life.flapping and life.changes:
            found.append(life.changes[-1] + t.flap_time)
        return [d for d in found if d > after]


def walk(
    life: Life,
    evidence: Sequence[Evidence],
    timing: HazardTiming,
    earn: Callable[[Sequence[Evidence]], str],
    *,
    until: datetime,
    before: bool = False,
    revisit: bool = False,
) -> tuple[Life, list[Step]]:
    """Move ``life`` from its ``clock_at`` to event time ``until`` (``before``: up to but not at it).

    ``evidence``: the warning's evidence from at least ``release`` before ``clock_at`` on, time-ordered;
    ``earn``: the level a window of it earns. ``revisit``: evidence came in at or before ``clock_at``
    (a late reading), so the state at ``clock_at`` is evaluated again with it.
    """
    ordered = sorted(evidence, key=lambda e: e.observed_at)
    times = [e.observed_at for e in ordered]
    w = _Walk(life, ordered, times, timing, earn)
    start = life.clock_at
    if revisit:
        w.evaluate(start, entering=True)
    release = timing.release_time
    fixed = sorted({x for x in times if x > start} | {x + release for x in times if x + release > start})
    entering = set(times)
    i = bisect_left(fixed, start)
    c = start
    while w.life.status != _RESOLVED:
        while i < len(fixed) and fixed[i] <= c:
            i += 1
        candidates = ([fixed[i]] if i < len(fixed) else []) + w.deadlines(c)
        if not candidates:
            break
        nxt = min(candidates)
        if nxt > until or (before and nxt == until):
            break
        c = nxt
        w.evaluate(c, entering=c in entering)
    end = until if not before else max(start, until - timedelta(microseconds=1))
    if w.life.status != _RESOLVED:
        w.life = replace(w.life, clock_at=max(w.life.clock_at, end))
    return w.life, w.steps


def _hm(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M:%S UTC")
