"""The sensor catalog and each sensor's stored series."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from app.api.deps import TimeBounds, now, services, time_bounds
from app.services import Services
from config.catalog import Sensor
from config.timeutil import EARLIEST, from_ns, to_ns

router = APIRouter(prefix="/v1/sensors", tags=["sensors"])

MAX_RANGE = timedelta(days=31)
series_bounds = time_bounds(
    "start", "end", lower_doc="From (default: 24 h before end)", upper_doc="Until, exclusive (default: now)"
)


class SensorOut(Sensor):
    unit: str
    hazard: str


class SeriesPoint(BaseModel):
    ts: datetime
    value: float


class Series(BaseModel):
    sensor_id: str
    kind: str
    unit: str
    start: datetime
    end: datetime
    points: list[SeriesPoint]
    truncated: bool


@router.get("", response_model=list[SensorOut])
def list_sensors(
    svc: Annotated[Services, Depends(services)],
    area: Annotated[str | None, Query(max_length=128)] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> list[SensorOut]:
    kinds = svc.catalog.kinds
    return [
        SensorOut(**s.model_dump(), unit=kinds[s.kind].unit, hazard=kinds[s.kind].hazard)
        for s in svc.catalog.sensors
        if (area is None or s.area == area) and (kind is None or s.kind == kind)
    ]


@router.get("/{sensor_id}/series", response_model=Series)
def series(
    sensor_id: str,
    svc: Annotated[Services, Depends(services)],
    at: Annotated[datetime, Depends(now)],
    bounds: Annotated[TimeBounds, Depends(series_bounds)],
    limit: Annotated[int, Query(ge=1, le=50_000)] = 10_000,
) -> Series:
    sensor = svc.catalog.sensor(sensor_id)
    if sensor is None:
        raise HTTPException(404, detail=f"no sensor {sensor_id}")
    end = bounds.upper or at
    start = bounds.lower or max(EARLIEST, end - timedelta(hours=24))
    if start >= end:
        raise HTTPException(422, detail=[{"field": "start", "reason": "must be before end"}])
    if end - start > MAX_RANGE:
        raise HTTPException(422, detail=[{"field": "start", "reason": "range longer than 31 days"}])
    points = svc.store.read(sensor_id, to_ns(start), to_ns(end), limit=limit + 1)
    return Series(
        sensor_id=sensor_id,
        kind=sensor.kind,
        unit=svc.catalog.kinds[sensor.kind].unit,
        start=start,
        end=end,
        truncated=len(points) > limit,
        points=[SeriesPoint(ts=from_ns(p.ts_ns), value=p.value) for p in points[:limit]],
    )
