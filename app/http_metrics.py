"""HTTP requests counted and timed by route template and status, for ``GET /metrics``.

Labelled by the route's template (``/v1/warnings/{warning_id}``), never the
raw path: one label value per warning id, or per random URL a scanner tries,
would grow Prometheus' series without bound. A path no route matches counts
as ``unmatched``.

A server-sent event stream (``GET /v1/stream``) is timed to its headers, not
to its end: it lasts as long as its client stays, up to an hour, and one
wallboard would otherwise own the latency histogram's tail.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import LATENCY_BUCKETS_S

UNMATCHED = "unmatched"
# A client may send any token as a method; the rest count as "other" for the same reason.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "citywarn_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "citywarn_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer (to its headers for an event stream), "
    "by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS_S,
)


class HttpMetrics:
    """Pure ASGI: the router writes the matched route into the scope it shares with us."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering, the server answers 500
        headers_at: float | None = None  # set for an event stream: its time is to its headers

        async def send_status(message: Message) -> None:
            nonlocal status, headers_at
            if message["type"] == "http.response.start":
                status = message["status"]
                if _is_event_stream(message):
                    headers_at = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "other"
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            ended = headers_at if headers_at is not None else time.perf_counter()
            HTTP_REQUEST_SECONDS.labels(method, route).observe(ended - started)


def _is_event_stream(start: Message) -> bool:
    return any(
        name.lower() == b"content-type" and value.startswith(b"text/event-stream")
        for name, value in start.get("headers", ())
    )
