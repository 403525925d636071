"""Batch ingest over HTTP, shared by readings and reports: parse, check each item, produce the good ones.

Every item is judged on its own, so one bad item costs only itself: the
response counts the accepted items and names each refused one by index and
field (422 when any was refused, 202 otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from ingest.producer import ConfirmedProducer, DeliveryFailed
from ingest.schemas import Rejection
from ingest.validation import rejections_from

Model = TypeVar("Model", bound=BaseModel)
Checked = TypeVar("Checked")


def batch_items(raw: bytes, *, field: str, max_items: int) -> list[Any]:
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(422, detail=[{"field": "body", "reason": f"not JSON: {exc}"}]) from exc
    items = doc.get(field) if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise HTTPException(422, detail=[{"field": field, "reason": "expected a non-empty list"}])
    if len(items) > max_items:
        reason = f"at most {max_items} items per request"
        raise HTTPException(422, detail=[{"field": field, "reason": reason}])
    return items


def accept_batch(
    items: list[Any],
    *,
    field: str,
    model: type[Model],
    check: Callable[[Model, datetime], Checked | list[Rejection]],
    key_of: Callable[[Model, Checked], str],
    now: datetime,
    producer: ConfirmedProducer,
    topic: str,
) -> JSONResponse:
    accepted: list[tuple[bytes | None, bytes, None]] = []
    rejected: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            parsed = model.model_validate(item)
        except ValidationError as exc:
            problems = rejections_from(exc, prefix=f"{field}[{i}].")
        else:
            checked = check(parsed, now)
            if not isinstance(checked, list):
                accepted.append((key_of(parsed, checked).encode(), parsed.model_dump_json().encode(), None))
                continue
            problems = [r.model_copy(update={"field": f"{field}[{i}].{r.field}"}) for r in checked]
        rejected.append({"index": i, "errors": [p.model_dump() for p in problems]})
    try:
        producer.send_all(topic, accepted)
    except DeliveryFailed as exc:
        raise HTTPException(status_code=503, detail=f"message bus unavailable: {exc}") from exc
    return JSONResponse(
        {"accepted": len(accepted), "rejected": rejected}, status_code=422 if rejected else 202
    )
