"""GET /v1/sensor-health: the sensors that are faulty now (silent, stuck, impossible values).

Not under ``/v1/sensors/``: there ``health`` would be a sensor id, and ``/v1/sensors/{sensor_id}``'s
other methods would be advertised for it (a 405's ``Allow``), as schemathesis found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from alerts.open_sensor_faults import OpenFault, open_faults
from app.api.deps import services
from app.auth.deps import require
from app.auth.roles import Permission
from app.services import Services

router = APIRouter(prefix="/v1", tags=["sensors"])


class SensorHealth(BaseModel):
    sensor_id: str
    name: str
    kind: str
    area: str
    lat: float | None = Field(description="None for a sensor no longer in the catalog")
    lon: float | None
    fault: Literal["silent", "flatline", "out_of_range"]
    since: datetime = Field(description="When the fault began: the first faulty reading's time")
    warning_id: str = Field(description="The open sensor_fault warning that tells the maintenance team")
    level: str


@router.get(
    "/sensor-health",
    response_model=list[SensorHealth],
    dependencies=[Depends(require(Permission.READ))],
    summary="Faulty sensors now, worst first",
    description="One item per sensor with an open `sensor_fault` warning: silent (nothing received "
    "for too long), flatline (stuck on one value) or out_of_range (impossible values). A sensor not "
    "listed is healthy. Ordered by the warning's level, highest first, then the longest-standing. "
    "The fault is cleared, and the sensor leaves this list, at its first good reading.",
)
async def sensor_health(svc: Annotated[Services, Depends(services)]) -> list[SensorHealth]:
    def read() -> list[OpenFault]:
        with svc.engine.connect() as conn:
            return open_faults(conn)

    catalog = svc.live_catalog.current()
    items = []
    for fault in await run_in_threadpool(read):
        sensor = catalog.sensor(fault.sensor_id)
        items.append(
            SensorHealth(
                sensor_id=fault.sensor_id,
                name=sensor.name if sensor is not None else "",
                kind=sensor.kind if sensor is not None else fault.kind,
                area=sensor.area if sensor is not None else fault.area,
                lat=sensor.lat if sensor is not None else None,
                lon=sensor.lon if sensor is not None else None,
                fault=fault.fault,  # type: ignore[arg-type]
                since=fault.since,
                warning_id=fault.warning_id,
                level=fault.level,
            )
        )
    return items
