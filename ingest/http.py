"""The HTTP face of ingest: one JSON-only POST endpoint per batch kind, built from what the app hands in.

Errors leave as FastAPI's ``HTTPException``; the app shapes every one into an
RFC 9457 problem document (a mapping detail carries the problem's members).
The body is parsed here by hand, for speed, so its schema is declared to
OpenAPI here too, from the item model.

Only ``application/json`` bodies are taken. A browser sends text/plain, form
and multipart bodies to any origin without asking first (no CORS preflight),
so accepting them would let any web page open in an operator's browser post
readings; a JSON body cross-origin needs a preflight that we never grant.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations at
# runtime, and they name the dependencies passed in to ``batch_router``.
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import Field, TypeAdapter, create_model

from ingest.http_batches import ITEM_MODELS, BatchIngest, BodyRefused, BodyUnreadable, BusUnavailable
from ingest.schemas import BatchAnswer, BatchRefusal, Rejection

# The problem type of a batch with refused items; its extra members are ``BatchRefusal``'s.
BATCH_PARTLY_REFUSED = "tag:citywarn,2026:batch-partly-refused"
BUS_RETRY_AFTER_S = 5

_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Every item was accepted and queued; the body says whether that is durable yet"},
    400: {"description": "The body is not JSON (UTF-8)"},
    415: {"description": "The body is not application/json (UTF-8)"},
    422: {
        "model": BatchRefusal,
        "description": f"Some items were refused ({BATCH_PARTLY_REFUSED}: each named in rejected, the "
        "others accepted and queued, as counted), or the body as a whole was unusable and nothing was queued",
    },
    503: {"description": "The message bus did not confirm: nothing counts as queued"},
}


def require_json(request: Request) -> None:
    """415 unless the body is declared ``application/json``, with no charset but UTF-8 (RFC 8259)."""
    media_type, *params = (request.headers.get("content-type") or "").split(";")
    charsets = {
        value.strip().strip('"').lower()
        for name, _, value in (p.partition("=") for p in params)
        if name.strip().lower() == "charset"
    }
    if media_type.strip().lower() != "application/json" or not charsets <= {"utf-8"}:
        raise HTTPException(
            415,
            detail="only application/json (UTF-8) is accepted; "
            f"this request's content-type is {request.headers.get('content-type')!r}",
        )


def batch_body_schema(field: str) -> dict[str, Any]:
    """The JSON schema of ``{field: [item, ...]}``; ``$defs`` are hoisted into components by the app."""
    items: Any = list.__class_getitem__(ITEM_MODELS[field])  # list[Reading], list[Report]
    fields: dict[str, Any] = {field: (items, Field(min_length=1))}
    envelope = create_model(f"{field.capitalize()}Batch", **fields)
    return TypeAdapter(envelope).json_schema(ref_template="#/components/schemas/{model}")


def batch_router(
    path: str,
    *,
    ingest: Callable[..., BatchIngest[Any, Any]],
    now: Callable[[], datetime],
    summary: str,
    example: dict[str, Any],
    tag: str,
) -> APIRouter:
    """A router with ``POST path`` for the batch ``ingest`` gives; ``now`` is the clock, overridable.

    The path's last segment names the batch's field (``/v1/readings``: ``{"readings": [...]}``).
    """
    router = APIRouter(tags=[tag])
    field = path.rsplit("/", 1)[1]
    body = {"schema": batch_body_schema(field), "example": example}

    @router.post(
        path,
        summary=summary,
        status_code=202,
        response_model=BatchAnswer,
        responses=_RESPONSES,
        dependencies=[Depends(require_json)],
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": body}}},
    )
    async def post_batch(
        request: Request,
        batch: Annotated[BatchIngest[Any, Any], Depends(ingest)],
        at: Annotated[datetime, Depends(now)],
    ) -> JSONResponse:
        """Accept a batch; each refused item is named by index and field, the rest are queued.

        The answer says where the accepted items are: queued on the broker,
        stored by the consumer soon after, and whether a crash in between can
        lose them (``durable``). A batch with refused items is a 422 problem
        document that still counts the accepted ones.
        """
        raw = await request.body()
        try:
            answer = await run_in_threadpool(batch.accept, raw, at)
        except BodyUnreadable as exc:
            raise HTTPException(400, detail=str(exc)) from None
        except BodyRefused as exc:
            raise HTTPException(422, detail=[_in_body(exc.rejection).model_dump()]) from None
        except BusUnavailable as exc:
            raise HTTPException(
                503, detail=str(exc), headers={"Retry-After": str(BUS_RETRY_AFTER_S)}
            ) from None
        if answer.rejected:
            raise HTTPException(422, detail=_partly_refused(answer))
        return JSONResponse(answer.model_dump(), status_code=202)

    return router


def _in_body(rejection: Rejection) -> Rejection:
    field = rejection.field
    return rejection.model_copy(update={"field": field if field.startswith("body") else f"body.{field}"})


def _partly_refused(answer: BatchAnswer) -> dict[str, Any]:
    """The members of the 422 problem for a batch with refused items (see ``BatchRefusal``)."""
    refused = len(answer.rejected)
    total = answer.accepted + refused
    if answer.accepted:
        detail = (
            f"{answer.accepted} of {total} items accepted ({answer.detail}); {refused} refused, see rejected"
        )
    else:
        detail = f"all {total} items refused, see rejected"
    rejected = [
        item.model_copy(update={"errors": [_in_body(e) for e in item.errors]}) for item in answer.rejected
    ]
    refusal = BatchRefusal(accepted=answer.accepted, rejected=rejected, durable=answer.durable)
    return {
        "type": BATCH_PARTLY_REFUSED,
        "title": "Items of the batch were refused",
        "detail": detail,
        **refusal.model_dump(),
    }
