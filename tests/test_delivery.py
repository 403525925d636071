"""The delivery worker against a real receiver on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from alerts import db
from alerts.delivery import DeliveryWorker, per_subscription_cap
from alerts.delivery_store import DeliveryStore, Outcome
from alerts.subscriptions import new_secret
from alerts.webhook_targets import Poster
from config.settings import Settings
from tests.pipeline_harness import wait_until
from tests.webhook_receiver import Received, Receiver, reply
from tests.webhook_rows import (
    add_delivery,
    add_subscription,
    attempt_rows,
    delivery_rows,
    subscription_events,
    subscription_row,
)

SCHEDULE = [0, 0.2, 0.2, 0.2]


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_retry_schedule": SCHEDULE,
        "webhook_allow_private": True,
        "webhook_timeout_s": 5,
        "webhook_poll_s": 0.05,
        "webhook_concurrency": 4,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


def wall() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def worker(engine: sa.Engine) -> Iterator[DeliveryWorker]:
    w = DeliveryWorker(engine, settings(), worker_id="w1", clock=wall)
    yield w
    w.close()


def deliver_until(worker: DeliveryWorker, done: Callable[[], bool], timeout_s: float = 20) -> None:
    """Run passes (as ``run`` would) until ``done()``; fail if it never is."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "deliveries did not finish in time"
        if worker.deliver_due(wall()) == 0:
            time.sleep(0.02)


def statuses(engine: sa.Engine) -> list[str]:
    return [str(r.status) for r in delivery_rows(engine)]


def answered(received: Received, answers: dict[str, int]) -> int:
    return answers[received.headers["webhook-id"]]


def test_a_receiver_down_for_its_first_attempts_gets_every_event_once_in_order_per_warning(
    engine: sa.Engine, receiver: Receiver, worker: DeliveryWorker
) -> None:
    codes: list[int] = []

    def down_then_up(h: BaseHTTPRequestHandler, _r: Received) -> None:
        codes.append(503 if len(codes) < 5 else 200)
        reply(h, codes[-1])

    receiver.answer = down_then_up
    sub, _secret = add_subscription(engine, receiver.url + "/hooks")
    ids = [add_delivery(engine, sub, warning_id=w, data={"seq": n}) for n in range(4) for w in ("w-a", "w-b")]
    ping = add_delivery(engine, sub, warning_id=None, event_type="ping")

    deliver_until(worker, lambda: set(statuses(engine)) == {"delivered"})

    got = receiver.received()
    assert codes[:5] == [503] * 5 and len(got) == len(codes)
    delivered = [json.loads(r.body) for r, code in zip(got, codes, strict=True) if code == 200]
    assert len(delivered) == len(ids) + 1  # every event exactly once
    for w in ("w-a", "w-b"):
        # In order per warning, every attempt: no event is tried before the one ahead of it is delivered.
        sent = [
            json.loads(r.body)["data"]["seq"] for r in got if json.loads(r.body)["data"]["warning_id"] == w
        ]
        assert sent == sorted(sent) and sorted(set(sent)) == [0, 1, 2, 3]
    rows = delivery_rows(engine)
    assert sum(r.attempts for r in rows) == len(got) == len(attempt_rows(engine))
    assert {r.id for r in rows} == {*ids, ping}
    assert all(r.lease_until is None and r.claimed_by is None and r.delivered_at for r in rows)
    assert subscription_row(engine, sub).failures == 0  # the 2xx ended the run


def test_every_attempt_carries_a_standard_webhooks_signature(
    engine: sa.Engine, receiver: Receiver, worker: DeliveryWorker
) -> None:
    sub, secret = add_subscription(engine, receiver.url + "/in")
    add_delivery(engine, sub, warning_id="w-1", event_type="warning.escalated")
    deliver_until(worker, lambda: statuses(engine) == ["delivered"])
    [r] = receiver.received()
    [row] = delivery_rows(engine)
    assert r.body == row.payload.encode()  # the outbox's exact text
    assert Webhook(secret).verify(r.body, r.headers)["type"] == "warning.escalated"
    assert r.headers["webhook-id"] == row.message_id
    assert r.headers["content-type"] == "application/json"
    assert "citywarn" in r.headers["user-agent"]
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(r.body, r.headers)


@pytest.mark.parametrize(("grace_left_s", "previous_signs"), [(3600, True), (-1, False)])
def test_the_previous_secret_signs_too_while_in_its_grace(
    engine: sa.Engine, receiver: Receiver, worker: DeliveryWorker, grace_left_s: float, previous_signs: bool
) -> None:
    old = new_secret()
    sub, secret = add_subscription(
        engine,
        receiver.url,
        previous_secret=old,
        previous_secret_until=wall() + timedelta(seconds=grace_left_s),
    )
    add_delivery(engine, sub, warning_id="w-1")
    deliver_until(worker, lambda: statuses(engine) == ["delivered"])
    [r] = receiver.received()
    Webhook(secret).verify(r.body, r.headers)
    assert len(r.headers["webhook-signature"].split(" ")) == (2 if previous_signs else 1)
    if previous_signs:
        Webhook(old).verify(r.body, r.headers)
    else:
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(r.body, r.headers)


def test_410_gone_fails_the_delivery_and_disables_the_subscription_at_once(
    engine: sa.Engine, receiver: Receiver, worker: DeliveryWorker, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer = lambda h, _r: reply(h, 410)
    sub, _ = add_subscription(engine, receiver.url)
    add_delivery(engine, sub, warning_id="w-1")
    with caplog.at_level(logging.WARNING, logger="citywarn.webhooks"):
        assert worker.deliver_due(wall()) == 1
    assert statuses(engine) == ["failed"]
    row = subscription_row(engine, sub)
    assert (row.enabled, row.disabled_reason) == (False, "410 Gone") and row.disabled_at is not None
    [event] = subscription_events(engine, sub)
    assert (event.actor, event.action) == ("citywarn", "auto_disabled")
    assert any(sub in m and "410 Gone" in m for m in caplog.messages)
    # Nothing more goes to a disabled endpoint.
    add_delivery(engine, sub, warning_id="w-2")
    assert worker.deliver_due(wall()) == 0
    assert len(receiver.received()) == 1


def test_a_run_of_failures_disables_the_endpoint_and_tells_the_operators(
    engine: sa.Engine, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer = lambda h, _r: reply(h, 500, b"database is down")
    worker = DeliveryWorker(
        engine,
        settings(
            webhook_disable_after_failures=3,
            webhook_disable_after_s=0,
            webhook_retry_schedule=[0] + [0.05] * 9,
        ),
        worker_id="w1",
        clock=wall,
    )
    sub, _ = add_subscription(engine, receiver.url)
    add_delivery(engine, sub, warning_id="w-1")
    try:
        with caplog.at_level(logging.WARNING, logger="citywarn.webhooks"):
            deliver_until(worker, lambda: not subscription_row(engine, sub).enabled)
    finally:
        worker.close()
    row = subscription_row(engine, sub)
    assert row.failures == 3 and len(receiver.received()) == 3 and row.failing_since is not None
    assert "3 failed attempts" in row.disabled_reason and "HTTP 500" in row.disabled_reason
    [event] = subscription_events(engine, sub)
    assert (event.actor, event.action, event.note) == ("citywarn", "auto_disabled", row.disabled_reason)
    assert [r.levelname for r in caplog.records if "disabled" in r.getMessage()] == ["WARNING"]
    [delivery] = delivery_rows(engine)
    assert (delivery.status, delivery.attempts) == ("pending", 3)  # kept for when it is enabled again
    assert [a.response_excerpt for a in attempt_rows(engine)] == ["database is down"] * 3


def test_a_run_of_failures_shorter_than_the_time_bar_disables_nothing(
    engine: sa.Engine, receiver: Receiver
) -> None:
    receiver.answer = lambda h, _r: reply(h, 503)
    worker = DeliveryWorker(
        engine,
        settings(
            webhook_disable_after_failures=2, webhook_disable_after_s=3600, webhook_retry_schedule=[0, 0, 0]
        ),
        worker_id="w1",
        clock=wall,
    )
    sub, _ = add_subscription(engine, receiver.url)
    add_delivery(engine, sub, warning_id="w-1")
    try:
        deliver_until(worker, lambda: statuses(engine) == ["failed"])
    finally:
        worker.close()
    row = subscription_row(engine, sub)
    assert (row.enabled, row.failures) == (True, 3)
    assert subscription_events(engine, sub) == []


def test_a_redirect_is_a_failure_and_is_not_followed(
    engine: sa.Engine, receiver: Receiver, worker: DeliveryWorker
) -> None:
    elsewhere = Receiver()
    try:
        receiver.answer = lambda h, _r: reply(h, 302, location=elsewhere.url + "/x")
        sub, _ = add_subscription(engine, receiver.url)
        add_delivery(engine, sub, warning_id="w-1")
        before = wall()
        assert worker.deliver_due(wall()) == 1
        assert elsewhere.received() == []
    finally:
        elsewhere.close()
    [row] = delivery_rows(engine)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 302)
    assert "not followed" in row.last_error
    # Retried after the schedule's second wait, give or take a fifth.
    wait = (db_time(row.next_attempt_at) - before).total_seconds()
    assert SCHEDULE[1] * 0.8 <= wait <= SCHEDULE[1] * 1.2 + 1
    assert subscription_row(engine, sub).failures == 1


def test_the_schedule_spent_the_delivery_fails(
    engine: sa.Engine, receiver: Receiver, worker: DeliveryWorker
) -> None:
    receiver.answer = lambda h, _r: reply(h, 500)
    sub, _ = add_subscription(engine, receiver.url)
    add_delivery(engine, sub, warning_id="w-1")
    later = add_delivery(engine, sub, warning_id="w-1")
    deliver_until(worker, lambda: statuses(engine)[0] == "failed")
    assert [a.attempt for a in attempt_rows(engine)][: len(SCHEDULE)] == [1, 2, 3, 4]
    # The queue moves on past a delivery given up on.
    receiver.answer = lambda h, _r: reply(h, 200)
    deliver_until(worker, lambda: statuses(engine) == ["failed", "delivered"])
    assert json.loads(receiver.received()[-1].body) == json.loads(delivery_rows(engine)[1].payload)
    assert delivery_rows(engine)[1].id == later


def test_a_changed_url_and_rotated_secret_apply_to_the_next_attempt(
    engine: sa.Engine, receiver: Receiver, worker: DeliveryWorker
) -> None:
    receiver.answer = lambda h, _r: reply(h, 503)
    sub, _ = add_subscription(engine, receiver.url)
    add_delivery(engine, sub, warning_id="w-1")
    assert worker.deliver_due(wall()) == 1
    moved, rotated = Receiver(), new_secret()
    try:
        with engine.begin() as conn:
            conn.execute(
                db.subscriptions.update()
                .where(db.subscriptions.c.id == sub)
                .values(url=moved.url, secret=rotated)
            )
        deliver_until(worker, lambda: statuses(engine) == ["delivered"])
        [r] = moved.received()
    finally:
        moved.close()
    Webhook(rotated).verify(r.body, r.headers)
    assert len(receiver.received()) == 1


def test_only_the_head_of_each_warnings_queue_is_claimed(engine: sa.Engine) -> None:
    sub, _ = add_subscription(engine, "http://127.0.0.1:9/")
    first = add_delivery(engine, sub, warning_id="w-1")
    add_delivery(engine, sub, warning_id="w-1")
    other = add_delivery(engine, sub, warning_id="w-2")
    pings = [add_delivery(engine, sub, warning_id=None, event_type="ping") for _ in range(2)]
    add_delivery(engine, sub, warning_id="w-3", due=wall() + timedelta(hours=1))  # not due yet
    disabled, _ = add_subscription(engine, "http://127.0.0.1:9/")
    add_delivery(engine, disabled, warning_id="w-4")
    with engine.begin() as conn:
        conn.execute(db.subscriptions.update().where(db.subscriptions.c.id == disabled).values(enabled=False))
    store = DeliveryStore(engine)
    claimed = store.claim(now=wall(), worker="w1", limit=10, lease=timedelta(seconds=30))
    assert [c.delivery_id for c in claimed] == [first, other, *pings]
    # Claimed rows are leased: a second claimer finds nothing until the lease runs out.
    assert store.claim(now=wall(), worker="w2", limit=10, lease=timedelta(seconds=30)) == []
    late = store.claim(now=wall() + timedelta(seconds=31), worker="w2", limit=10, lease=timedelta(seconds=30))
    assert [c.delivery_id for c in late] == [first, other, *pings]


def test_a_worker_whose_lease_was_overtaken_records_nothing(engine: sa.Engine, receiver: Receiver) -> None:
    sub, _ = add_subscription(engine, receiver.url)
    add_delivery(engine, sub, warning_id="w-1")
    store, poster, s = DeliveryStore(engine), Poster(), settings()
    worker = DeliveryWorker(engine, s, worker_id="unused", clock=wall)
    lease = timedelta(seconds=30)
    try:
        [slow] = store.claim(now=wall(), worker="slow", limit=5, lease=lease)
        # The slow worker's lease runs out before it records; another claims the row and delivers it.
        [fast] = store.claim(now=wall() + lease + timedelta(seconds=1), worker="fast", limit=5, lease=lease)
        # The slow one's answer comes back first, while the row is the fast one's.
        for claimed in (slow, fast):
            result = poster.post(claimed.url, claimed.payload.encode(), {}, timeout_s=5, allow_private=True)
            outcome = store.record(
                claimed, result, started_at=wall(), now=wall(), backoff=worker.backoff, rng=worker.rng
            )
            assert outcome is (Outcome.DELIVERED if claimed is fast else Outcome.OVERTAKEN)
    finally:
        poster.close()
        worker.close()
    [attempt] = attempt_rows(engine)
    assert attempt.worker == "fast"
    [row] = delivery_rows(engine)
    assert (row.status, row.attempts) == ("delivered", 1)


def test_run_delivers_until_stopped(engine: sa.Engine, receiver: Receiver) -> None:
    sub, _ = add_subscription(engine, receiver.url)
    worker = DeliveryWorker(engine, settings(), worker_id="w1", clock=wall)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        add_delivery(engine, sub, warning_id="w-1")
        receiver.wait_for(lambda got: len(got) == 1)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_stopping_run_finishes_and_records_the_attempts_in_flight(
    engine: sa.Engine, receiver: Receiver
) -> None:
    answering = threading.Event()

    def slow(h: BaseHTTPRequestHandler, _r: Received) -> None:
        answering.set()
        time.sleep(0.5)
        reply(h, 200)

    receiver.answer = slow
    sub, _ = add_subscription(engine, receiver.url)
    add_delivery(engine, sub, warning_id="w-1")
    worker = DeliveryWorker(engine, settings(), worker_id="w1", clock=wall)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    assert answering.wait(10)
    stop.set()  # while the receiver is still answering
    thread.join(10)
    assert not thread.is_alive()
    assert statuses(engine) == ["delivered"] and len(attempt_rows(engine)) == 1


def test_a_claim_takes_no_more_of_a_subscriptions_rows_than_its_room(engine: sa.Engine) -> None:
    busy, _ = add_subscription(engine, "http://127.0.0.1:9/")
    busy_ids = [add_delivery(engine, busy, warning_id=f"w-{n}") for n in range(10)]
    add_delivery(engine, busy, warning_id="w-0")  # behind busy_ids[0] in its warning's queue
    quiet, _ = add_subscription(engine, "http://127.0.0.1:9/")
    quiet_ids = [add_delivery(engine, quiet, warning_id=f"w-{n}") for n in range(3)]
    store, lease = DeliveryStore(engine), timedelta(seconds=30)

    def claim(limit: int, in_flight: dict[str, int]) -> list[int]:
        claimed = store.claim(
            now=wall(), worker="w1", limit=limit, lease=lease, per_subscription=2, in_flight=in_flight
        )
        return [c.delivery_id for c in claimed]

    # The quiet subscription's rows, behind ten of the busy one's, are reached within one claim.
    assert claim(4, {}) == [*busy_ids[:2], *quiet_ids[:2]]
    # Room is the cap less what is in flight; a subscription at its cap is left out.
    assert claim(4, {busy: 1, quiet: 2}) == [busy_ids[2]]
    assert claim(4, {busy: 2, quiet: 2}) == []
    assert claim(8, {busy: 2}) == [quiet_ids[2]]
    # Without a cap a claim is oldest first, as many as asked, each the head of its queue.
    assert claim_all(store) == busy_ids[3:8]


def claim_all(store: DeliveryStore) -> list[int]:
    claimed = store.claim(now=wall(), worker="w2", limit=5, lease=timedelta(seconds=30))
    return [c.delivery_id for c in claimed]


class Hanging:
    """An endpoint that hangs: each request is held until its client gives up on it, or until the test
    releases it (then 503). Counts the requests it holds at once, as the integrator would see them."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.holding = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, h: BaseHTTPRequestHandler, _r: Received) -> None:
        with self._lock:
            self.holding += 1
            self.most = max(self.most, self.holding)
        try:
            while not self.release.is_set():
                if _hung_up(h.connection):
                    return
            reply(h, 503)
        finally:
            with self._lock:
                self.holding -= 1


def _hung_up(conn: socket.socket) -> bool:
    """Whether the client closed the connection (waits up to 20 ms to find out)."""
    readable, _, _ = select.select([conn], [], [], 0.02)
    return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""


@pytest.fixture
def hanging() -> Iterator[tuple[Receiver, Hanging]]:
    r, h = Receiver(), Hanging()
    r.answer = h
    yield r, h
    h.release.set()
    r.close()


def running(worker: DeliveryWorker) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    return stop, thread


# Concurrency 8 and a 3 s timeout: one hanging endpoint's rows would fill every slot for 3 s a pass.
FAIRNESS = {"webhook_concurrency": 8, "webhook_timeout_s": 3, "webhook_poll_s": 0.5}


def test_a_hanging_endpoint_holds_only_its_cap_and_another_gets_its_events_at_once(
    engine: sa.Engine, receiver: Receiver, hanging: tuple[Receiver, Hanging]
) -> None:
    slow_receiver, slow = hanging
    a, _ = add_subscription(engine, slow_receiver.url)
    for n in range(20):  # a storm: one queue head per warning, all older than b's
        add_delivery(engine, a, warning_id=f"w-{n}")
    b, _ = add_subscription(engine, receiver.url)
    b_ids = {add_delivery(engine, b, warning_id=f"w-{n}") for n in range(5)}
    cap = per_subscription_cap(FAIRNESS["webhook_concurrency"])
    worker = DeliveryWorker(engine, settings(**FAIRNESS), worker_id="w1", clock=wall)
    started = time.monotonic()
    stop, thread = running(worker)
    try:
        receiver.wait_for(lambda got: len(got) == 5, timeout_s=1.5)
        assert time.monotonic() - started < 1.5
        assert {t.delivery_id for t in attempt_rows(engine)} <= b_ids  # a's attempts are still in flight
        assert slow.holding == cap
        # Past a's timeouts its slots are refilled with its next rows, never more than the cap at once.
        slow_receiver.wait_for(lambda got: len(got) >= 2 * cap, timeout_s=15)
    finally:
        stop.set()
        slow.release.set()
        thread.join(20)
    assert not thread.is_alive()
    assert slow.most == cap
    assert all(r.status == "delivered" for r in delivery_rows(engine) if r.id in b_ids)


def test_a_slot_freed_or_idle_is_filled_without_waiting_for_the_slow_attempts(
    engine: sa.Engine, receiver: Receiver, hanging: tuple[Receiver, Hanging]
) -> None:
    slow_receiver, slow = hanging
    a, _ = add_subscription(engine, slow_receiver.url)
    for n in range(20):
        add_delivery(engine, a, warning_id=f"w-{n}")
    b, _ = add_subscription(engine, receiver.url)
    worker = DeliveryWorker(engine, settings(**FAIRNESS), worker_id="w1", clock=wall)
    stop, thread = running(worker)
    try:
        cap = per_subscription_cap(FAIRNESS["webhook_concurrency"])
        slow_receiver.wait_for(lambda got: len(got) == cap, timeout_s=5)
        # b's events arrive while a's attempts hang: they go out in the free slots, not after a's pass.
        arrived = time.monotonic()
        # One queue, so each waits for the one before it: five refills in a row.
        b_ids = {add_delivery(engine, b, warning_id="w-b", data={"seq": n}) for n in range(5)}
        got = receiver.wait_for(lambda got: len(got) == 5, timeout_s=1.5)
        assert time.monotonic() - arrived < 1.5
        wait_until(lambda: {t.delivery_id for t in attempt_rows(engine)} == b_ids, timeout_s=1, what="b's")
        assert slow.holding == cap and len(slow_receiver.received()) == cap  # a's are still in flight
        assert [json.loads(r.body)["data"]["seq"] for r in got] == [0, 1, 2, 3, 4]
    finally:
        stop.set()
        slow.release.set()
        thread.join(20)
    assert not thread.is_alive()


def db_time(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
