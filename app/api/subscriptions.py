"""Webhook subscriptions for integrators: manage them, see their deliveries, retry, replay, ping.

An integrator key sees only the subscriptions it created; another's is a 404, as if it did not
exist, so ids do not leak. An admin key sees and changes all of them. The signing secret is shown
twice only: in the answer to the create and to a rotation; after that nobody can read it back, and
a lost secret is replaced by rotating. Target URLs are checked (``alerts.webhook_targets``) when a
subscription is made or its URL changed, and again by the delivery worker before every attempt.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from alerts.subscription_store import Attempt, Delivery, NotRetryable, SubscriptionStore
from alerts.subscriptions import EVENT_TYPES, Filters, Subscription
from alerts.webhook_targets import UnsafeTarget, check_url
from app.api.deps import Now, required_instant, services, time_bound
from app.auth.deps import require
from app.auth.roles import Permission, Principal
from app.services import Services
from config.catalog import LEVELS, SENSOR_FAULT, Level
from ingest.schemas import ID_PATTERN

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])
Subscriber = Annotated[Principal, Depends(require(Permission.SUBSCRIBE))]

EventType = Literal[
    "warning.opened",
    "warning.updated",
    "warning.escalated",
    "warning.deescalated",
    "warning.acknowledged",
    "warning.resolved",
    "recommendation.issued",
]
assert get_args(EventType) == EVENT_TYPES, "the schema's event types are alerts.subscriptions'"
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="Where deliveries are POSTed: http or https, no user:password@, and a host that "
        "resolves to public addresses only (unless the service allows private targets).",
        examples=["https://district-command.example.org/citywarn/webhook"],
    ),
]
# One error for a wrong level (a plain union would add "or null" as a second), and no null in the
# schema: a null is refused like every other field's (leave it out).
OptionalLevel = Annotated[Level | None, WithJsonSchema({"type": "string", "enum": list(LEVELS)})]
Description = Annotated[str, Field(max_length=2000, pattern=r"^[^\x00]*$")]
Hazard = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
AreaName = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
SubscriptionId = Annotated[
    str, Path(max_length=36, pattern=r"^[0-9a-f-]+$", description="A subscription's id")
]
DeliveryId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A delivery's id")]  # the column is 32-bit
replay_since = required_instant("since", doc="The messages first queued at or after")
replay_until = time_bound("until", doc="Queued before (default: now)")

HISTORY_SHOWN = 100
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No subscription has this id (or it is another integrator's)"}
}


def _not_null(value: object) -> object:
    """The schema has no null for these fields: leave a field out rather than send null."""
    if value is None:
        raise ValueError("null is not allowed: leave the field out")
    return value


class SubscriptionIn(BaseModel):
    """Every filter left out or empty matches everything; the filters given must all match."""

    model_config = ConfigDict(extra="forbid")

    url: Url
    description: Description = ""
    event_types: list[EventType] = Field(default=[], max_length=len(EVENT_TYPES), description="None: all")
    hazards: list[Hazard] = Field(default=[], max_length=50, description="None: all")
    min_level: OptionalLevel = Field(
        default=None,
        description="The warning's level before or after the change is at least this (so a red "
        "subscription hears the step down from red); none: every level",
    )
    areas: list[AreaName] = Field(
        default=[], max_length=200, description="Districts or grids, each with the areas inside it; none: all"
    )
    include_exercises: bool = Field(default=False, description="Also drills' exercise warnings")

    _no_nulls = field_validator("*", mode="before")(_not_null)


class SubscriptionPatch(BaseModel):
    """The fields given replace the subscription's; ``min_level: null`` removes the level filter.

    ``enabled: true`` starts a disabled endpoint afresh (its reason and failure run cleared)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    url: Url | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None
    event_types: list[EventType] | SkipJsonSchema[None] = Field(default=None, max_length=len(EVENT_TYPES))
    hazards: list[Hazard] | SkipJsonSchema[None] = Field(default=None, max_length=50)
    min_level: Level | None = None
    areas: list[AreaName] | SkipJsonSchema[None] = Field(default=None, max_length=200)
    include_exercises: bool | SkipJsonSchema[None] = None
    enabled: bool | SkipJsonSchema[None] = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_nulls(cls, value: object, info: Any) -> object:
        return value if info.field_name == "min_level" else _not_null(value)

    @model_validator(mode="after")
    def _something(self) -> SubscriptionPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give at least one field")
        return self


class ReasonIn(BaseModel):
    """Why, for the subscription's history (optional, as is the body)."""

    model_config = ConfigDict(extra="forbid")

    note: Description = Field(default="", examples=["receiver restored from backup"])


ReasonBody = Annotated[ReasonIn | None, Body()]


class SubscriptionOut(BaseModel):
    id: str
    url: str
    description: str
    event_types: list[str]
    hazards: list[str]
    min_level: Level | None
    areas: list[str]
    include_exercises: bool
    enabled: bool
    disabled_reason: str | None = Field(description="Who or what disabled it, and why")
    disabled_at: datetime | None
    failures: int = Field(description="Failed attempts in a row since the last 2xx")
    failing_since: datetime | None
    owner: str = Field(description="The id of the API key that created it")
    owner_label: str
    created_at: datetime
    updated_at: datetime
    previous_secret_valid_until: datetime | None = Field(
        description="After a rotation: until when deliveries are also signed with the previous secret"
    )


class SubscriptionEventOut(BaseModel):
    at: datetime
    actor: str = Field(description="The API key's label, or citywarn for what the service did itself")
    action: str = Field(
        description="created, updated, disabled, enabled, secret_rotated, pinged, delivery_retried, "
        "replayed, deleted; auto_disabled when citywarn disabled it (410 Gone, or a long run of failures)"
    )
    note: str


class SubscriptionDetail(SubscriptionOut):
    history: list[SubscriptionEventOut] = Field(
        description=f"What was done to it and by whom, oldest first (the latest {HISTORY_SHOWN})"
    )


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(
        description="The signing secret (whsec_...): shown only in this answer; rotate to get a new one"
    )


class SubscriptionPage(BaseModel):
    items: list[SubscriptionOut]
    total: int
    limit: int
    offset: int


class AttemptOut(BaseModel):
    attempt: int = Field(description="1 for the first of its schedule (a retry by hand starts again)")
    started_at: datetime
    status_code: int | None = Field(description="None when no answer came")
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None


class DeliveryOut(BaseModel):
    id: int
    message_id: str = Field(description="The webhook-id header: the same on every attempt and replay")
    event_type: str
    warning_id: str | None
    status: Literal["pending", "delivered", "failed", "cancelled"]
    created_at: datetime
    attempt_count: int = Field(description="Attempts in its current schedule")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due, if pending")
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    delivered_at: datetime | None
    attempts: list[AttemptOut] = Field(description="Every attempt, oldest first")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


class ReplayOut(BaseModel):
    queued: int = Field(description="Messages queued again, each with its original message_id")
    deliveries: list[DeliveryOut]


def _store(svc: Annotated[Services, Depends(services)]) -> SubscriptionStore:
    return SubscriptionStore(svc.engine)


Store = Annotated[SubscriptionStore, Depends(_store)]


def scope_of(who: Principal) -> str | None:
    """An integrator's rows are its own key's; an admin's scope is every row."""
    return None if who.may(Permission.ADMINISTER) else who.key_id


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionCreated,
    summary="Subscribe a URL to warning events; the answer holds the signing secret, once",
)
def create_subscription(
    body: SubscriptionIn, who: Subscriber, svc: Annotated[Services, Depends(services)], store: Store, at: Now
) -> SubscriptionCreated:
    _refuse_if_any(_problems(svc, body.model_dump(exclude_unset=True)))
    filters = Filters(
        event_types=tuple(dict.fromkeys(body.event_types)),
        hazards=tuple(dict.fromkeys(body.hazards)),
        min_level=body.min_level,
        areas=tuple(dict.fromkeys(body.areas)),
        include_exercises=body.include_exercises,
    )
    sub = store.create(
        url=body.url,
        description=body.description,
        filters=filters,
        owner=who.key_id,
        owner_label=who.label,
        now=at,
    )
    return SubscriptionCreated(**_out(sub, at).model_dump(), secret=sub.secret)


@router.get(
    "", response_model=SubscriptionPage, summary="Subscriptions: one's own (an admin: all), newest first"
)
def list_subscriptions(
    who: Subscriber,
    store: Store,
    at: Now,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SubscriptionPage:
    items, total = store.page(scope=scope_of(who), limit=limit, offset=offset)
    return SubscriptionPage(items=[_out(s, at) for s in items], total=total, limit=limit, offset=offset)


@router.get(
    "/{subscription_id}",
    response_model=SubscriptionDetail,
    responses=NOT_FOUND,
    summary="One subscription, with its history (an automatic disabling says why here)",
)
def get_subscription(
    subscription_id: SubscriptionId, who: Subscriber, store: Store, at: Now
) -> SubscriptionDetail:
    sub = _visible(store, subscription_id, who)
    history = [SubscriptionEventOut(**asdict(e)) for e in store.history(sub.id, latest=HISTORY_SHOWN)]
    return SubscriptionDetail(**_out(sub, at).model_dump(), history=history)


@router.patch(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    responses=NOT_FOUND,
    summary="Change, disable or enable",
)
def update_subscription(
    subscription_id: SubscriptionId,
    body: SubscriptionPatch,
    who: Subscriber,
    svc: Annotated[Services, Depends(services)],
    store: Store,
    at: Now,
) -> SubscriptionOut:
    _visible(store, subscription_id, who)  # a 404 before any 422: nothing said about others' rows
    changes = body.model_dump(exclude_unset=True)
    _refuse_if_any(_problems(svc, changes))
    for name in ("event_types", "hazards", "areas"):
        if name in changes:
            changes[name] = list(dict.fromkeys(changes[name]))
    updated = store.update(subscription_id, changes, scope=scope_of(who), actor=who.label, now=at)
    if updated is None:
        raise _not_found(subscription_id)
    return _out(updated, at)


@router.delete(
    "/{subscription_id}",
    status_code=204,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Delete a subscription; its pending deliveries are cancelled",
)
def delete_subscription(subscription_id: SubscriptionId, who: Subscriber, store: Store, at: Now) -> Response:
    if not store.delete(subscription_id, scope=scope_of(who), actor=who.label, now=at):
        raise _not_found(subscription_id)
    return Response(status_code=204)


@router.post(
    "/{subscription_id}/rotate-secret",
    response_model=SubscriptionCreated,
    responses=NOT_FOUND,
    summary="A new signing secret, shown once; the old one also signs for the grace period",
)
def rotate_secret(
    subscription_id: SubscriptionId,
    who: Subscriber,
    svc: Annotated[Services, Depends(services)],
    store: Store,
    at: Now,
    body: ReasonBody = None,
) -> SubscriptionCreated:
    grace = timedelta(seconds=svc.settings.webhook_secret_grace_s)
    sub = store.rotate_secret(
        subscription_id, scope=scope_of(who), actor=who.label, now=at, grace=grace, note=_note(body)
    )
    if sub is None:
        raise _not_found(subscription_id)
    return SubscriptionCreated(**_out(sub, at).model_dump(), secret=sub.secret)


@router.get(
    "/{subscription_id}/deliveries",
    response_model=DeliveryPage,
    responses=NOT_FOUND,
    summary="Deliveries, newest first, each with its attempts, status codes, latency and next retry",
)
def list_deliveries(
    subscription_id: SubscriptionId,
    who: Subscriber,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DeliveryPage:
    _visible(store, subscription_id, who)
    items, total = store.deliveries(subscription_id, limit=limit, offset=offset)
    return DeliveryPage(items=[_delivery_out(d) for d in items], total=total, limit=limit, offset=offset)


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=DeliveryOut,
    responses={
        404: {"description": "No such subscription, or no such delivery of it"},
        409: {"description": "The delivery was delivered or cancelled"},
    },
    summary="Send a pending or failed delivery again now, from the start of its schedule",
)
def retry_delivery(
    subscription_id: SubscriptionId,
    delivery_id: DeliveryId,
    who: Subscriber,
    store: Store,
    at: Now,
    body: ReasonBody = None,
) -> DeliveryOut:
    _visible(store, subscription_id, who)
    try:
        retried = store.retry(subscription_id, delivery_id, actor=who.label, now=at, note=_note(body))
    except NotRetryable as exc:
        raise HTTPException(409, detail=str(exc)) from None
    if retried is None:
        raise HTTPException(404, detail=f"subscription {subscription_id} has no delivery {delivery_id}")
    return _delivery_out(retried)


@router.post(
    "/{subscription_id}/replay",
    status_code=202,
    response_model=ReplayOut,
    responses=NOT_FOUND,
    summary="Send again the messages queued in a time range, with their original webhook-id",
)
def replay(
    subscription_id: SubscriptionId,
    who: Subscriber,
    store: Store,
    at: Now,
    since: Annotated[datetime, Depends(replay_since)],
    until: Annotated[datetime | None, Depends(replay_until)],
    body: ReasonBody = None,
) -> ReplayOut:
    """Each message is queued once, however often it was sent; a receiver drops those it has by id."""
    _visible(store, subscription_id, who)
    queued = store.replay(
        subscription_id, since=since, until=until, actor=who.label, now=at, note=_note(body)
    )
    return ReplayOut(queued=len(queued), deliveries=[_delivery_out(d) for d in queued])


@router.post(
    "/{subscription_id}/test",
    status_code=202,
    response_model=DeliveryOut,
    responses=NOT_FOUND,
    summary="Queue a ping to the subscription's URL, whatever its filters",
)
def ping(
    subscription_id: SubscriptionId, who: Subscriber, store: Store, at: Now, body: ReasonBody = None
) -> DeliveryOut:
    _visible(store, subscription_id, who)
    return _delivery_out(store.ping(subscription_id, actor=who.label, now=at, note=_note(body)))


def _note(body: ReasonIn | None) -> str:
    return body.note if body is not None else ""


def _visible(store: SubscriptionStore, subscription_id: str, who: Principal) -> Subscription:
    found = store.get(subscription_id, scope=scope_of(who))
    if found is None:
        raise _not_found(subscription_id)
    return found


def _not_found(subscription_id: str) -> HTTPException:
    return HTTPException(404, detail=f"no subscription {subscription_id}")


def known_hazards(svc: Services) -> set[str]:
    """Every hazard a warning of this city can carry: reports', sensors', the playbooks' and sensor faults."""
    return (
        svc.taxonomy.hazards()
        | {k.hazard for k in svc.catalog.kinds.values()}
        | set(svc.playbooks.hazards)
        | {SENSOR_FAULT}
    )


def _problems(svc: Services, fields: dict[str, Any]) -> list[dict[str, Any]]:
    """What the schema cannot say: a URL citywarn will not call, hazards and areas the city lacks."""
    errors = []
    if (url := fields.get("url")) is not None:
        try:
            check_url(url, allow_private=svc.settings.webhook_allow_private)
        except UnsafeTarget as exc:
            errors.append(_error("url", str(exc), url))
    hazards = known_hazards(svc)
    for i, hazard in enumerate(fields.get("hazards") or []):
        if hazard not in hazards:
            errors.append(
                _error(f"hazards[{i}]", f"no such hazard; known: {', '.join(sorted(hazards))}", hazard)
            )
    for i, area in enumerate(fields.get("areas") or []):
        if area not in svc.areas:
            errors.append(_error(f"areas[{i}]", "no such district or grid in the city's areas", area))
    return errors


def _refuse_if_any(errors: list[dict[str, Any]]) -> None:
    if errors:
        raise HTTPException(422, detail=errors)


def _error(field: str, reason: str, value: str) -> dict[str, Any]:
    return {"field": f"body.{field}", "reason": reason, "value": value}


def _out(s: Subscription, at: datetime) -> SubscriptionOut:
    f = s.filters
    return SubscriptionOut(
        id=s.id,
        url=s.url,
        description=s.description,
        event_types=list(f.event_types),
        hazards=list(f.hazards),
        min_level=f.min_level,
        areas=list(f.areas),
        include_exercises=f.include_exercises,
        enabled=s.enabled,
        disabled_reason=s.disabled_reason,
        disabled_at=s.disabled_at,
        failures=s.failures,
        failing_since=s.failing_since,
        owner=s.owner,
        owner_label=s.owner_label,
        created_at=s.created_at,
        updated_at=s.updated_at,
        previous_secret_valid_until=s.previous_valid_until(at),
    )


def _attempt_out(a: Attempt) -> AttemptOut:
    return AttemptOut(
        attempt=a.attempt,
        started_at=a.started_at,
        status_code=a.status_code,
        latency_ms=a.latency_ms,
        error=a.error,
        response_excerpt=a.response_excerpt,
    )


def _delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        message_id=d.message_id,
        event_type=d.event_type,
        warning_id=d.warning_id,
        status=d.status,  # type: ignore[arg-type]
        created_at=d.created_at,
        attempt_count=d.attempt_count,
        next_attempt_at=d.next_attempt_at,
        last_attempt_at=d.last_attempt_at,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        last_latency_ms=d.last_latency_ms,
        delivered_at=d.delivered_at,
        attempts=[_attempt_out(a) for a in d.attempts],
    )
