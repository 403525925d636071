"""CAP 1.2: one warning's latest CAP message, and an Atom feed of the current warnings' messages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from alerts import cap
from alerts.recommendation_log import RecommendationLog
from alerts.schemas import WarningDetail
from app.api.deps import Now, WarningId, services
from app.auth.deps import require
from app.auth.roles import Permission
from app.services import Services
from config.catalog import SENSOR_FAULT

router = APIRouter(tags=["cap"])
read_warnings = Depends(require(Permission.READ_WARNINGS))

FEED_MAX = 500  # entries in one feed: the newest-changed open warnings, as a list page holds at most
_PAGE = 100


def _as_string(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}


class CapXml(Response):
    media_type = cap.CAP_MEDIA_TYPE


class AtomXml(Response):
    media_type = cap.ATOM_MEDIA_TYPE


@router.get(
    "/v1/warnings/{warning_id}/cap",
    response_class=CapXml,
    responses=_as_string(cap.CAP_MEDIA_TYPE, "The warning's latest CAP 1.2 message (OASIS CAP 1.2 XML)"),
    dependencies=[read_warnings],
)
def warning_cap(warning_id: WarningId, svc: Annotated[Services, Depends(services)]) -> CapXml:
    detail = svc.warnings.get(warning_id)
    if detail is None:
        raise HTTPException(404, detail=f"no warning {warning_id}")
    try:
        body = cap.cap_alert(
            detail,
            area=svc.areas.area(detail.area),
            sender=svc.settings.cap_sender,
            steps=RecommendationLog(svc.engine).history(warning_id),
        )
    except cap.NotPublished:
        raise HTTPException(404, detail=f"warning {warning_id} has no CAP message: never public") from None
    return CapXml(body)


@router.get(
    "/v1/cap/feed",
    response_class=AtomXml,
    responses=_as_string(
        cap.ATOM_MEDIA_TYPE,
        "An Atom feed (RFC 4287) of the open public warnings' latest CAP messages, newest change first, "
        f"at most {FEED_MAX}",
    ),
    dependencies=[read_warnings],
)
def cap_feed(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    exercise: Annotated[
        bool, Query(description="Also list exercise (drill) warnings; without it, drills are left out")
    ] = False,
) -> AtomXml:
    log = RecommendationLog(svc.engine)
    items = [
        cap.FeedItem(
            warning=detail,
            area=svc.areas.area(detail.area),
            cap_url=str(request.url_for("warning_cap", warning_id=detail.id)),
            steps=log.history(detail.id),
        )
        for detail in _current(svc, exercise=exercise)
    ]
    body = cap.atom_feed(
        items, sender=svc.settings.cap_sender, self_url=str(request.url), exercise=exercise, now=at
    )
    return AtomXml(body)


def _current(svc: Services, *, exercise: bool) -> list[WarningDetail]:
    """Open warnings the public may read (a sensor fault is the maintenance team's), drills if asked."""
    found: list[WarningDetail] = []
    offset = 0
    while len(found) < FEED_MAX:
        page = svc.warnings.list(open_only=True, limit=_PAGE, offset=offset)
        for w in page.items:
            if w.hazard == SENSOR_FAULT or (w.exercise and not exercise):
                continue
            detail = svc.warnings.get(w.id)
            if detail is not None and len(found) < FEED_MAX:
                found.append(detail)
        offset += _PAGE
        if offset >= page.total:
            break
    return found
