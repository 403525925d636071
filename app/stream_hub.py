"""One poller of ``warning_events`` per API process, fanned out to every open GET /v1/stream.

Why one: a poll loop per client would put N identical queries on the state
database every interval. The hub polls once (``alerts.event_feed.EventCursor``,
on a worker thread) and hands each event to every subscriber's bounded queue.
A subscriber whose queue is full is dropped, not waited for: one slow client
must not hold the others back or grow the process's memory. Its stream ends
with a comment saying so, and the client resumes from its Last-Event-ID, which
the database replays. The poller runs only while someone listens.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import anyio.to_thread
import sqlalchemy as sa

from alerts.event_feed import EventCursor, FeedEvent, latest_id
from app.metrics import STREAM_CLIENTS, STREAM_DROPPED

log = logging.getLogger(__name__)

POLL_BATCH = 500
RETRY_AFTER_ERROR_S = 2.0


@dataclass(eq=False)
class Subscriber:
    """One open stream's inbox. ``dropped`` is set when it fell too far behind."""

    queue: asyncio.Queue[FeedEvent]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)


class StreamHub:
    """``poll_s``: seconds between polls; ``grace_s``: how long a missing id is asked for again;
    ``queue_size``: the events a subscriber may have waiting before it is dropped."""

    def __init__(self, engine: sa.Engine, *, poll_s: float, grace_s: float, queue_size: int) -> None:
        self.engine = engine
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.cursor: EventCursor | None = None
        self.polls = 0  # how many times the database was asked: one poller, whatever the clients
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def subscribe(self) -> tuple[Subscriber, int]:
        """Register a new subscriber; returns it and the cursor now: every event above that id,
        and every hole below it, will be put in its queue."""
        async with self._starting:
            if self._task is None or self._task.done():
                high = await anyio.to_thread.run_sync(self._latest_id)
                self.cursor = EventCursor(high=high, grace_s=self.grace_s)
                self._task = asyncio.create_task(self._run(self.cursor), name="stream-hub")
            assert self.cursor is not None
            subscriber = Subscriber(asyncio.Queue(maxsize=self.queue_size))
            self.subscribers.add(subscriber)
            STREAM_CLIENTS.inc()
            return subscriber, self.cursor.high

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            STREAM_CLIENTS.dec()

    def _latest_id(self) -> int:
        with self.engine.connect() as conn:
            return latest_id(conn)

    async def _run(self, cursor: EventCursor) -> None:
        """Poll while anyone listens. The cursor is moved here, on the event loop, after the events
        were handed on, so a subscriber registering meanwhile reads a cursor that matches its queue."""
        while self.subscribers:
            try:
                events = await anyio.to_thread.run_sync(self._poll, cursor)
            except sa.exc.SQLAlchemyError:
                log.exception("the event stream could not read the state database; retrying")
                await asyncio.sleep(RETRY_AFTER_ERROR_S)
                continue
            self._publish(events)
            cursor.saw(event.id for event in events)
            cursor.expire()
            if len(events) < POLL_BATCH:
                await asyncio.sleep(self.poll_s)

    def _poll(self, cursor: EventCursor) -> list[FeedEvent]:
        self.polls += 1
        with self.engine.connect() as conn:
            return cursor.poll(conn, limit=POLL_BATCH)

    def _publish(self, events: list[FeedEvent]) -> None:
        for subscriber in list(self.subscribers):
            for event in events:
                try:
                    subscriber.queue.put_nowait(event)
                except asyncio.QueueFull:
                    subscriber.dropped.set()
                    self.unsubscribe(subscriber)
                    STREAM_DROPPED.inc()
                    break
