"""Silences and maintenance windows: set, list, read, end (``alerts.silences``).

A silenced warning is still stored, scored and recorded; only its notification is held, and its
``muted_by`` names the silence. Who set a silence is the API key's label, never the body's say.
An ended silence (ended early, or past its end) is kept for the record and shown when asked for
with ``ended=true``, in the list and by id alike.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from alerts.mutes import lift_mutes, mute_matching
from alerts.silences import WEEKDAYS, Matchers, Recurrence, Silence, SilenceState, Weekday
from app.api.deps import INSTANT_PATTERN, NAIVE_IS_UTC, Now, services
from app.api.warnings import Actor
from app.auth.deps import require
from app.auth.roles import Permission
from app.services import Services
from config.catalog import SENSOR_FAULT, Level
from config.timeutil import as_utc, parse_instant
from ingest.schemas import ID_PATTERN

router = APIRouter(prefix="/v1/silences", tags=["silences"])
read = Depends(require(Permission.READ))

# A forgotten silence hides a city's warnings for good: a range is bounded, and a standing
# arrangement is a weekly window, which never hides more than its hours, or a silence set again.
MAX_RANGE = timedelta(days=30)
HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"
SilenceId = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]+$", description="A silence's id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No silence has this id"}}
Instant = Annotated[str, Field(max_length=40, pattern=INSTANT_PATTERN)]


def _not_null(value: object) -> object:
    """The schema has no null for these fields: leave a field out rather than send null."""
    if value is None:
        raise ValueError("null is not allowed: leave the field out")
    return value


class MatchersIn(BaseModel):
    """What a silence mutes; every matcher given must match, and at least one is needed."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    sensor: str | SkipJsonSchema[None] = Field(
        default=None, max_length=128, pattern=ID_PATTERN, description="Warnings standing on this sensor alone"
    )
    area: str | SkipJsonSchema[None] = Field(
        default=None, max_length=128, pattern=ID_PATTERN, description="This area and the areas inside it"
    )
    hazard: str | SkipJsonSchema[None] = Field(default=None, max_length=64, pattern=ID_PATTERN)
    level: Level | SkipJsonSchema[None] = Field(default=None, description="This level and below")

    _no_nulls = field_validator("*", mode="before")(_not_null)


class RecurrenceIn(BaseModel):
    """A weekly maintenance window in local time; an end at or before the start runs past midnight."""

    model_config = ConfigDict(extra="forbid")

    weekdays: list[Weekday] = Field(min_length=1, max_length=7, description="The days the window starts on")
    start: str = Field(pattern=HH_MM, examples=["02:00"])
    end: str = Field(pattern=HH_MM, examples=["04:00"])
    timezone: str = Field(max_length=64, pattern=ZONE_PATTERN, examples=["Asia/Shanghai"])


class SilenceIn(BaseModel):
    """A range (``ends_at``, at most 30 days after ``starts_at``) or a weekly ``recurrence``."""

    model_config = ConfigDict(extra="forbid")

    matchers: MatchersIn
    starts_at: Instant | SkipJsonSchema[None] = Field(
        default=None, description=f"Default: now. {NAIVE_IS_UTC}"
    )
    ends_at: Instant | SkipJsonSchema[None] = Field(
        default=None, description="Required without a recurrence; with one, optional (until ended)"
    )
    recurrence: RecurrenceIn | SkipJsonSchema[None] = None
    # Why: mature silencers insist, so whoever finds a muted warning knows whom to ask and why.
    # Not blank either: checked in code, as regex engines disagree on what whitespace is.
    comment: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")

    _no_nulls = field_validator("*", mode="before")(_not_null)


class MatchersOut(BaseModel):
    sensor: str | None
    area: str | None
    hazard: str | None
    level: Level | None


class RecurrenceOut(BaseModel):
    weekdays: list[Weekday]
    start: str
    end: str
    timezone: str


class SilenceOut(BaseModel):
    id: str
    matchers: MatchersOut
    starts_at: datetime
    ends_at: datetime | None = Field(description="None: a weekly window until it is ended")
    recurrence: RecurrenceOut | None
    comment: str
    created_by: str
    created_at: datetime
    ended_at: datetime | None = Field(description="Set when ended early")
    ended_by: str | None
    state: SilenceState = Field(
        description="active: muting now; pending: will mute later (a window to come); expired: never again"
    )


@router.post("", status_code=201, response_model=SilenceOut, summary="Set a silence or a maintenance window")
def create_silence(
    body: SilenceIn,
    who: Actor,
    svc: Annotated[Services, Depends(services)],
    at: Now,
) -> SilenceOut:
    errors = _unknown_matchers(svc, body.matchers)
    if not body.comment.strip():
        errors.append(_error("comment", "say why: a blank comment tells nobody anything", None))
    starts, ends, recurrence = _when(body, at, errors)
    if errors:
        raise HTTPException(422, detail=errors)
    m = body.matchers
    silence = svc.silences.create(
        Matchers(sensor=m.sensor, area=m.area, hazard=m.hazard, level=m.level),
        starts_at=starts,
        ends_at=ends,
        recurrence=recurrence,
        comment=body.comment,
        created_by=who.label,
        now=at,
    )
    svc.mutes.refresh()
    # Warnings it matches that are open now are muted now, not at their next signal.
    in_force = [silence] if silence.applies_at(at) else []
    mute_matching(svc.engine, in_force, svc.warnings, now=at, within=svc.mutes.within)
    return _out(silence, at)


@router.get("", response_model=list[SilenceOut], dependencies=[read], summary="Active and upcoming silences")
def list_silences(
    svc: Annotated[Services, Depends(services)],
    at: Now,
    ended: Annotated[bool, Query(description="Also those ended or past their end")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[SilenceOut]:
    """Newest first."""
    return [_out(s, at) for s in svc.silences.listed(now=at, include_ended=ended, limit=limit)]


@router.get("/{silence_id}", response_model=SilenceOut, dependencies=[read], responses=NOT_FOUND)
def get_silence(
    silence_id: SilenceId,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    ended: Annotated[bool, Query(description="Also when it has ended")] = False,
) -> SilenceOut:
    silence = svc.silences.get(silence_id)
    if silence is None or (silence.over_by(at) and not ended):
        raise HTTPException(404, detail=f"no silence {silence_id}" + ("" if silence is None else " in force"))
    return _out(silence, at)


@router.delete("/{silence_id}", response_model=SilenceOut, responses=NOT_FOUND, summary="End a silence now")
def end_silence(
    silence_id: SilenceId,
    who: Actor,
    svc: Annotated[Services, Depends(services)],
    at: Now,
) -> SilenceOut:
    """Idempotent: ending an ended silence changes nothing and answers it as it is. The warnings it
    muted that are still open are unmuted at once, and the "unmuted" event notifies them."""
    silence = svc.silences.end(silence_id, now=at, by=who.label)
    if silence is None:
        raise HTTPException(404, detail=f"no silence {silence_id}")
    svc.mutes.refresh()
    lift_mutes(svc.engine, svc.silences, svc.warnings, now=at)
    return _out(silence, at)


def _known_hazards(svc: Services) -> set[str]:
    return svc.taxonomy.hazards() | {k.hazard for k in svc.catalog.kinds.values()} | {SENSOR_FAULT}


def _unknown_matchers(svc: Services, m: MatchersIn) -> list[dict[str, Any]]:
    errors = []
    if m.sensor is None and m.area is None and m.hazard is None and m.level is None:
        errors.append(_error("matchers", "at least one of sensor, area, hazard, level", None))
    if m.sensor is not None and svc.live_catalog.current().sensor(m.sensor) is None:
        errors.append(_error("matchers.sensor", "no such sensor in the catalog", m.sensor))
    if m.area is not None and m.area not in svc.areas:
        errors.append(_error("matchers.area", "no such area in the city's areas", m.area))
    if m.hazard is not None and m.hazard not in _known_hazards(svc):
        errors.append(_error("matchers.hazard", "no such hazard in the taxonomy or catalog", m.hazard))
    return errors


def _when(
    body: SilenceIn, at: datetime, errors: list[dict[str, Any]]
) -> tuple[datetime, datetime | None, Recurrence | None]:
    """The silence's bounds and window; a problem found is appended to ``errors``."""
    starts = _instant("starts_at", body.starts_at, errors) or as_utc(at)
    ends = _instant("ends_at", body.ends_at, errors)
    recurrence = None
    if body.recurrence is None and body.ends_at is None:
        errors.append(_error("ends_at", "a range needs ends_at (or give a recurrence)", None))
    if ends is not None and ends <= starts:
        errors.append(_error("ends_at", "must be after starts_at", body.ends_at))
    elif ends is not None and ends <= at:
        errors.append(_error("ends_at", "is already past: the silence would never apply", body.ends_at))
    elif ends is not None and body.recurrence is None and ends - starts > MAX_RANGE:
        reason = f"at most {MAX_RANGE.days} days after starts_at; a standing arrangement is a recurrence"
        errors.append(_error("ends_at", reason, body.ends_at))
    if (r := body.recurrence) is not None:
        try:
            recurrence = Recurrence(
                weekdays=frozenset(WEEKDAYS.index(d) for d in r.weekdays),
                start=time.fromisoformat(r.start),
                end=time.fromisoformat(r.end),
                timezone=r.timezone,
            )
        except ValueError as exc:  # ZoneInfoNotFoundError is a KeyError
            errors.append(_error("recurrence", str(exc), None))
        except KeyError:
            errors.append(_error("recurrence.timezone", "no such IANA time zone", r.timezone))
    return starts, ends, recurrence


def _instant(name: str, text: str | None, errors: list[dict[str, Any]]) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        errors.append(_error(name, str(exc), text))
        return None


def _error(field: str, reason: str, value: str | None) -> dict[str, Any]:
    return {"field": f"body.{field}", "reason": reason, "value": value}


def _out(s: Silence, at: datetime) -> SilenceOut:
    m, r = s.matchers, s.recurrence
    return SilenceOut(
        id=s.id,
        matchers=MatchersOut(sensor=m.sensor, area=m.area, hazard=m.hazard, level=m.level),
        starts_at=s.starts_at,
        ends_at=s.ends_at,
        recurrence=None
        if r is None
        else RecurrenceOut(
            weekdays=[WEEKDAYS[d] for d in sorted(r.weekdays)],
            start=r.start.strftime("%H:%M"),
            end=r.end.strftime("%H:%M"),
            timezone=r.timezone,
        ),
        comment=s.comment,
        created_by=s.created_by,
        created_at=s.created_at,
        ended_at=s.ended_at,
        ended_by=s.ended_by,
        state=s.state(at),
    )
