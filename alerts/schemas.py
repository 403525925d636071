"""API shapes of warnings, their evidence and their history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict

from pydantic import BaseModel

Status = Literal["pending", "active", "acknowledged", "resolved"]
Scope = Literal["grid", "district", "city"]


class Evidence(BaseModel):
    observed_at: datetime
    source: str
    sensor_id: str
    kind: str
    value: float
    score: float
    detector: str
    level: str | None
    details: dict[str, Any]
    report_ids: list[str]


class WarningEvent(BaseModel):
    """One line of a warning's history. ``actor`` is the label of the API key that made the change,
    with the key's role; for the service's own changes it names the service and the role is None."""

    at: datetime
    actor: str
    actor_role: str | None = None
    action: str
    from_status: str | None
    to_status: str
    from_level: str | None
    to_level: str
    note: str
    event_time: datetime | None = None  # the readings' clock it happened at; None for operators


class WarningOut(BaseModel):
    id: str
    hazard: str
    area: str
    level: str
    status: Status
    severity: str
    urgency: str
    certainty: str
    confidence: float
    exercise: bool
    headline: str
    explanation: str
    recommendations: list[dict[str, Any]]
    signal_count: int
    first_signal_at: datetime
    last_signal_at: datetime
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    # The lifecycle (alerts.lifecycle): defaults are what a warning stored before it means.
    flapping: bool = False
    assignee: str | None = None
    responder: str | None = None  # the escalation chain's current tier, from when it became active
    responder_since: datetime | None = None
    activated_at: datetime | None = None
    clock_at: datetime | None = None  # event time the lifecycle last evaluated it at
    below_since: datetime | None = None  # event time since when the condition is below the release line
    condition_level: str | None = None  # what the latest evidence earns now
    scope: Scope = "grid"
    parent_id: str | None = None  # the roll-up warning that references this one
    covers: list[str] = []  # every grid its evidence is in, plus its own area
    muted_by: str | None = None  # "silence:<id>" or "inhibited:<warning id>": notification held
    drill_id: str | None = None


class WarningDetail(WarningOut):
    evidence: list[Evidence]
    events: list[WarningEvent]


class WarningPage(BaseModel):
    items: list[WarningOut]
    total: int
    limit: int
    offset: int


class WarningFilters(TypedDict, total=False):
    """What a warning list may be narrowed by; every key optional (``limit`` 50, ``offset`` 0)."""

    status: str | None
    level: str | None
    area: str | None
    hazard: str | None
    since: datetime | None
    until: datetime | None
    areas: Sequence[str] | None
    exercise: bool | None
    scope: str | None
    open_only: bool
    limit: int
    offset: int
