"""A warning's timeline, the after-action record (``alerts.timeline``), a page at a time.

Webhook deliveries in it are every subscription's for the EOC's own keys (those that may read
everything); an integrator's key, which may read warnings only, sees its own subscriptions' alone,
as it sees no other integrator's subscriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from alerts import timeline
from alerts.recommendation_log import RecommendationLog
from alerts.repository import WarningRepository
from alerts.timeline import HistoryRow, TimelinePage
from app.api.deps import WarningId, services
from app.auth.deps import require
from app.auth.roles import Permission, Principal
from app.services import Services

router = APIRouter(prefix="/v1/warnings", tags=["warnings"])


@dataclass(frozen=True, slots=True)
class _OwnDeliveries:
    """The history with only the deliveries to one API key's subscriptions."""

    repository: WarningRepository
    owner: str

    def history_count(self, warning_id: str, *, before: datetime | None = None) -> int:
        return self.repository.history_count(warning_id, before=before, owner=self.owner)

    def history_slice(self, warning_id: str, *, offset: int, limit: int) -> list[HistoryRow]:
        return self.repository.history_slice(warning_id, offset=offset, limit=limit, owner=self.owner)


@router.get(
    "/{warning_id}/timeline",
    response_model=TimelinePage,
    summary=(
        "The warning's after-action record: reports, readings, bursts, transitions, webhook deliveries "
        "and recommendation steps in time order"
    ),
)
def get_timeline(
    warning_id: WarningId,
    who: Annotated[Principal, Depends(require(Permission.READ_WARNINGS))],
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
    history = repository if who.may(Permission.READ) else _OwnDeliveries(repository, who.key_id)
    return timeline.page(
        warning, history=history, reports=reports, units=units, offset=offset, limit=limit, steps=steps
    )
