"""Warnings for the EOC: list, read with evidence and history; acknowledge, assign, annotate, escalate,
de-escalate and resolve (alerts.lifecycle: every action recorded with the key's label and role)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry import mapping
from starlette.concurrency import run_in_threadpool

from alerts.exceptions import InvalidTransition, WarningNotFound
from alerts.schemas import Scope, Status, WarningDetail, WarningFilters, WarningOut, WarningPage
from app.api.deps import Now, TimeBounds, WarningId, services, time_bounds
from app.api.openapi import REF
from app.api.page_cache import page_cache
from app.auth.deps import require
from app.auth.roles import Permission, Principal
from app.services import Services
from config.catalog import Level

router = APIRouter(prefix="/v1/warnings", tags=["warnings"])
read_warnings = Depends(require(Permission.READ_WARNINGS))
Actor = Annotated[Principal, Depends(require(Permission.ACT))]
NOT_NOW: dict[int | str, dict[str, Any]] = {409: {"description": "Not allowed in the warning's status"}}

updated_bounds = time_bounds(lower_doc="Updated at or after", upper_doc="Updated before")


class WarningFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] | None = Field(
        description="The warning's area as a GeoJSON geometry (RFC 7946); null for an area not on the map"
    )
    properties: WarningOut


class WarningFeatureCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    total: int
    features: list[WarningFeature]


GEOJSON = "application/geo+json"
LISTED: dict[int | str, dict[str, Any]] = {
    200: {
        "model": WarningPage,
        "description": "A page of warnings; with format=geojson, a GeoJSON FeatureCollection",
        # FastAPI puts a second media type's schema in as given: app.api.openapi hoists its $defs.
        "content": {GEOJSON: {"schema": WarningFeatureCollection.model_json_schema(ref_template=REF)}},
    }
}


@router.get("", response_model=None, responses=LISTED, dependencies=[read_warnings])
async def list_warnings(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    bounds: Annotated[TimeBounds, Depends(updated_bounds)],
    status: Status | None = None,
    level: Level | None = None,
    area: Annotated[str | None, Query(max_length=128)] = None,
    hazard: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    format: Annotated[
        Literal["json", "geojson"], Query(description=f"geojson: a FeatureCollection, as {GEOJSON}")
    ] = "json",
    exercise: Annotated[
        Literal["false", "true", "any"],
        Query(description="Drills: false (the default) leaves exercises out, true lists only them, any all"),
    ] = "false",
    scope: Annotated[
        Scope | None, Query(description="grid, district or city warnings only (roll-ups: alerts.rollup)")
    ] = None,
) -> WarningPage | Response:
    filters: WarningFilters = {
        "exercise": None if exercise == "any" else exercise == "true",
        "scope": scope,
        "status": status,
        "level": level,
        "area": area,
        "hazard": hazard,
        "since": bounds.lower,
        "until": bounds.upper,
        "limit": limit,
        "offset": offset,
    }
    if format == "json":
        # The page's bytes are kept while the warnings table is unchanged (app.api.page_cache): consoles
        # poll the same page far more often than warnings change. Made, it is serialised by pydantic in
        # one call: returned as a model with no response_model (this route also answers GeoJSON),
        # FastAPI would walk it value by value in Python, about 22 ms for a page of 50 against 0.6 ms.
        def page_json() -> bytes:
            return svc.warnings.list(**filters).model_dump_json().encode()

        cache, key = page_cache(svc.engine), tuple(filters.items())
        body = await cache.get(key, page_json)
        cache.alias(request.scope.get("query_string", b""), key, request.scope.get("route"))
        return Response(body, media_type="application/json")

    def geojson() -> bytes:
        page = svc.warnings.list(**filters)
        features = [_feature(w, svc) for w in page.items]
        return WarningFeatureCollection(total=page.total, features=features).model_dump_json().encode()

    return Response(await run_in_threadpool(geojson), media_type=GEOJSON)


def _feature(w: WarningOut, svc: Services) -> WarningFeature:
    """A warning on the map is its area's polygon; a warning with no known area has no geometry."""
    area = svc.areas.area(w.area)
    return WarningFeature(id=w.id, geometry=mapping(area.geometry) if area else None, properties=w)


@router.get("/{warning_id}", response_model=WarningDetail, dependencies=[read_warnings])
def get_warning(warning_id: WarningId, svc: Annotated[Services, Depends(services)]) -> WarningDetail:
    detail = svc.warnings.get(warning_id)
    if detail is None:
        raise HTTPException(404, detail=f"no warning {warning_id}")
    return detail


class TransitionIn(BaseModel):
    """What a caller may add to a transition: a note. Who made it is the API key's label, never the body's
    say, so a body naming an actor (or anything else) is refused."""

    model_config = ConfigDict(extra="forbid")

    # U+0000 is refused before parsing (app.json_limits); the pattern declares it in the contract.
    note: str = Field(default="", max_length=2000, pattern=r"^[^\x00]*$")


TransitionBody = Annotated[TransitionIn | None, Body()]


@router.post("/{warning_id}/acknowledge", response_model=WarningDetail, responses=NOT_NOW)
def acknowledge(
    warning_id: WarningId,
    who: Actor,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    body: TransitionBody = None,
) -> WarningDetail:
    return _transition(svc.warnings.acknowledge, warning_id, who, body, at)


@router.post("/{warning_id}/resolve", response_model=WarningDetail, responses=NOT_NOW)
def resolve(
    warning_id: WarningId,
    who: Actor,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    body: TransitionBody = None,
) -> WarningDetail:
    return _transition(svc.warnings.resolve, warning_id, who, body, at)


@router.post("/{warning_id}/escalate", response_model=WarningDetail, responses=NOT_NOW)
def escalate(
    warning_id: WarningId,
    who: Actor,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    body: TransitionBody = None,
) -> WarningDetail:
    """One level up; an acknowledged warning becomes active again (someone must look at the new level)."""
    return _transition(svc.warnings.escalate, warning_id, who, body, at)


@router.post("/{warning_id}/deescalate", response_model=WarningDetail, responses=NOT_NOW)
def deescalate(
    warning_id: WarningId,
    who: Actor,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    body: TransitionBody = None,
) -> WarningDetail:
    """One level down; it holds until new evidence earns more."""
    return _transition(svc.warnings.deescalate, warning_id, who, body, at)


class AnnotateIn(BaseModel):
    """A note for the warning's record (also after it resolved: the after-action record)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")


@router.post("/{warning_id}/annotate", response_model=WarningDetail, responses=NOT_NOW)
def annotate(
    warning_id: WarningId,
    who: Actor,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    body: Annotated[AnnotateIn, Body()],
) -> WarningDetail:
    return _transition(svc.warnings.annotate, warning_id, who, TransitionIn(note=body.note), at)


class AssignIn(BaseModel):
    """Who works the warning: a person or team, by name."""

    model_config = ConfigDict(extra="forbid")

    assignee: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00]*\S[^\x00]*$")


@router.post("/{warning_id}/assign", response_model=WarningDetail, responses=NOT_NOW)
def assign(
    warning_id: WarningId,
    who: Actor,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    body: Annotated[AssignIn, Body()],
) -> WarningDetail:
    def change(warning_id: str, **kw: Any) -> WarningDetail:
        kw.pop("note")
        return svc.warnings.assign(warning_id, body.assignee, **kw)

    return _transition(change, warning_id, who, None, at)


def _transition(
    change: Callable[..., WarningDetail],
    warning_id: str,
    who: Principal,
    body: TransitionIn | None,
    at: datetime,
) -> WarningDetail:
    """One place that maps the lifecycle's errors to HTTP: 404 unknown, 409 not allowed now."""
    note = body.note if body is not None else ""
    try:
        return change(warning_id, now=at, actor=who.label, actor_role=who.role.value, note=note)
    except WarningNotFound:
        raise HTTPException(404, detail=f"no warning {warning_id}") from None
    except InvalidTransition as exc:
        raise HTTPException(409, detail=str(exc)) from None
