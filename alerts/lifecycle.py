"""Warning statuses and which transitions between them are allowed.

A warning opens ``active``; an operator may acknowledge it (someone is on it)
and resolve it (it is over). Resolved is final: new signals for the same
hazard and area open a new warning, so a closed incident's history stays as
it was when it was closed.

citywarn resolves a warning itself when evidence for its hazard and area
comes after more than the fusion window of quiet (``alerts.grouping``): that
evidence is a new incident, and it opens a warning of its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from alerts.exceptions import InvalidTransition
from alerts.levels import CAP_SEVERITY, CAP_URGENCY
from alerts.schemas import Status, WarningEvent, WarningOut

AUTOMATIC = "citywarn"  # the actor of transitions nobody asked for

OPEN: frozenset[Status] = frozenset({"pending", "active", "acknowledged"})

ALLOWED_FROM: dict[Status, frozenset[Status]] = {
    "acknowledged": frozenset({"active"}),
    "resolved": frozenset({"active", "acknowledged"}),
}


def check_transition(warning_id: str, current: Status, target: Status) -> None:
    """Raise ``InvalidTransition`` unless a warning in ``current`` may become ``target``."""
    if current not in ALLOWED_FROM.get(target, frozenset()):
        raise InvalidTransition(f"warning {warning_id} is {current}; cannot become {target}")


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
    hazard: str, area: str, level: str, *, first: datetime, last: datetime, now: datetime
) -> WarningOut:
    """A warning as it opens: active, at ``level``, before its evidence, certainty and advice are derived."""
    return WarningOut(
        id=str(uuid.uuid4()),
        hazard=hazard,
        area=area,
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
        first_signal_at=first,
        last_signal_at=last,
        created_at=now,
        updated_at=now,
        resolved_at=None,
    )


def opened_event(level: str, *, at: datetime, actor: str, note: str) -> WarningEvent:
    """The history's first line: the warning opened, active, at ``level``."""
    return WarningEvent(
        at=at,
        actor=actor,
        action="opened",
        from_status=None,
        to_status="active",
        from_level=None,
        to_level=level,
        note=note,
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
) -> WarningEvent:
    """A history line that moves ``warning`` to ``to_status`` (or keeps it) at the level it has;
    ``actor_role`` is the role of the API key that asked, None when citywarn itself acts."""
    return WarningEvent(
        at=at,
        actor=actor,
        actor_role=actor_role,
        action=action,
        from_status=warning.status,
        to_status=to_status,
        from_level=warning.level,
        to_level=warning.level,
        note=note,
    )
