"""The HTTP face of ingest: one JSON-only POST endpoint per batch kind, built from what the app hands in.

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

from ingest.http_batches import BatchIngest, BodyRefused, BusUnavailable
from ingest.schemas import BatchAnswer, RequestRefused

_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Every item was accepted and queued; the body says whether that is durable yet"},
    415: {"model": RequestRefused, "description": "The body is not application/json (UTF-8)"},
    422: {
        "model": BatchAnswer | RequestRefused,
        "description": "Some items were refused (the others were accepted and queued, as counted), "
        "or the body as a whole was unusable and nothing was queued",
    },
    503: {
        "model": RequestRefused,
        "description": "The message bus did not confirm: nothing counts as queued",
    },
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


def batch_router(
    path: str,
    *,
    ingest: Callable[..., BatchIngest[Any, Any]],
    now: Callable[[], datetime],
    summary: str,
    example: dict[str, Any],
    tag: str,
) -> APIRouter:
    """A router with ``POST path`` for the batch ``ingest`` gives; ``now`` is the clock, overridable."""
    router = APIRouter(tags=[tag])

    @router.post(
        path,
        summary=summary,
        status_code=202,
        response_model=BatchAnswer,
        responses=_RESPONSES,
        dependencies=[Depends(require_json)],
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"example": example}}}
        },
    )
    async def post_batch(
        request: Request,
        batch: Annotated[BatchIngest[Any, Any], Depends(ingest)],
        at: Annotated[datetime, Depends(now)],
    ) -> JSONResponse:
        """Accept a batch; each refused item is named by index and field, the rest are queued.

        The answer says where the accepted items are: queued on the broker,
        stored by the consumer soon after, and whether a crash in between can
        lose them (``durable``).
        """
        raw = await request.body()
        try:
            answer = await run_in_threadpool(batch.accept, raw, at)
        except BodyRefused as exc:
            return JSONResponse({"detail": [exc.rejection.model_dump()]}, status_code=422)
        except BusUnavailable as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)
        return JSONResponse(answer.model_dump(), status_code=422 if answer.rejected else 202)

    return router
