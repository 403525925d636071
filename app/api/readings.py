"""HTTP ingest: validate each reading fully, then produce the valid ones to Kafka.

Validation happens here, before Kafka, so a client hears about a bad field
in the response instead of from the dead-letter topic; the consumer checks
again anyway, because Kafka has other producers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.batches import accept_batch, batch_items
from app.api.deps import now, services
from app.services import Services
from ingest.schemas import Reading

router = APIRouter(prefix="/v1", tags=["ingest"])

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


@router.post(
    "/readings",
    status_code=202,
    responses={422: {"description": "Some readings were refused; the others were accepted"}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"example": _EXAMPLE}}}},
)
async def post_readings(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    at: Annotated[datetime, Depends(now)],
) -> JSONResponse:
    """Accept a batch ``{"readings": [...]}``; a refused item never reaches Kafka.

    Valid items in a batch with refused ones are still accepted: the 422 body
    counts them and lists each refused item by index and field.
    """
    items = batch_items(await request.body(), field="readings", max_items=svc.settings.max_batch_items)
    return await run_in_threadpool(
        accept_batch,
        items,
        field="readings",
        model=Reading,
        check=svc.validator.check,
        key_of=lambda r, _: r.sensor_id,
        now=at,
        producer=svc.producer,
        topic=svc.settings.topic_readings,
    )
