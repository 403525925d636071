"""GET /v1/stream: warning changes as server-sent events, live, filtered, resumable by event id.

The frames come from ``warning_events`` (``alerts.event_feed``) through the
process's one poller (``app.stream_hub``); ``sse-starlette`` writes them, sends
the keep-alive pings, notices a client that went away, and ends every stream
when uvicorn is told to stop, so a SIGTERM is not held up by open streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from alerts.event_feed import FeedEvent, latest_id, read_events
from alerts.levels import rank
from alerts.silences import area_within
from app.api.deps import now, services
from app.api.subscriptions import known_hazards
from app.auth.deps import bearer, require
from app.auth.keys import AuthCache, AuthFailure, KeyStore
from app.auth.roles import Permission
from app.services import Services
from app.stream_hub import StreamHub
from config.catalog import Level

router = APIRouter(prefix="/v1", tags=["stream"])

POLL_S = 0.5  # how often the process's poller asks the database for new events
HOLE_GRACE_S = 5.0  # how long an id missing below the highest seen is asked for again
QUEUE_SIZE = 1000  # events a client may have waiting before it is dropped as too slow
PING_S = 15
RETRY_MS = 3000
REPLAY_BATCH = 500
SEND_TIMEOUT_S = 30.0  # a client that takes no bytes for this long is gone
MAX_EVENT_ID = 2**63 - 1

DESCRIPTION = f"""\
Server-sent events (`text/event-stream`): one frame per change of any warning (each line of a
warning's history, the `events` of `GET /v1/warnings/{{warning_id}}`), with the warning as it
stands now.

**Frames**

- First: `retry: {RETRY_MS}` and `event: ready` with data `{{"last_event_id": <int>}}`, the newest
  event id when the stream opened.
- Each change: `id: <event id>`, `event: warning`, and data
  `{{"event": {{"id", "warning_id", "at", "actor", "action", "from_status", "to_status",
  "from_level", "to_level", "note"}}, "warning": <the warning, as in GET /v1/warnings>}}`.
- A comment `: ping` every {PING_S} s, so proxies keep the connection open.
- A comment before the service ends the stream: it is shutting down, the key was revoked or
  expired, the client fell more than {QUEUE_SIZE} events behind, or the connection reached its
  longest life (setting `stream_max_s`). Reconnect with `Last-Event-ID`.

**Resume.** Send the last id received as the `Last-Event-ID` header (browsers' EventSource does
this by itself), or as `?after=<id>` where a client cannot set headers; the header wins when both
are sent. Events after it are replayed from the database in id order, then live ones follow; none
is sent twice. Without either, the stream starts from now. Ids are increasing but not contiguous,
and one written by a transaction that committed late may arrive after a higher id.

**Filters**, as in webhook subscriptions: `hazard` and `area` may repeat (an area includes its
sub-areas), `min_level` is met by the level before or after the change, and drills' warnings are
left out unless `include_exercises=true`. An unknown hazard or area is a 422 naming the parameter.

**Access**: a key with the `read_warnings` permission (viewer, operator, integrator, admin). The
key is checked again while the stream is open: a revoked key's stream ends within the key cache's
life (`auth_cache_ttl_s`) and a poll.
"""

STREAMED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An endless stream of server-sent events (see the description for its frames)",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@dataclass(frozen=True, slots=True)
class StreamFilters:
    """Which events a stream carries; empty ``hazards``/``areas`` or no ``min_level`` match all."""

    hazards: frozenset[str]
    areas: tuple[str, ...]
    min_level: Level | None
    include_exercises: bool
    within: Callable[[str, str], bool]

    def wants(self, event: FeedEvent) -> bool:
        if event.exercise and not self.include_exercises:
            return False
        if self.hazards and event.hazard not in self.hazards:
            return False
        if self.areas and not any(self.within(event.area, a) for a in self.areas):
            return False
        if self.min_level is None:
            return True
        return any(rank(level) >= rank(self.min_level) for level in event.levels)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses=STREAMED,
    summary="Live warning changes as server-sent events",
    description=DESCRIPTION,
    dependencies=[Depends(require(Permission.READ_WARNINGS))],
)
async def stream(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    svc: Annotated[Services, Depends(services)],
    hazard: Annotated[list[str] | None, Query(description="Only these hazards (repeatable)")] = None,
    area: Annotated[
        list[str] | None, Query(description="Only warnings in these areas or their sub-areas (repeatable)")
    ] = None,
    min_level: Annotated[
        Level | None, Query(description="Only changes whose level before or after is at least this")
    ] = None,
    include_exercises: Annotated[bool, Query(description="Also drills' warnings")] = False,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_EVENT_ID, description="Replay the events after this id (as Last-Event-ID)"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=19, description="The last event id received"),
    ] = None,
) -> EventSourceResponse:
    filters = StreamFilters(
        hazards=frozenset(_checked_hazards(svc, hazard or [])),
        areas=tuple(_checked_areas(svc, area or [])),
        min_level=min_level,
        include_exercises=include_exercises,
        within=area_within(svc.areas),
    )
    resume_after = _event_id(last_event_id) if last_event_id is not None else after
    assert credentials is not None  # require() admitted a key
    frames = _frames(
        hub_of(request, svc),
        svc,
        filters,
        after=resume_after,
        token=credentials.credentials,
        max_s=svc.settings.stream_max_s,
    )
    return EventSourceResponse(
        frames,
        ping=PING_S,
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        send_timeout=SEND_TIMEOUT_S,
    )


def hub_of(request: Request, svc: Services) -> StreamHub:
    """The app's one hub, made on the first stream (in the event loop, so no lock is needed)."""
    hub: StreamHub | None = getattr(request.app.state, "stream_hub", None)
    if hub is None:
        hub = StreamHub(svc.engine, poll_s=POLL_S, grace_s=HOLE_GRACE_S, queue_size=QUEUE_SIZE)
        request.app.state.stream_hub = hub
    return hub


async def _frames(
    hub: StreamHub,
    svc: Services,
    filters: StreamFilters,
    *,
    after: int | None,
    token: str,
    max_s: float,
) -> AsyncIterator[ServerSentEvent]:
    """The stream's frames. Subscribed before the replay is read, so nothing falls between the two:
    the replay covers ids up to the hub's cursor, the queue everything the hub reads after it."""
    subscriber, high = await hub.subscribe()
    try:
        yield ServerSentEvent(json.dumps({"last_event_id": high}), event="ready", retry=RETRY_MS)
        if after is not None and after > high and after > await anyio.to_thread.run_sync(_newest, svc):
            # An id this database never gave (a console left open while a demo's database was made
            # anew): resuming from it would hold back every event until the ids caught up.
            yield ServerSentEvent(comment=f"no event {after} here: the stream starts from now")
            after = None
        replayed: set[int] = set()
        if after is not None:
            async for event in _replay(svc, after=after, upto=high):
                replayed.add(event.id)
                if filters.wants(event):
                    yield _frame(event)
        ttl = svc.settings.auth_cache_ttl_s
        started = time.monotonic()
        next_check = started + max(ttl, 1.0)
        while True:
            if subscriber.dropped.is_set():
                yield ServerSentEvent(comment=f"more than {QUEUE_SIZE} events behind: reconnect")
                return
            clock = time.monotonic()
            if clock - started >= max_s:
                yield ServerSentEvent(comment="the stream reached its longest life: reconnect")
                return
            if clock >= next_check:
                if not await _key_still_valid(svc, token, ttl):
                    yield ServerSentEvent(comment="the API key is no longer valid")
                    return
                next_check = clock + max(ttl, 1.0)
            try:
                event = await asyncio.wait_for(subscriber.queue.get(), timeout=POLL_S)
            except TimeoutError:
                continue
            if (after is not None and event.id <= after) or event.id in replayed:
                continue
            if filters.wants(event):
                yield _frame(event)
    finally:
        hub.unsubscribe(subscriber)


async def _replay(svc: Services, *, after: int, upto: int) -> AsyncIterator[FeedEvent]:
    """The stored events in (after, upto], in id order, read a batch at a time."""

    def batch(start: int) -> list[FeedEvent]:
        with svc.engine.connect() as conn:
            return read_events(conn, after=start, upto=upto, limit=REPLAY_BATCH)

    start = after
    while start < upto:
        events = await anyio.to_thread.run_sync(batch, start)
        for event in events:
            yield event
        if len(events) < REPLAY_BATCH:
            return
        start = events[-1].id


def _newest(svc: Services) -> int:
    """The newest event id in the database itself: the hub's cursor may be a poll behind."""
    with svc.engine.connect() as conn:
        return latest_id(conn)


def _frame(event: FeedEvent) -> ServerSentEvent:
    return ServerSentEvent(event.data, id=str(event.id), event="warning")


async def _key_still_valid(svc: Services, token: str, ttl: float) -> bool:
    """Asked as a request would be: the process's key cache first, then the database."""
    cache = AuthCache.for_engine(svc.engine, ttl)
    at = now()
    if cache.lookup(token, now=at) is not None:
        return True
    found = await run_in_threadpool(KeyStore(svc.engine, cache).authenticate, token, now=at)
    return not isinstance(found, AuthFailure)


def _checked_hazards(svc: Services, hazards: list[str]) -> list[str]:
    known = known_hazards(svc)
    for i, name in enumerate(hazards):
        if name not in known:
            raise _refused("hazard", i, f"unknown hazard; known: {', '.join(sorted(known))}", name)
    return hazards


def _checked_areas(svc: Services, areas: list[str]) -> list[str]:
    for i, name in enumerate(areas):
        if name not in svc.areas:
            raise _refused("area", i, "unknown area (see GET /v1/areas)", name)
    return areas


def _event_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > MAX_EVENT_ID:
        raise RequestValidationError(
            [
                {
                    "loc": ("header", "Last-Event-ID"),
                    "msg": "an event id is a whole number from an earlier frame's id",
                    "type": "value_error",
                    "input": text,
                }
            ]
        )
    return int(text)


def _refused(name: str, index: int, reason: str, value: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", name, index), "msg": reason, "type": "value_error", "input": value}]
    )
