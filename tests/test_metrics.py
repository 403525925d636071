"""GET /metrics on a real app with ingest running on the real broker: the counters move by what flowed.

The default registry is shared by every app of the test process, so counters
are compared as differences between two scrapes around the traffic.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.auth.roles import Role
from app.main import create_app
from bench.isolation import as_json, isolated_settings
from config.settings import Settings
from demo.city import demo_readings
from ingest.broker import EmbeddedBroker
from ingest.kafka import producer_config
from ingest.producer import ConfirmedProducer
from tests.auth_helpers import bearer, new_key
from tests.factories import CATALOG, signal
from tests.pipeline_harness import wait_until

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
    wait_until(
        lambda: (
            total(scrape(client), "citywarn_open_warnings") > 0
            and total(
                scrape(client),
                "citywarn_consumer_lag_messages",
                stream="readings",
                topic=settings.topic_readings,
            )
            == 0
            and len([k for k in scrape(client) if k[0] == "citywarn_consumer_lag_messages"]) >= 3
            and value(scrape(client), "citywarn_checkpoint_age_seconds") > 0
        ),
        timeout_s=30,
        what="open warnings, the lag measured on every partition at zero, and a checkpoint",
    )
    after = scrape(client)

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

    # The gauge says what the state database holds: the same open warnings, by hazard, level and status.
    svc = client.app.state.services  # type: ignore[attr-defined]
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

    partitions = {
        dict(ls)["partition"]
        for (n, ls), _ in after.items()
        if n == "citywarn_consumer_lag_messages" and dict(ls)["stream"] == "readings"
    }
    assert partitions == {"0", "1", "2"}
    assert 0 < value(after, "citywarn_checkpoint_age_seconds") < 60


def test_requests_are_counted_by_route_template_never_by_raw_path(serving: TestClient) -> None:
    client = serving
    svc = client.app.state.services  # type: ignore[attr-defined]
    [wid] = svc.warnings.apply_signals([signal(ts=datetime.now(UTC))], now=datetime.now(UTC), actor="t")
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
