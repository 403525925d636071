"""POST /v1/readings: the router ingest builds, given this app's services and clock.

Validation happens before Kafka, so a client hears about a bad field in the
response instead of from the dead-letter topic; the consumer checks again
anyway, because Kafka has other producers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import now, services
from app.auth.deps import require
from app.auth.roles import Permission
from app.services import Services
from ingest.http import batch_router
from ingest.http_batches import BatchIngest, readings_ingest
from ingest.schemas import Reading
from store.schemas import Point

_EXAMPLE = {
    "readings": [
        {
            "sensor_id": "wl-riverside-01",
            "kind": "water_level",
            "value": 2.31,
            "unit": "m",
            "ts": "2026-11-29T08:00:00Z",
        }
    ]
}


def _readings(svc: Annotated[Services, Depends(services)]) -> BatchIngest[Reading, Point]:
    return readings_ingest(validator=svc.validator, producer=svc.producer, settings=svc.settings)


router = APIRouter(dependencies=[Depends(require(Permission.INGEST))])
router.include_router(
    batch_router(
        "/v1/readings",
        ingest=_readings,
        now=now,
        summary="Submit sensor readings from catalogued sensors",
        example=_EXAMPLE,
        tag="ingest",
    )
)
