"""HTTP ingest: validate each reading fully, then produce the valid ones to Kafka.

Validation happens here, before Kafka, so a client hears about a bad field
in the response instead of from the dead-letter topic; the consumer checks
again anyway, because Kafka has other producers.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.api.deps import now, services
from app.services import Services
from ingest.producer import DeliveryFailed
from ingest.schemas import Reading
from ingest.validation import rejections_from

router = APIRouter(prefix="/v1", tags=["ingest"])

_EXAMPLE = {"readings": [{"sensor_id": "wl-riverside-01", "kind": "water_level", "value": 2.31,
                          "unit": "m", "ts": "2026-11-29T08:00:00Z"}]}


@router.post(
    "/readings",
    status_code=202,
    responses={422: {"description": "Some readings were refused; the others were accepted"}},
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/json": {"example": _EXAMPLE}}}},
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
    items = _items(await request.body(), svc.settings.max_batch_items)
    return await run_in_threadpool(_accept, items, svc, at)


def _accept(items: list[Any], svc: Services, at: datetime) -> JSONResponse:
    accepted: list[tuple[bytes | None, bytes, None]] = []
    rejected: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            reading = Reading.model_validate(item)
        except ValidationError as exc:
            problems = rejections_from(exc, prefix=f"readings[{i}].")
        else:
            checked = svc.validator.check(reading, at)
            if not isinstance(checked, list):
                accepted.append((reading.sensor_id.encode(), reading.model_dump_json().encode(), None))
                continue
            problems = [r.model_copy(update={"field": f"readings[{i}].{r.field}"}) for r in checked]
        rejected.append({"index": i, "errors": [p.model_dump() for p in problems]})
    try:
        svc.producer.send_all(svc.settings.topic_readings, accepted)
    except DeliveryFailed as exc:
        raise HTTPException(status_code=503, detail=f"message bus unavailable: {exc}") from exc
    body = {"accepted": len(accepted), "rejected": rejected}
    return JSONResponse(body, status_code=422 if rejected else 202)


def _items(raw: bytes, max_items: int) -> list[Any]:
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(422, detail=[{"field": "body", "reason": f"not JSON: {exc}"}]) from exc
    items = doc.get("readings") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise HTTPException(422, detail=[{"field": "readings",
                                          "reason": "expected a non-empty list"}])
    if len(items) > max_items:
        raise HTTPException(422, detail=[{"field": "readings",
                                          "reason": f"at most {max_items} items per request"}])
    return items
