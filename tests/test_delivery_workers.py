"""Several delivery workers on one outbox, and a worker killed mid-flight: nothing lost, nothing sent twice
that a receiver could not drop (a duplicate carries the same ``webhook-id``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from alerts import db
from alerts.delivery import DeliveryWorker
from config.settings import Settings
from ingest.broker import free_port
from tests.pipeline_harness import wait_until
from tests.webhook_receiver import Received, Receiver, reply
from tests.webhook_rows import add_delivery, add_subscription, attempt_rows, delivery_rows


def wall() -> datetime:
    return datetime.now(UTC)


def delivered_count(engine: sa.Engine) -> int:
    return sum(r.status == "delivered" for r in delivery_rows(engine))


def test_two_workers_on_postgresql_deliver_each_event_exactly_once(
    postgres_url: str, receiver: Receiver
) -> None:
    def slowish(h: BaseHTTPRequestHandler, _r: Received) -> None:
        time.sleep(0.005)  # a receiver's own work, so the two workers' passes overlap
        reply(h, 200)

    receiver.answer = slowish
    engine = db.connect(postgres_url)
    sub, secret = add_subscription(engine, receiver.url)
    ids = [add_delivery(engine, sub, warning_id=f"w-{n % 7}") for n in range(120)]
    ids += [add_delivery(engine, sub, warning_id=None, event_type="ping") for _ in range(40)]
    settings = Settings(webhook_allow_private=True, webhook_concurrency=6, webhook_poll_s=0.05)
    stop = threading.Event()
    workers, threads = [], []
    for name in ("one", "two"):
        # An engine each, as two processes would have.
        worker = DeliveryWorker(db.open_engine(postgres_url), settings, worker_id=name, clock=wall)
        workers.append(worker)
        threads.append(threading.Thread(target=worker.run, args=(stop,)))
    for t in threads:
        t.start()
    try:
        wait_until(lambda: delivered_count(engine) == len(ids), timeout_s=60, what="every delivery")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    received = receiver.received()
    counts = Counter(r.headers["webhook-id"] for r in received)
    rows = delivery_rows(engine)
    assert sorted(counts) == sorted(r.message_id for r in rows)
    assert set(counts.values()) == {1}, "an event was sent more than once"
    attempts = attempt_rows(engine)
    assert len(attempts) == len(ids)
    assert {a.worker for a in attempts} == {"one", "two"}  # both did share the work
    for r in received[:5]:
        Webhook(secret).verify(r.body, r.headers)
    # Each warning's events arrived in the order they were written, across both workers.
    order = {r.message_id: r.id for r in rows}
    by_warning: dict[str | None, list[int]] = defaultdict(list)
    for r in received:
        w = json.loads(r.body)["data"]["warning_id"]
        by_warning[w].append(order[r.headers["webhook-id"]])
    assert all(seq == sorted(seq) for w, seq in by_warning.items() if w is not None)
    engine.dispose()


@contextmanager
def citywarn_deliver(env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``citywarn deliver`` as a real process; stopped (if still alive) on exit."""
    citywarn = str(Path(sys.executable).parent / "citywarn")
    with log.open("ab") as out:
        proc = subprocess.Popen([citywarn, "deliver"], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_a_worker_killed_mid_flight_and_restarted_delivers_everything(
    postgres_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    release = threading.Event()

    def held_at_first(h: BaseHTTPRequestHandler, _r: Received) -> None:
        release.wait(30)  # the answers are held until the worker has been killed
        reply(h, 200)

    receiver.answer = held_at_first
    engine = db.connect(postgres_url)
    sub, secret = add_subscription(engine, receiver.url)
    ids = [add_delivery(engine, sub, warning_id=f"w-{n % 5}") for n in range(40)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    env |= {
        "CITYWARN_DATABASE_URL": postgres_url,
        "CITYWARN_WEBHOOK_ALLOW_PRIVATE": "true",
        "CITYWARN_WEBHOOK_RETRY_SCHEDULE": "[0, 0.2, 0.2, 0.2]",
        "CITYWARN_WEBHOOK_TIMEOUT_S": "1",  # the lease, and so the wait for a killed worker's rows: 6 s
        "CITYWARN_WEBHOOK_CONCURRENCY": "16",  # one subscription may have 4 in flight (a quarter)
        "CITYWARN_WEBHOOK_POLL_S": "0.1",
    }
    log = tmp_path / "deliver.log"
    with citywarn_deliver(env, tmp_path, log) as proc:
        receiver.wait_for(lambda got: len(got) >= 4, timeout_s=30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    in_flight = {r.headers["webhook-id"] for r in receiver.received()}
    release.set()
    assert delivered_count(engine) == 0  # killed before any answer was recorded

    with citywarn_deliver(env, tmp_path, log) as proc:
        wait_until(
            lambda: delivered_count(engine) == len(ids), timeout_s=90, what=f"every delivery (log: {log})"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, f"citywarn deliver did not stop cleanly on SIGTERM (log: {log})"

    received = receiver.received()
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for r in received:
        Webhook(secret).verify(r.body, r.headers)
        by_id[r.headers["webhook-id"]].add(r.body)
    rows = delivery_rows(engine)
    assert set(by_id) == {r.message_id for r in rows}  # every event arrived
    assert all(len(bodies) == 1 for bodies in by_id.values())  # one event per webhook-id
    counts = Counter(r.headers["webhook-id"] for r in received)
    duplicated = {m for m, n in counts.items() if n > 1}
    assert duplicated <= in_flight  # only what was in flight at the kill came twice, with its id
    assert all(r.attempts == 1 for r in rows)  # the killed attempts were never recorded
    engine.dispose()


def test_citywarn_run_delivers_webhooks_too(receiver: Receiver, tmp_path: Path) -> None:
    state_url = f"sqlite:///{tmp_path}/state.sqlite3"
    engine = db.connect(state_url)
    sub, secret = add_subscription(engine, receiver.url + "/eoc")
    add_delivery(engine, sub, warning_id="w-1", event_type="warning.opened")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    env |= {
        "CITYWARN_DATABASE_URL": state_url,
        "CITYWARN_STORE_URL": f"file://{tmp_path}/store.sqlite3",
        "CITYWARN_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    citywarn = str(Path(sys.executable).parent / "citywarn")
    log = tmp_path / "run.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [citywarn, "run", "--port", str(free_port())],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        [r] = receiver.wait_for(lambda got: len(got) == 1, timeout_s=60)
        assert r.path == "/eoc"
        Webhook(secret).verify(r.body, r.headers)
        wait_until(
            lambda: delivered_count(engine) == 1, timeout_s=10, what=f"the delivery recorded (log: {log})"
        )
    finally:
        proc.terminate()
        assert proc.wait(60) == 0, f"citywarn run did not stop cleanly (log: {log})"
        engine.dispose()
