"""A warning's timeline, the after-action record (``alerts.timeline``), a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from alerts import timeline
from alerts.recommendation_log import RecommendationLog
from alerts.timeline import TimelinePage
from app.api.deps import WarningId, services
from app.auth.deps import require
from app.auth.roles import Permission
from app.services import Services

router = APIRouter(prefix="/v1/warnings", tags=["warnings"])


@router.get(
    "/{warning_id}/timeline",
    response_model=TimelinePage,
    dependencies=[Depends(require(Permission.READ_WARNINGS))],
    summary=(
        "The warning's after-action record: reports, readings, bursts, transitions and recommendation "
        "steps in time order"
    ),
)
def get_timeline(
    warning_id: WarningId,
    svc: Annotated[Services, Depends(services)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> TimelinePage:
    repository = svc.warnings.repository
    warning = repository.summary(warning_id)
    if warning is None:
        raise HTTPException(404, detail=f"no warning {warning_id}")
    cited = timeline.cited_reports(repository.report_evidence(warning_id))
    reports = timeline.report_entries(cited, svc.reports.by_ids(list(cited)))
    steps = timeline.recommendation_entries(
        RecommendationLog(svc.engine).history(warning_id), warning.recommendations
    )
    units = {name: kind.unit for name, kind in svc.catalog.kinds.items()}
    return timeline.page(
        warning, history=repository, reports=reports, units=units, offset=offset, limit=limit, steps=steps
    )
