"""The city's areas as GeoJSON, and the current risk picture of one area."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from shapely.geometry import mapping

from alerts.levels import rank
from app.api.deps import AreaId, Now, services, time_bound
from app.auth.deps import require
from app.auth.roles import Permission
from app.services import Services
from config.areas import Area
from config.timeutil import EARLIEST, to_ns

router = APIRouter(prefix="/v1/areas", tags=["areas"], dependencies=[Depends(require(Permission.READ))])

RISK_LOOKBACK = timedelta(hours=6)
risk_since = time_bound("since", doc="Signals and reports at or after (default: 6 h ago)")


def area_feature(area: Area, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {
        "id": area.id,
        "name": area.name,
        "name_zh": area.name_zh,
        "level": area.level,
        "parent": area.parent,
        "population": area.population,
        **(properties or {}),
    }
    return {"type": "Feature", "id": area.id, "geometry": mapping(area.geometry), "properties": props}


@router.get("")
def list_areas(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """Every district and community grid as a GeoJSON FeatureCollection (RFC 7946)."""
    features = [area_feature(a) for a in [*svc.areas.districts(), *svc.areas.grids()]]
    return {"type": "FeatureCollection", "features": features}


@router.get("/{area_id}/risk")
def area_risk(
    area_id: AreaId,
    svc: Annotated[Services, Depends(services)],
    at: Now,
    since: Annotated[datetime | None, Depends(risk_since)],
) -> dict[str, Any]:
    """Open warnings, and signals and reports since ``since``, in an area (a district includes its grids)."""
    area = svc.areas.area(area_id)
    if area is None:
        raise HTTPException(404, detail=f"no area {area_id}")
    covered = [area_id, *[g.id for g in svc.areas.grids(area_id)]] if area.level == "district" else [area_id]
    warnings = svc.warnings.list(areas=covered, open_only=True, exercise=False, limit=500).items  # no drills
    since = since or max(EARLIEST, at - RISK_LOOKBACK)
    reports, _ = svc.reports.list(area=None, start_ns=to_ns(since), limit=10_000)
    report_counts = Counter(r.category for r in reports if r.area in covered)
    highest = max((w.level for w in warnings), key=rank, default=None)
    return {
        "area": area_feature(area)["properties"],
        "highest_level": highest,
        "open_warnings": [w.model_dump(mode="json") for w in warnings],
        "recent_signals": [
            e.model_dump(mode="json") for e in svc.warnings.recent_evidence_in(covered, since=since)
        ],
        "reports_since": since.isoformat(),
        "report_counts": dict(report_counts),
    }
