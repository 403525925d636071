"""Human reports over HTTP: submit a batch (the router ingest builds), and browse what came in."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from app.api.deps import TimeBounds, now, services, time_bounds
from app.auth.deps import require
from app.auth.roles import Permission
from app.services import Services
from config.timeutil import from_ns, to_ns
from ingest.http import batch_router
from ingest.http_batches import BatchIngest, reports_ingest
from ingest.schemas import Report
from store.schemas import ReportRecord

_EXAMPLE = {
    "reports": [
        {
            "report_id": "hotline-20261129-0042",
            "source": "hotline",
            "category": None,
            "text": "江滩路地下通道积水很深 车辆熄火",
            "ts": "2026-11-29T08:00:00Z",
            "lat": 30.552,
            "lon": 114.318,
        }
    ]
}


class ReportOut(BaseModel):
    report_id: str
    source: str
    category: str
    category_inferred: bool
    text: str
    ts: datetime
    area: str
    outside_areas: bool
    lat: float | None
    lon: float | None
    media: list[str]


class ReportPage(BaseModel):
    items: list[ReportOut]
    total: int
    limit: int
    offset: int


def _reports(svc: Annotated[Services, Depends(services)]) -> BatchIngest[Report, ReportRecord]:
    return reports_ingest(validator=svc.report_validator, producer=svc.producer, settings=svc.settings)


router = APIRouter()
router.include_router(
    batch_router(
        "/v1/reports",
        ingest=_reports,
        now=now,
        summary="Submit human reports (hotline, app, grid workers, volunteers, media)",
        example=_EXAMPLE,
        tag="reports",
    ),
    dependencies=[Depends(require(Permission.INGEST))],
)


@router.get(
    "/v1/reports",
    response_model=ReportPage,
    tags=["reports"],
    dependencies=[Depends(require(Permission.READ))],
)
def list_reports(
    svc: Annotated[Services, Depends(services)],
    bounds: Annotated[TimeBounds, Depends(time_bounds())],
    area: Annotated[str | None, Query(max_length=128)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    source: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ReportPage:
    records, total = svc.reports.list(
        area=area,
        category=category,
        source=source,
        limit=limit,
        offset=offset,
        start_ns=to_ns(bounds.lower) if bounds.lower else None,
        end_ns=to_ns(bounds.upper) if bounds.upper else None,
    )
    items = [ReportOut(**{**asdict(r), "ts": from_ns(r.ts_ns), "media": list(r.media)}) for r in records]
    return ReportPage(items=items, total=total, limit=limit, offset=offset)
