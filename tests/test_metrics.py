"""GET /metrics on a real app with ingest running on the real broker: the counters move by what flowed.

The default registry is shared by every app of the test process, so counters
are compared as differences between two scrapes around the traffic.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from alerts import db
from alerts.subscription_store import SubscriptionStore
from alerts.subscriptions import Filters
from app.auth.roles import Role
from app.http_metrics import HttpMetrics
from app.main import create_app
from app.workers import build_ingest_worker, delivery_worker
from bench.isolation import as_json, isolated_settings
from config.settings import Settings
from demo.city import demo_readings
from ingest.broker import EmbeddedBroker, free_port
from ingest.kafka import producer_config
from ingest.producer import ConfirmedProducer
from tests.auth_helpers import bearer, new_key
from tests.factories import CATALOG
from tests.factories import signal as a_signal
from tests.pipeline_harness import demo_run, wait_until
from tests.webhook_receiver import Receiver, reply
from tests.webhook_rows import add_delivery, add_subscription

END = datetime.now(UTC).replace(microsecond=0)

# Each refused reading and the field validation names first: the label it is counted under.
BAD = [
    (b'{"sensor_id": "wl-riverside-01", "kind": "water_le', "body"),
    (json.dumps({"sensor_id": "gas-oldtown-01", "kind": "gas", "ts": END.isoformat()}).encode(), "value"),
    (
        json.dumps(
            {"sensor_id": "gas-oldtown-01", "kind": "gas", "value": 250.0, "ts": END.isoformat()}
        ).encode(),
        "value",
    ),
    (
        json.dumps(
            {"sensor_id": "no-such-sensor", "kind": "gas", "value": 1.0, "ts": END.isoformat()}
        ).encode(),
        "sensor_id",
    ),
    (
        json.dumps(
            {
                "sensor_id": "gas-oldtown-01",
                "kind": "gas",
                "value": 1.0,
                "ts": (END + timedelta(days=9)).isoformat(),
            }
        ).encode(),
        "ts",
    ),
]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def readings_lag(samples: Samples) -> dict[str, float]:
    """The readings consumer's lag by partition; absent while the consumer has not measured it."""
    return {
        dict(ls)["partition"]: v
        for (n, ls), v in samples.items()
        if n == "citywarn_consumer_lag_messages" and dict(ls)["stream"] == "readings"
    }


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap,
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        store_url=f"file://{tmp_path}/store.sqlite3",
        checkpoint_interval_s=1.0,
    )


@pytest.fixture
def running(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, run_ingest=True)) as client:
        yield client


@pytest.fixture
def serving(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def test_counters_move_by_what_flowed_and_the_gauges_show_the_state(
    running: TestClient, settings: Settings
) -> None:
    client = running
    good = demo_readings(end=END, catalog=CATALOG)
    before = scrape(client)
    producer = ConfirmedProducer(producer_config(settings))
    try:
        half = len(good) // 2
        producer.send_all(settings.topic_readings, as_json(good[:half]))
        producer.send_all(settings.topic_readings, [(b"bad", raw, None) for raw, _ in BAD])
        producer.send_all(settings.topic_readings, as_json(good[half:]))
    finally:
        producer.close()
    worker = client.app.state.consumers["readings"]  # type: ignore[attr-defined]
    sent = len(good) + len(BAD)
    wait_until(lambda: worker.stats.consumed >= sent, timeout_s=120, what="the whole stream")
    after: Samples = {}

    def settled() -> bool:
        nonlocal after
        after = scrape(client)
        return (
            total(after, "citywarn_open_warnings") > 0
            and readings_lag(after) == {"0": 0, "1": 0, "2": 0}
            and value(after, "citywarn_checkpoint_age_seconds") > 0
        )

    wait_until(
        settled, timeout_s=30, what="open warnings, the lag measured on every partition at 0, a checkpoint"
    )

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("citywarn_ingest_consumed_total", stream="readings") == sent
    assert delta("citywarn_ingest_stored_total", stream="readings") == len(good)
    dead = {
        field: delta("citywarn_ingest_dead_lettered_total", stream="readings", reason="invalid", field=field)
        for field in {f for _, f in BAD}
    }
    assert dead == dict(Counter(f for _, f in BAD))
    assert delta("citywarn_ingest_batch_duration_seconds_count", stream="readings") == worker.stats.batches
    assert delta("citywarn_ingest_batch_duration_seconds_sum", stream="readings") > 0
    assert delta("citywarn_store_write_duration_seconds_count", stream="readings") >= 1
    svc = client.app.state.services  # type: ignore[attr-defined]
    by_district = Counter(svc.areas.parent_of(m["area"]) or m["area"] for m in good)
    written = {d: delta("citywarn_readings_stored_by_district_total", district=d) for d in by_district}
    if worker.stats.rewinds == worker.stats.abandoned == 0:
        assert written == by_district
    else:  # a batch written again after a rewind is counted again
        assert all(written[d] >= n for d, n in by_district.items())
    # Every district has its series from the start, so a district that never reports can be alerted on.
    assert {
        dict(ls)["district"] for n, ls in before if n == "citywarn_readings_stored_by_district_total"
    } >= {d.id for d in svc.areas.districts()}

    # The gauge says what the state database holds: the same open warnings, by hazard, level and status.
    open_now = Counter(
        (w.hazard, w.level, w.status)
        for w in svc.warnings.list(limit=500).items
        if w.status in ("pending", "active", "acknowledged")
    )
    gauge = {
        (dict(ls)["hazard"], dict(ls)["level"], dict(ls)["status"]): v
        for (n, ls), v in after.items()
        if n == "citywarn_open_warnings"
    }
    assert gauge == open_now
    # Every opened warning came from signals, counted by hazard.
    for hazard in {h for h, _, _ in open_now}:
        assert total(after, "citywarn_signals_total", hazard=hazard) > total(
            before, "citywarn_signals_total", hazard=hazard
        )

    assert 0 < value(after, "citywarn_checkpoint_age_seconds") < 60


def test_requests_are_counted_by_route_template_never_by_raw_path(serving: TestClient) -> None:
    client = serving
    svc = client.app.state.services  # type: ignore[attr-defined]
    [wid] = svc.warnings.apply_signals([a_signal(ts=datetime.now(UTC))], now=datetime.now(UTC), actor="t")
    headers = bearer(new_key(client.app, Role.ADMIN))  # type: ignore[arg-type]
    before = scrape(client)
    assert client.get(f"/v1/warnings/{wid}", headers=headers).status_code == 200
    assert client.get(f"/v1/warnings/{wid}", headers=headers).status_code == 200
    assert client.get("/v1/warnings/no-such-warning", headers=headers).status_code == 404
    assert client.get("/healthz").status_code == 200
    for n in range(3):
        assert client.get(f"/random/{n}").status_code == 404
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    template = "/v1/warnings/{warning_id}"
    assert delta("citywarn_http_requests_total", method="GET", route=template, status="200") == 2
    assert delta("citywarn_http_requests_total", method="GET", route=template, status="404") == 1
    assert delta("citywarn_http_requests_total", method="GET", route="/healthz", status="200") == 1
    assert delta("citywarn_http_requests_total", method="GET", route="unmatched", status="404") == 3
    assert delta("citywarn_http_request_duration_seconds_count", method="GET", route=template) == 3
    assert not any(
        wid in dict(ls).get("route", "") or "/random" in dict(ls).get("route", "") for _, ls in after
    )


def test_an_event_stream_is_timed_to_its_headers_and_other_answers_to_their_end() -> None:
    async def slow_body(media_type: str) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b": hello\n\n"
            await asyncio.sleep(0.5)
            yield b": bye\n\n"

        return StreamingResponse(chunks(), media_type=media_type)

    async def events(_request: Request) -> Response:
        return await slow_body("text/event-stream; charset=utf-8")

    async def download(_request: Request) -> Response:
        return await slow_body("text/plain")

    def registry() -> Samples:
        return {(s.name, frozenset(s.labels.items())): s.value for f in REGISTRY.collect() for s in f.samples}

    app = Starlette(routes=[Route("/t/events", events), Route("/t/download", download)])
    with TestClient(HttpMetrics(app)) as client:
        before = registry()
        for path in ("/t/events", "/t/download"):
            assert client.get(path).status_code == 200
    after = registry()

    def seconds(route: str) -> float:
        name = "citywarn_http_request_duration_seconds_sum"
        return value(after, name, method="GET", route=route) - value(before, name, method="GET", route=route)

    assert seconds("/t/events") < 0.25  # the 0.5 s the stream stayed open is not its answer time
    assert seconds("/t/download") >= 0.5


# Every family the issue names; a family with no sample yet (no delivery attempted) still says its name.
FAMILIES = {
    "citywarn_ingest_consumed",
    "citywarn_ingest_stored",
    "citywarn_ingest_dead_lettered",
    "citywarn_readings_stored_by_district",
    "citywarn_ingest_batch_duration_seconds",
    "citywarn_store_write_duration_seconds",
    "citywarn_consumer_lag_messages",
    "citywarn_signals",
    "citywarn_series_restored",
    "citywarn_restore_seconds",
    "citywarn_open_warnings",
    "citywarn_checkpoint_age_seconds",
    "citywarn_webhook_deliveries",
    "citywarn_http_requests",
    "citywarn_http_request_duration_seconds",
}


def test_run_demo_exposes_every_family_and_its_counters_move(tmp_path: Path) -> None:
    """`citywarn run --demo` as the README starts it: scraped twice while the demo's readings flow."""

    def families(base: str) -> dict[str, list[Sample]]:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        return {f.name: f.samples for f in text_string_to_metric_families(text)}

    def stored(fams: dict[str, list[Sample]]) -> float:
        return sum(
            s.value for s in fams.get("citywarn_ingest_stored", []) if s.labels["stream"] == "readings"
        )

    with demo_run(tmp_path) as run:
        first: dict[str, list[Sample]] = {}

        def flowing() -> bool:
            nonlocal first
            run.assert_alive()
            try:
                first = families(run.base)
            except httpx.HTTPError:
                return False
            return stored(first) > 0 and bool(first.get("citywarn_open_warnings")) and set(first) >= FAMILIES

        wait_until(flowing, timeout_s=120, what=f"readings stored, a warning open, and each of {FAMILIES}")
        second: dict[str, list[Sample]] = {}

        def moved() -> bool:
            nonlocal second
            second = families(run.base)
            lagging = {s.labels["stream"] for s in second["citywarn_consumer_lag_messages"]}
            return stored(second) > stored(first) and lagging == {"readings", "reports"}

        wait_until(moved, timeout_s=60, what="the stored counter to move, and both consumers' lag")
        consumed = sum(
            s.value for s in second["citywarn_ingest_consumed"] if s.labels["stream"] == "readings"
        )
        assert consumed >= stored(second) > stored(first)
        assert any(
            s.name.endswith("_count") and s.value > 0
            for s in second["citywarn_ingest_batch_duration_seconds"]
        )


def test_the_readings_workers_restores_are_counted_in_series_and_seconds(serving: TestClient) -> None:
    """What the readings worker's sink tells of a chunk of restores moves the two counters."""
    worker = build_ingest_worker(serving.app.state.services)  # type: ignore[attr-defined]
    try:
        before = scrape(serving)
        worker.sink.on_restored(5, 0.25)  # type: ignore[attr-defined]
        after = scrape(serving)
    finally:
        worker._consumer.close()

    def moved(name: str) -> float:
        return value(after, name) - value(before, name)

    assert moved("citywarn_series_restored_total") == 5
    assert moved("citywarn_restore_seconds_total") == pytest.approx(0.25)


def test_webhook_deliveries_are_counted_by_outcome(settings: Settings) -> None:
    """The app's delivery worker posts pings to loopback receivers: one that takes them, one that fails."""
    fast = settings.model_copy(
        update={"webhook_allow_private": True, "webhook_poll_s": 0.05, "webhook_retry_schedule": [0.0, 60.0]}
    )
    taker, failing = Receiver(), Receiver()
    failing.answer = lambda handler, _received: reply(handler, 500)
    app = create_app(fast, extra_workers={"webhook-delivery": delivery_worker})
    try:
        with TestClient(app) as client:
            subs = SubscriptionStore(client.app.state.services.engine)  # type: ignore[attr-defined]
            before = scrape(client)
            for receiver, pings in ((taker, 2), (failing, 1)):
                sub = subs.create(
                    url=f"{receiver.url}/hook",
                    description="",
                    filters=Filters(),
                    owner="t",
                    owner_label="t",
                    now=datetime.now(UTC),
                )
                for _ in range(pings):
                    subs.ping(sub.id, actor="t", now=datetime.now(UTC))
            taker.wait_for(lambda got: len(got) == 2)
            failing.wait_for(lambda got: len(got) == 1)

            def delta(outcome: str) -> float:
                now = scrape(client)
                name = "citywarn_webhook_deliveries_total"
                return value(now, name, outcome=outcome) - value(before, name, outcome=outcome)

            wait_until(lambda: delta("delivered") == 2 and delta("retry") == 1, timeout_s=10, what="outcomes")
            assert delta("failed") == delta("overtaken") == 0
    finally:
        taker.close()
        failing.close()


def test_open_warnings_leave_drills_out(serving: TestClient) -> None:
    client = serving
    svc = client.app.state.services  # type: ignore[attr-defined]
    now = datetime.now(UTC)

    def gauge() -> dict[frozenset[tuple[str, str]], float]:
        return {ls: v for (n, ls), v in scrape(client).items() if n == "citywarn_open_warnings"}

    [wid] = svc.warnings.apply_signals([a_signal(level="orange", ts=now)], now=now, actor="t")
    opened = svc.warnings.get(wid)
    assert opened is not None
    real = gauge()
    assert real == {frozenset({"hazard": "flood", "level": "orange", "status": opened.status}.items()): 1}
    drill = replace(a_signal(level="red", area="g-riverside-02", ts=now), exercise=True, drill_id="drill-1")
    [drilled] = svc.warnings.apply_signals([drill], now=now, actor="t")
    detail = svc.warnings.get(drilled)
    assert detail is not None and detail.exercise and detail.status in ("pending", "active")
    assert gauge() == real


def test_citywarn_deliver_serves_its_own_metrics_on_the_port_asked(tmp_path: Path) -> None:
    """A process without the API still shows what it did: here, a delivery worker's outcomes."""
    receiver = Receiver()
    state = f"sqlite:///{tmp_path}/state.sqlite3"
    engine = db.connect(state)
    sub, _secret = add_subscription(engine, receiver.url)
    for n in range(3):
        add_delivery(engine, sub, warning_id=f"w-{n}")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    env |= {"CITYWARN_DATABASE_URL": state, "CITYWARN_WEBHOOK_ALLOW_PRIVATE": "true"}
    citywarn = str(Path(sys.executable).parent / "citywarn")
    with (tmp_path / "deliver.log").open("wb") as out:
        proc = subprocess.Popen(
            [citywarn, "deliver", "--metrics-port", str(port)], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    try:
        wait_until(lambda: len(receiver.received()) == 3, timeout_s=60, what="three deliveries")

        def delivered() -> float:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                return -1
            samples = {
                (s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            return total(samples, "citywarn_webhook_deliveries_total", outcome="delivered")

        wait_until(lambda: delivered() == 3, timeout_s=30, what="the delivered count on /metrics")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "deliver.log").read_text()
        receiver.close()
        engine.dispose()


def test_citywarn_ingest_serves_its_counters_and_lag_on_the_port_asked(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    )
    sent = [m for m in demo_readings(end=END, catalog=CATALOG) if m["sensor_id"] == "gas-oldtown-01"][:100]
    producer = ConfirmedProducer(producer_config(settings))
    producer.send_all(settings.topic_readings, as_json(sent))
    producer.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    env |= {f"CITYWARN_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}
    with (tmp_path / "ingest.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ingest", "--metrics-port", str(port)],
            env=env,
            stdout=out,
            stderr=out,
        )

    def scraped() -> Samples:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return {}
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    try:
        wait_until(
            lambda: total(scraped(), "citywarn_ingest_stored_total", stream="readings") == len(sent),
            timeout_s=90,
            what="the readings stored, counted on the ingest process's /metrics",
        )
        wait_until(lambda: readings_lag(scraped()) != {}, timeout_s=30, what="the lag per partition")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "ingest.log").read_text()[-2000:]
