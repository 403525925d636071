"""Warning statuses and which transitions between them are allowed.

A warning opens ``active``; an operator may acknowledge it (someone is on it)
and resolve it (it is over). Resolved is final: new signals for the same
hazard and area open a new warning, so a closed incident's history stays as
it was when it was closed.
"""

from __future__ import annotations

from alerts.exceptions import InvalidTransition
from alerts.schemas import Status

OPEN: frozenset[Status] = frozenset({"active", "acknowledged"})

ALLOWED_FROM: dict[Status, frozenset[Status]] = {
    "acknowledged": frozenset({"active"}),
    "resolved": frozenset({"active", "acknowledged"}),
}


def check_transition(warning_id: str, current: Status, target: Status) -> None:
    """Raise ``InvalidTransition`` unless a warning in ``current`` may become ``target``."""
    if current not in ALLOWED_FROM.get(target, frozenset()):
        raise InvalidTransition(f"warning {warning_id} is {current}; cannot become {target}")
