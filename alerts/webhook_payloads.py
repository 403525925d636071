"""What an integrator's endpoint receives: the bodies of webhook deliveries, as the schema they code against.

Each body has the Standard Webhooks shape ``{"type", "timestamp", "data"}``; the headers
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``) sign it. ``data.warning`` is the
warning as it stood when the change committed, so a receiver that missed an earlier event (its
filter did not match it, or the warning was muted) still holds the whole picture after this one.
``data.change`` is the line of the warning's history the event tells of; its ``sequence`` grows
with every change of every warning, so a receiver can order a warning's events and drop stale ones.

The outbox (``alerts.outbox``) serializes a body once, compactly, and every attempt sends those
same bytes; the OpenAPI document publishes these models under ``webhooks`` (``app.api.webhook_docs``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from alerts.schemas import Scope, Status, WarningEvent, WarningOut

WarningEventType = Literal[
    "warning.opened",
    "warning.updated",
    "warning.escalated",
    "warning.deescalated",
    "warning.acknowledged",
    "warning.resolved",
]
# Every event type a subscription may ask for (alerts.subscriptions.EVENT_TYPES is made from it).
EventType = WarningEventType | Literal["recommendation.issued"]


class Recommendation(BaseModel):
    """One step of the city's playbook for the warning: what to do, where, by whom, by when, why."""

    model_config = ConfigDict(extra="allow")

    rank: int = Field(description="1 is the most urgent")
    rid: str = Field(description="Stable id of the step: the same action at the same level keeps it")
    level: str = Field(description="The level whose playbook lists the step")
    what: str
    where: dict[str, Any] = Field(description="Area (and its name, population), sensors, named assets")
    who: str
    within_minutes: int
    by: str = Field(
        description="Deadline, ISO 8601: within_minutes after the observation that earned the level"
    )
    why: str


class WarningState(BaseModel):
    """The warning as it stood when the change committed."""

    id: str
    hazard: str
    area: str = Field(description="The grid, district or 'city' the warning is about")
    scope: Scope = Field(description="grid; or district or city for a warning rolling grid warnings up")
    level: Literal["blue", "yellow", "orange", "red"]
    status: Status
    severity: str = Field(description="CAP 1.2 severity")
    urgency: str = Field(description="CAP 1.2 urgency")
    certainty: str = Field(description="CAP 1.2 certainty")
    confidence: float
    exercise: bool = Field(description="A drill's warning: no real danger")
    drill_id: str | None
    headline: str
    recommendations: list[Recommendation]
    first_signal_at: datetime
    last_signal_at: datetime
    covers: list[str] = Field(description="Every area its evidence is in, its own included")
    parent_id: str | None = Field(description="The district or city warning that rolls this one up")

    @classmethod
    def of(cls, warning: WarningOut) -> WarningState:
        return cls.model_validate(warning.model_dump(include=set(cls.model_fields)))


class Change(BaseModel):
    """The change the event tells of: one line of the warning's history."""

    sequence: int = Field(description="The history line's id: increases with every change of any warning")
    action: str = Field(description="opened, activated, escalated, acknowledged, resolved, assigned, ...")
    actor: str = Field(description="Who made it: an API key's label, or citywarn itself")
    actor_role: str | None
    from_status: str | None
    to_status: str
    from_level: str | None
    to_level: str
    note: str
    at: datetime = Field(description="When it was recorded (wall clock)")
    event_time: datetime | None = Field(description="The readings' clock it happened at; null for operators")

    @classmethod
    def of(cls, sequence: int, event: WarningEvent) -> Change:
        return cls(sequence=sequence, **event.model_dump())


class WarningEventData(BaseModel):
    warning: WarningState
    change: Change


class WarningEventPayload(BaseModel):
    """A warning opened, changed or ended."""

    type: WarningEventType
    timestamp: datetime = Field(description="When the change was recorded")
    data: WarningEventData


class RecommendationData(BaseModel):
    warning: WarningState
    recommendations: list[Recommendation] = Field(
        description="The warning's steps now; they replace earlier ones"
    )


class RecommendationPayload(BaseModel):
    """The warning's recommendations were issued or re-issued (when it is first told, or its level moved)."""

    type: Literal["recommendation.issued"]
    timestamp: datetime
    data: RecommendationData


class PingData(BaseModel):
    subscription_id: str


class PingPayload(BaseModel):
    """A test delivery asked for through the API; it tells of no warning."""

    type: Literal["ping"]
    timestamp: datetime
    data: PingData


WebhookPayload = Annotated[
    WarningEventPayload | RecommendationPayload | PingPayload, Field(discriminator="type")
]
