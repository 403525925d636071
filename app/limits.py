"""Limits on what a request may hold, as ASGI middleware, before any route reads it.

``BodySizeLimit``: Starlette sets no limit on a body's size. It counts the
bytes as they stream in, so a client that lies in (or omits) Content-Length
is stopped all the same, before the body is buffered.

``InputLimits``: U+0000 in a query or path (PostgreSQL cannot store or even
compare it), and, for a JSON body, the bounds of ``app.json_limits`` and
UTF-8 (RFC 8259), all checked on the raw bytes before a parser builds the
structure. Only requests that reach an operation are checked, so a wrong
path or method still answers 404 or 405. A route that reads its body by hand
(the ingest batches) judges NaN and U+0000 itself, item by item, so that one
bad item costs only itself; its body is checked only for what keeps the
parser safe (depth, number length). A body FastAPI would parse that is not
declared JSON is a 415, as the ingest routes answer (a 422 would say the
JSON was wrong).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import INVALID_REQUEST, FieldError, problem_document
from app.json_limits import JsonLimits


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        await send_problem(
            send,
            problem_document(
                413,
                f"the request body is larger than {self.max_bytes} bytes",
                instance=scope.get("path", ""),
                extensions={"max_bytes": self.max_bytes},
            ),
        )


class InputLimits:
    def __init__(self, app: ASGIApp, *, max_json_depth: int, max_json_number_chars: int) -> None:
        self.app = app
        self.json = JsonLimits(max_depth=max_json_depth, max_number_chars=max_json_number_chars)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _operation(scope) if scope["type"] == "http" and not _nothing_to_check(scope) else None
        if route is None:
            await self.app(scope, receive, send)
            return
        if errors := _nul_in_url(scope):
            await _refuse(scope, send, 422, errors)
            return
        parsed_by_fastapi = getattr(route, "body_field", None) is not None
        if not _is_json(scope) and not parsed_by_fastapi:
            await self.app(scope, receive, send)
            return
        raw = await _read_body(receive)
        if raw and not _is_json(scope):
            detail = (
                f"only application/json is accepted; this request's content-type is {_content_type(scope)!r}"
            )
            await send_problem(send, problem_document(415, detail, instance=scope["path"]))
            return
        if raw:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"the body is not UTF-8 (RFC 8259): {exc.reason} at byte {exc.start}"
                await send_problem(send, problem_document(400, reason, instance=scope["path"]))
                return
            if found := self.json.check(raw, values=parsed_by_fastapi):
                field = "body" + (
                    found.path if found.path.startswith("[") or not found.path else f".{found.path}"
                )
                await _refuse(scope, send, 422, [FieldError(field=field, reason=found.reason)])
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _nothing_to_check(scope: Scope) -> bool:
    """No body and no U+0000 in the URL: the app gets the request unchanged, whichever route answers it.

    So no route is looked up for it: matching the path against every route
    was a fifth of the API's own time on a GET (``bench.api``'s profile).
    """
    return not has_body(scope) and not _nul_in_url(scope)


def has_body(scope: Scope) -> bool:
    """The request says it carries a body: chunked, or a Content-Length other than 0."""
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _operation(scope: Scope) -> RouteContext | None:
    """The route that will answer this request, if one matches its path and method (through includes)."""
    router = getattr(scope.get("app"), "router", None)
    routes = iter_route_contexts(getattr(router, "routes", []))
    return next((route for route in routes if route.matches(scope)[0] is Match.FULL), None)


def _nul_in_url(scope: Scope) -> list[FieldError]:
    errors = []
    if "\x00" in scope.get("path", ""):
        errors.append(FieldError(field="path", reason="holds U+0000"))
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                errors.append(FieldError(field=f"query.{name.replace(chr(0), '')}", reason="holds U+0000"))
    return errors


def _content_type(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bytes(value).decode("latin-1")
    return None


def _is_json(scope: Scope) -> bool:
    media_type = (_content_type(scope) or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _refuse(scope: Scope, send: Send, status: int, errors: list[FieldError]) -> None:
    detail = errors[0].field + ": " + errors[0].reason if len(errors) == 1 else f"{len(errors)} problems"
    doc = problem_document(status, detail, instance=scope["path"], type_=INVALID_REQUEST, errors=errors)
    await send_problem(send, doc)


async def send_problem(send: Send, doc: dict[str, object]) -> None:
    body = json.dumps(doc).encode()
    await send(
        {
            "type": "http.response.start",
            "status": doc["status"],
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
