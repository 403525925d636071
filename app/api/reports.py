"""Human reports over HTTP: submit a batch, and browse what came in."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.batches import accept_batch, batch_items
from app.api.deps import now, services
from app.services import Services
from ingest.schemas import Report

router = APIRouter(prefix="/v1/reports", tags=["reports"])

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


@router.post(
    "",
    status_code=202,
    responses={422: {"description": "Some reports were refused; the others were accepted"}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"example": _EXAMPLE}}}},
)
async def post_reports(
    request: Request, svc: Annotated[Services, Depends(services)], at: Annotated[datetime, Depends(now)]
) -> JSONResponse:
    """Accept ``{"reports": [...]}``; each refused item is named by index and field, the rest go on."""
    items = batch_items(await request.body(), field="reports", max_items=svc.settings.max_batch_items)
    # Keyed by area, so one area's reports stay in order on one partition.
    return await run_in_threadpool(
        accept_batch,
        items,
        field="reports",
        model=Report,
        check=svc.report_validator.check,
        key_of=lambda _, record: record.area,
        now=at,
        producer=svc.producer,
        topic=svc.settings.topic_reports,
    )


@router.get("", response_model=ReportPage)
def list_reports(
    svc: Annotated[Services, Depends(services)],
    area: Annotated[str | None, Query(max_length=128)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    source: Annotated[str | None, Query(max_length=32)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ReportPage:
    records, total = svc.reports.list(
        area=area,
        category=category,
        source=source,
        limit=limit,
        offset=offset,
        start_ns=int(since.timestamp() * 1e9) if since else None,
        end_ns=int(until.timestamp() * 1e9) if until else None,
    )
    items = [
        ReportOut(
            **{**asdict(r), "ts": datetime.fromtimestamp(r.ts_ns / 1e9, tz=UTC), "media": list(r.media)}
        )
        for r in records
    ]
    return ReportPage(items=items, total=total, limit=limit, offset=offset)
