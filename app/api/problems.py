"""Every 4xx and 5xx as an RFC 9457 problem document (``application/problem+json``).

One shape for every error, so a client needs one error handler: ``type``,
``title``, ``status``, ``detail``, ``instance`` (the request path) and, for
refused input, ``errors``: one ``{"field", "reason", "value"}`` per problem.
A field is named by where it was sent and its path inside: ``body.readings[3].value``,
``query.since``, ``path.warning_id``. Echoed values are cut to a few dozen
characters, and a 500 says nothing about the code: its traceback goes to the log.

Code below ``app`` cannot import this module, so it raises FastAPI's own
exceptions and these handlers shape them: an ``HTTPException`` whose detail
is a string, a list of ``{"field", "reason"}`` errors, or a mapping of
problem members (with extension members of its own).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.api.deps import INSTANT_EXPECTED, INSTANT_PATTERN
from ingest.errors import is_transient

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Problem types with members beyond RFC 9457's own. Tag URIs (RFC 4151): names, not pages to fetch.
INVALID_REQUEST = "tag:citywarn,2026:invalid-request"
# A plain HTTP error: nothing to say beyond the status (RFC 9457 section 4.2.1).
BLANK = "about:blank"
ECHO_CHARS = 80


class FieldError(BaseModel):
    field: str = Field(description="Where: body.readings[3].value, query.since, path.warning_id")
    reason: str
    value: str | None = Field(default=None, description=f"The value at fault, cut to {ECHO_CHARS} chars")


class Problem(BaseModel):
    """RFC 9457 problem details; types other than about:blank may add members of their own."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default=BLANK, description=f"about:blank, or e.g. {INVALID_REQUEST}")
    title: str
    status: int
    detail: str
    instance: str = Field(description="The request's path")
    errors: list[FieldError] | None = Field(default=None, description="Each field refused, and why")


def problem_document(
    status: int,
    detail: str,
    *,
    instance: str,
    type_: str = BLANK,
    title: str | None = None,
    errors: Sequence[FieldError] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": type_,
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        doc["errors"] = [e.model_dump() for e in errors]
    doc.update(extensions or {})
    return doc


def problem_response(
    status: int, detail: str, *, instance: str, headers: Mapping[str, str] | None = None, **members: Any
) -> JSONResponse:
    return JSONResponse(
        jsonable_encoder(problem_document(status, detail, instance=instance, **members)),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_JSON,
    )


def echo(value: object) -> str | None:
    """A short, safe rendering of an offending value; containers are never echoed."""
    if value is None or isinstance(value, dict | list | tuple):
        return None
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:  # an integer past Python's digit limit
        return f"<{type(value).__name__} too long to show>"
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 1] + "…"


def field_path(loc: Iterable[int | str]) -> str:
    """FastAPI's ``("body", "readings", 3, "value")`` as ``body.readings[3].value``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _allowed_methods(request: Request) -> str | None:
    """Every method some route takes at this path: Starlette's 405 names only the first route's."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods)) or None


async def http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allow := _allowed_methods(request)):
        headers["Allow"] = allow
    detail = exc.detail
    if isinstance(detail, Mapping):
        members = {k: v for k, v in detail.items() if k not in ("status", "instance")}
        text = str(members.pop("detail", _phrase(exc.status_code)))
        type_ = str(members.pop("type", BLANK))
        title = members.pop("title", None)
        errors = [FieldError(**e) for e in members.pop("errors", None) or []] or None
        return problem_response(
            exc.status_code,
            text,
            instance=request.url.path,
            headers=headers,
            type_=type_,
            title=title,
            errors=errors,
            extensions=members,
        )
    if isinstance(detail, list):
        errors = [FieldError(**e) for e in detail]
        return problem_response(
            exc.status_code,
            _summary(errors),
            instance=request.url.path,
            headers=headers,
            type_=INVALID_REQUEST,
            errors=errors,
        )
    return problem_response(exc.status_code, str(detail), instance=request.url.path, headers=headers)


async def validation_exception(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each field; a body that is not JSON at all is a 400, as for every other route."""
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        reason = next(e for e in raw if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
        return problem_response(400, f"the body is not valid JSON: {reason}", instance=request.url.path)
    errors = [
        FieldError(field=field_path(e.get("loc", ())), reason=_reason(e), value=echo(e.get("input")))
        for e in raw
    ]
    return problem_response(
        422, _summary(errors), instance=request.url.path, type_=INVALID_REQUEST, errors=errors
    )


def _reason(error: Mapping[str, Any]) -> str:
    """Pydantic's message, except for an instant that is not one: that message quotes the regex."""
    if (
        error.get("type") == "string_pattern_mismatch"
        and error.get("ctx", {}).get("pattern") == INSTANT_PATTERN
    ):
        return INSTANT_EXPECTED
    return str(error.get("msg", "invalid"))


async def unhandled_exception(request: Request, exc: Exception) -> JSONResponse:
    """500 with nothing of the code in it; 503 when a dependency is down (worth retrying)."""
    if is_transient(exc):
        log.warning("%s %s: a dependency is unavailable: %r", request.method, request.url.path, exc)
        return problem_response(
            503,
            "a service this request needs (database, store or message bus) is unavailable; retry later",
            instance=request.url.path,
            headers={"Retry-After": "5"},
        )
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "an internal error occurred; it has been logged", instance=request.url.path)


def _summary(errors: Sequence[FieldError]) -> str:
    if len(errors) == 1:
        return f"{errors[0].field}: {errors[0].reason}"
    return f"{len(errors)} problems in the request; each is in errors"


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_exception)
    app.add_exception_handler(RequestValidationError, validation_exception)
    app.add_exception_handler(Exception, unhandled_exception)
