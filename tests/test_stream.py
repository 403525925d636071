"""GET /v1/stream over a real HTTP connection: a uvicorn server on a free port, read with httpx streaming.

TestClient buffers a whole response, so everything that streams is read here from a real socket, on
both state databases. The gap-aware cursor is also checked on its own, and on PostgreSQL with two
transactions that commit out of id order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from alerts import db
from alerts.event_feed import EVENT_FIELDS, EventCursor
from alerts.lifecycle import new_warning, opened_event
from alerts.repository import SqlWarningRepository
from app.api.stream import POLL_S, QUEUE_SIZE
from app.auth.keys import KeyStore
from app.auth.roles import Role
from app.main import create_app
from app.services import Services
from app.stream_hub import StreamHub
from bench.isolation import isolated_settings
from ingest.broker import EmbeddedBroker, free_port
from tests.auth_helpers import bearer, cli_key, new_key
from tests.factories import signal as make_signal
from tests.pipeline_harness import wait_until

# ---- the cursor on its own --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_cursor_keeps_skipped_ids_as_holes_until_they_come_or_the_grace_runs_out() -> None:
    clock = Clock()
    cursor = EventCursor(high=9, grace_s=5.0, clock=clock)
    cursor.saw([11, 13])
    assert (cursor.high, sorted(cursor.holes)) == (13, [10, 12])
    clock.t += 3
    cursor.saw([10])
    assert sorted(cursor.holes) == [12]
    assert cursor.expire() == []
    clock.t += 2.5
    assert cursor.expire() == [12]
    assert cursor.holes == {} and cursor.high == 13


def test_the_cursor_keeps_at_most_max_holes_the_newest() -> None:
    cursor = EventCursor(high=0, max_holes=3, clock=Clock())
    cursor.saw([100])
    assert sorted(cursor.holes) == [97, 98, 99]


# ---- a real server --------------------------------------------------------------------------


@dataclass
class Live:
    base: str
    app: FastAPI
    url: str  # the state database

    @property
    def svc(self) -> Services:
        return self.app.state.services  # type: ignore[no-any-return]

    def key(self, role: Role = Role.VIEWER, label: str | None = None) -> str:
        return new_key(self.app, role, label)


@pytest.fixture
def live(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Live]:
    """The whole app served by uvicorn in a thread, on either state database; keys cached for 1 s."""
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=state_url,
        rate_limits_enabled=False,
        auth_cache_ttl_s=1.0,
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout_s=60, what="uvicorn to start")
    try:
        yield Live(f"http://127.0.0.1:{port}", app, state_url)
    finally:
        server.should_exit = True
        thread.join(30)


@dataclass
class Frame:
    event: str | None = None
    id: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


class Stream:
    """An SSE client on a thread: frames (and the end, as None) land in a queue the test reads."""

    def __init__(self, url: str, headers: dict[str, str], params: dict[str, Any] | None = None) -> None:
        self.frames: queue.Queue[Frame | None] = queue.Queue()
        self.client = httpx.Client(timeout=httpx.Timeout(5.0, read=60.0))
        self.response = self.client.send(
            self.client.build_request("GET", url, headers=headers, params=params), stream=True
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        frame = Frame()
        try:
            for line in self.response.iter_lines():
                if line == "":
                    self.frames.put(frame)
                    frame = Frame()
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    frame.comments.append(value)
                elif name == "data":
                    frame.data = f"{frame.data}\n{value}" if frame.data else value
                elif name == "retry":
                    frame.retry = int(value)
                elif name in ("event", "id"):
                    setattr(frame, name, value)
        except httpx.HTTPError:
            pass
        finally:
            self.frames.put(None)

    def next(self, timeout: float = 10.0) -> Frame | None:
        return self.frames.get(timeout=timeout)

    def next_warning(self, timeout: float = 10.0) -> Frame:
        """The next ``warning`` frame, skipping pings."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.next(max(0.01, deadline - time.monotonic()))
            assert frame is not None, "the stream ended"
            if frame.event == "warning":
                return frame

    def quiet_for(self, seconds: float) -> list[Frame]:
        """Every frame but pings within ``seconds`` (the test expects none)."""
        got: list[Frame] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.next(left)
            except queue.Empty:
                break
            if frame is None or frame.event is not None:
                got.append(frame)  # type: ignore[arg-type]
        return got

    def close(self) -> None:
        """Hang up as a browser does. Closing the response from this thread would not send the FIN
        while the reader thread is blocked receiving, so the socket is shut down under it first."""
        network = self.response.extensions.get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(10)
        self.response.close()
        self.client.close()


@pytest.fixture
def streams(live: Live) -> Iterator[list[Stream]]:
    """Streams a test opens, all closed before the server stops."""
    opened: list[Stream] = []
    yield opened
    for s in opened:
        s.close()


def open_stream(
    live: Live, streams: list[Stream], token: str, *, headers: dict[str, str] | None = None, **params: Any
) -> tuple[Stream, Frame]:
    s = Stream(f"{live.base}/v1/stream", {**bearer(token), **(headers or {})}, params)
    streams.append(s)
    assert s.response.status_code == 200, s.response.read()
    assert s.response.headers["content-type"].startswith("text/event-stream")
    ready = s.next()
    assert ready is not None and ready.event == "ready" and ready.retry == 3000
    return s, ready


def open_flood(live: Live, area: str = "g-riverside-01", level: str = "yellow") -> str:
    now = datetime.now(UTC)
    sensor = {"g-riverside-01": "wl-riverside-01", "g-oldtown-03": "wl-oldtown-01"}.get(
        area, "wl-riverside-01"
    )
    [wid] = live.svc.warnings.apply_signals(
        [make_signal(area=area, level=level, sensor_id=sensor, ts=now)], now=now, actor="detector:t"
    )
    return wid


def annotate(live: Live, wid: str, note: str) -> None:
    live.svc.warnings.annotate(wid, now=datetime.now(UTC), actor="desk", actor_role="operator", note=note)


def test_each_change_is_a_frame_with_its_event_and_the_warning_now(live: Live, streams: list[Stream]) -> None:
    viewer, operator = live.key(Role.VIEWER), live.key(Role.OPERATOR, "duty desk")
    s, ready = open_stream(live, streams, viewer)
    assert isinstance(ready.json()["last_event_id"], int)
    wid = open_flood(live)
    opened = s.next_warning()
    body = opened.json()
    assert set(body["event"]) == set(EVENT_FIELDS)
    assert body["event"]["id"] == int(opened.id or 0) and body["event"]["warning_id"] == wid
    assert body["event"]["action"] == "opened" and body["warning"]["id"] == wid

    ack = httpx.post(f"{live.base}/v1/warnings/{wid}/acknowledge", headers=bearer(operator), json={})
    assert ack.status_code == 200
    acked = s.next_warning().json()
    assert (acked["event"]["action"], acked["event"]["actor"]) == ("acknowledged", "duty desk")
    assert acked["warning"]["status"] == "acknowledged"
    # The warning in the frame is the warning as GET /v1/warnings lists it.
    listed = httpx.get(f"{live.base}/v1/warnings", headers=bearer(viewer)).json()["items"]
    assert acked["warning"] == next(w for w in listed if w["id"] == wid)
    assert int(opened.id or 0) < acked["event"]["id"]


def test_one_poller_serves_every_client(live: Live, streams: list[Stream]) -> None:
    token = live.key()
    connected = REGISTRY.get_sample_value("citywarn_stream_clients") or 0.0
    clients = [open_stream(live, streams, token)[0] for _ in range(4)]
    assert REGISTRY.get_sample_value("citywarn_stream_clients") == connected + 4
    hub = live.app.state.stream_hub
    before, started = hub.polls, time.monotonic()
    time.sleep(3)
    polls, elapsed = hub.polls - before, time.monotonic() - started
    # One poll per interval for all four clients, not four.
    assert polls <= elapsed / POLL_S + 2, polls
    wid = open_flood(live)
    assert all(c.next_warning().json()["warning"]["id"] == wid for c in clients)
    for c in clients:
        c.close()
    # The server notices each hang-up, and the poller stops once nobody listens.
    wait_until(lambda: not hub.subscribers and hub._task.done(), timeout_s=5, what="the poller to stop")
    assert REGISTRY.get_sample_value("citywarn_stream_clients") == connected


def test_a_client_resumes_by_last_event_id_missing_nothing_and_getting_nothing_twice(
    live: Live, streams: list[Stream]
) -> None:
    token = live.key()
    s, _ = open_stream(live, streams, token)
    wid = open_flood(live)
    first = s.next_warning()
    s.close()
    for n in range(3):  # while nobody listens
        annotate(live, wid, f"missed {n}")

    again, _ = open_stream(live, streams, token, headers={"Last-Event-ID": first.id or ""})
    replayed = [again.next_warning().json()["event"] for _ in range(3)]
    assert [e["note"] for e in replayed] == ["missed 0", "missed 1", "missed 2"]
    assert [e["id"] for e in replayed] == sorted(e["id"] for e in replayed)
    annotate(live, wid, "live")
    assert again.next_warning().json()["event"]["note"] == "live"
    assert again.quiet_for(1.5) == []  # nothing twice
    again.close()

    # ?after= for clients that cannot set headers: the same replay, then what came since.
    by_query, _ = open_stream(live, streams, token, after=first.id)
    notes = [by_query.next_warning().json()["event"]["note"] for _ in range(4)]
    assert notes == ["missed 0", "missed 1", "missed 2", "live"]
    assert by_query.quiet_for(1.0) == []


def test_without_a_resume_point_only_new_events_come(live: Live, streams: list[Stream]) -> None:
    wid = open_flood(live)
    s, ready = open_stream(live, streams, live.key())
    assert ready.json()["last_event_id"] >= 1
    annotate(live, wid, "after the start")
    assert s.next_warning().json()["event"]["note"] == "after the start"


def test_a_resume_point_the_database_never_gave_starts_from_now(live: Live, streams: list[Stream]) -> None:
    """A console left open while the demo's database was made anew must not wait for ids to catch up."""
    wid = open_flood(live)
    s, _ = open_stream(live, streams, live.key(), headers={"Last-Event-ID": "999999"})
    annotate(live, wid, "after a restart")
    assert s.next_warning().json()["event"]["note"] == "after a restart"


def test_filters_by_hazard_area_level_and_exercise(live: Live, streams: list[Stream]) -> None:
    token = live.key()
    district, _ = open_stream(live, streams, token, area="d-oldtown")
    red_only, _ = open_stream(live, streams, token, min_level="red")
    gas_only, _ = open_stream(live, streams, token, hazard="gas_leak")
    drills, _ = open_stream(live, streams, token, include_exercises="true", area="g-riverside-05")
    plain, _ = open_stream(live, streams, token, area="g-riverside-05")

    oldtown = open_flood(live, area="g-oldtown-03")  # a grid of d-oldtown, yellow
    red = open_flood(live, area="g-riverside-01", level="red")
    now = datetime.now(UTC)
    exercise = new_warning("flood", "g-riverside-05", "yellow", first=now, last=now, now=now).model_copy(
        update={"exercise": True}
    )
    with live.svc.warnings.repository.writing() as tx:
        tx.insert(exercise)
        tx.record(exercise.id, opened_event("yellow", at=now, actor="drill", note="drill"))

    # Roll-ups (alerts.rollup) add district warnings of their own: each stream is judged by all it got.
    time.sleep(4 * POLL_S)
    got = {
        name: [f.json() for f in s.quiet_for(1.0)]
        for name, s in [
            ("district", district),
            ("red", red_only),
            ("gas", gas_only),
            ("drills", drills),
            ("plain", plain),
        ]
    }
    areas = live.svc.areas
    assert oldtown in {b["warning"]["id"] for b in got["district"]}
    assert all(
        b["warning"]["area"] in ("d-oldtown", *(g.id for g in areas.grids("d-oldtown")))
        for b in got["district"]
    )
    assert red in {b["warning"]["id"] for b in got["red"]}
    assert all("red" in (b["event"]["from_level"], b["event"]["to_level"]) for b in got["red"])
    assert [b["warning"]["id"] for b in got["drills"]] == [exercise.id]
    assert got["gas"] == [] and got["plain"] == []


def test_a_stream_ends_soon_after_its_key_is_revoked_elsewhere(live: Live, streams: list[Stream]) -> None:
    token = live.key(Role.INTEGRATOR)
    s, _ = open_stream(live, streams, token)
    other_process = db.open_engine(live.url)  # its own key cache: this process's still admits the key
    try:
        KeyStore(other_process).revoke(token.split("_")[1], at=datetime.now(UTC))
    finally:
        other_process.dispose()
    revoked_at = time.monotonic()
    frames: list[Frame] = []
    while (frame := s.next(timeout=10)) is not None:
        frames.append(frame)
    took = time.monotonic() - revoked_at
    # auth_cache_ttl_s (1 s) and the check's own interval (at least 1 s), plus a poll.
    assert took < 1.0 + 1.0 + POLL_S + 1.0, took
    assert any("no longer valid" in c for f in frames for c in f.comments)


def test_a_dropped_client_gets_a_comment_and_resumes_from_the_database(
    live: Live, streams: list[Stream]
) -> None:
    token = live.key()
    wid = open_flood(live)
    s, ready = open_stream(live, streams, token)
    [subscriber] = list(live.app.state.stream_hub.subscribers)
    subscriber.dropped.set()  # as the hub marks a client whose queue is full (test_stream_hub below)
    frames: list[Frame] = []
    while (frame := s.next(timeout=10)) is not None:
        frames.append(frame)
    assert any(f"more than {QUEUE_SIZE} events behind" in c for f in frames for c in f.comments)
    annotate(live, wid, "while it was away")
    again, _ = open_stream(live, streams, token, after=ready.json()["last_event_id"])
    assert again.next_warning().json()["event"]["note"] == "while it was away"


def test_the_hub_polls_once_for_all_and_drops_only_the_client_that_fell_behind(engine: sa.Engine) -> None:
    now = datetime.now(UTC)
    w = new_warning("flood", "g-riverside-01", "yellow", first=now, last=now, now=now)
    with SqlWarningRepository(engine).writing() as tx:
        tx.insert(w)

    async def scenario() -> tuple[list[int], bool, bool, int]:
        # Room for three: a batch of two fits an empty queue, the second batch overflows the sleeper's.
        hub = StreamHub(engine, poll_s=0.05, grace_s=1.0, queue_size=3)
        reader, sleeper = (await hub.subscribe())[0], (await hub.subscribe())[0]
        got: list[int] = []
        for batch in range(3):
            with engine.begin() as conn:
                for n in range(2):
                    _insert_event(conn, w.id, f"{batch}.{n}")
            for _ in range(2):
                got.append((await asyncio.wait_for(reader.queue.get(), timeout=10)).id)
        polls = hub.polls
        await asyncio.sleep(0.3)
        hub.unsubscribe(reader)
        return got, sleeper.dropped.is_set(), sleeper in hub.subscribers, hub.polls - polls

    dropped_before = REGISTRY.get_sample_value("citywarn_stream_dropped_total") or 0.0
    got, dropped, still_there, polls_in_300ms = asyncio.run(scenario())
    assert REGISTRY.get_sample_value("citywarn_stream_dropped_total") == dropped_before + 1
    assert got == sorted(got) and len(set(got)) == 6
    assert dropped and not still_there
    assert polls_in_300ms <= 0.3 / 0.05 + 2  # one poll loop, not one per subscriber


# ---- refusals, answered before any streaming (so TestClient can read them) -----------------------


@pytest.fixture
def app_client(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        rate_limits_enabled=False,
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"hazard": "volcano"}, {}, "hazard"),
        ({"area": "nowhere"}, {}, "area"),
        ({"min_level": "purple"}, {}, "min_level"),
        ({"include_exercises": "maybe"}, {}, "include_exercises"),
        ({"after": "-1"}, {}, "after"),
        ({}, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
    ],
)
def test_a_bad_filter_or_resume_point_is_a_422_naming_it(
    app_client: TestClient, params: dict[str, str], headers: dict[str, str], field: str
) -> None:
    token = new_key(app_client.app, Role.VIEWER)  # type: ignore[arg-type]
    resp = app_client.get("/v1/stream", params=params, headers={**bearer(token), **headers})
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert field in resp.json()["detail"]


def test_no_key_is_401_and_an_ingest_key_403(app_client: TestClient) -> None:
    assert app_client.get("/v1/stream").status_code == 401
    ingest = new_key(app_client.app, Role.INGEST)  # type: ignore[arg-type]
    assert app_client.get("/v1/stream", headers=bearer(ingest)).status_code == 403


# ---- PostgreSQL: ids that commit out of order ---------------------------------------------------


def _insert_event(conn: sa.Connection, warning_id: str, note: str) -> int:
    return int(
        conn.execute(
            db.events.insert()
            .values(
                warning_id=warning_id,
                at=datetime.now(UTC),
                actor="t",
                action="annotated",
                to_status="active",
                to_level="yellow",
                note=note,
            )
            .returning(db.events.c.id)
        ).scalar_one()
    )


def test_an_id_committed_after_a_higher_one_is_still_streamed_once(
    broker: EmbeddedBroker, tmp_path: Path, postgres_url: str
) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=postgres_url,
        rate_limits_enabled=False,
    )
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout_s=60, what="uvicorn to start")
    live = Live(f"http://127.0.0.1:{port}", app, postgres_url)
    opened: list[Stream] = []
    try:
        wid = open_flood(live)
        s, _ = open_stream(live, opened, live.key())
        engine: sa.Engine = live.svc.engine
        with engine.connect() as first, engine.connect() as second:
            first_tx = first.begin()
            lower = _insert_event(first, wid, "committed late")
            with second.begin():
                higher = _insert_event(second, wid, "committed first")
            assert lower < higher
            got = s.next_warning().json()["event"]
            assert (got["id"], got["note"]) == (higher, "committed first")
            time.sleep(2 * POLL_S)  # polls that see the hole and not the row
            first_tx.commit()
        late = s.next_warning().json()["event"]
        assert (late["id"], late["note"]) == (lower, "committed late")
        assert s.quiet_for(2.0) == []  # each once
    finally:
        for s in opened:
            s.close()
        server.should_exit = True
        thread.join(30)


def test_the_cursor_on_postgresql_sees_a_late_commit_below_its_high(postgres_url: str) -> None:
    engine = db.connect(postgres_url)
    try:
        now = datetime.now(UTC)
        w = new_warning("flood", "g-riverside-01", "yellow", first=now, last=now, now=now)
        with SqlWarningRepository(engine).writing() as tx:
            tx.insert(w)
        cursor = EventCursor(high=0)
        with engine.connect() as first, engine.connect() as second, engine.connect() as reader:
            tx = first.begin()
            lower = _insert_event(first, w.id, "late")
            with second.begin():
                higher = _insert_event(second, w.id, "early")
            seen = cursor.poll(reader)
            reader.rollback()
            cursor.saw(e.id for e in seen)
            assert [e.id for e in seen] == [higher] and lower in cursor.holes
            tx.commit()
            seen = cursor.poll(reader)
            cursor.saw(e.id for e in seen)
            assert [e.id for e in seen] == [lower] and cursor.holes == {}
    finally:
        engine.dispose()


# ---- shutdown ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "run"])
def test_sigterm_stops_the_service_promptly_with_a_stream_open(
    tmp_path: Path, broker: EmbeddedBroker, command: str
) -> None:
    """`citywarn serve` and `citywarn run` (its consumers too) exit 0 within seconds: the open stream
    ends when uvicorn is told to stop, instead of holding its wait for connections to close."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    env |= {
        "CITYWARN_DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3",
        "CITYWARN_STORE_URL": f"file://{tmp_path}/store.sqlite3",
        "CITYWARN_KAFKA_BOOTSTRAP": broker.bootstrap,
    }
    log = tmp_path / f"{command}.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "citywarn"), command, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    s: Stream | None = None
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout_s=60, what=f"citywarn {command}")
        token = cli_key("viewer", "wallboard", cwd=tmp_path, env=env)
        s = Stream(f"{base}/v1/stream", bearer(token))
        assert s.response.status_code == 200 and (ready := s.next()) is not None and ready.event == "ready"
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while s.next(timeout=10) is not None:
            pass
        assert time.monotonic() - stopping < 2, "the stream outlived the SIGTERM"
        assert proc.wait(30) == 0, log.read_text()[-3000:]
        # serve has nothing else to finish; run also stops its consumers (about 6 s with no stream open).
        assert time.monotonic() - stopping < (5 if command == "serve" else 15), log.read_text()[-3000:]
    finally:
        if s is not None:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
