"""The REST API over a running app: ingest, warnings, sensors, series, health, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.isolation import isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from models.signals import Signal
from store.schemas import Point
from tests.factories import gas_reading as reading
from tests.pipeline_harness import read_topic

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        max_body_bytes=64 * 1024,
        max_batch_items=100,
    )


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka": True, "store": True, "database": True}


def test_post_readings_produces_valid_batch_to_kafka(client: TestClient, settings: Settings) -> None:
    batch = [reading(value=1.0 + i, ts=(NOW - timedelta(minutes=i)).isoformat()) for i in range(3)]
    resp = client.post("/v1/readings", json={"readings": batch})
    assert resp.status_code == 202
    assert (resp.json()["accepted"], resp.json()["rejected"], resp.json()["status"]) == (3, [], "queued")
    msgs = read_topic(settings.kafka_bootstrap, settings.topic_readings, 3)
    assert sorted(m.key() for m in msgs) == [b"g-oldtown-05"] * 3  # gas-oldtown-01's area
    assert len(msgs) == 3


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"value": "high"}, "body.readings[1].value"),
        ({"value": None}, "body.readings[1].value"),
        ({"value": 250.0}, "body.readings[1].value"),
        ({"kind": "lava"}, "body.readings[1].kind"),
        ({"unit": "ppm"}, "body.readings[1].unit"),
        ({"ts": (NOW + timedelta(days=2)).isoformat()}, "body.readings[1].ts"),
        ({"ts": "2026-11-29T08:00:00"}, "body.readings[1].ts"),
        ({"area": "atlantis"}, "body.readings[1].area"),
        ({"sensor_id": ""}, "body.readings[1].sensor_id"),
    ],
)
def test_a_bad_item_gets_422_naming_its_field_and_only_it_is_refused(
    client: TestClient,
    settings: Settings,
    bad: dict[str, object],
    field: str,
) -> None:
    batch = [reading(), reading(**bad), reading(value=2.0, ts=(NOW - timedelta(minutes=1)).isoformat())]
    resp = client.post("/v1/readings", json={"readings": batch})
    assert resp.status_code == 422
    body = resp.json()
    assert body["accepted"] == 2
    [rejected] = body["rejected"]
    assert rejected["index"] == 1
    assert field in {e["field"] for e in rejected["errors"]}
    # The refused item never reached Kafka; the two good ones did.
    msgs = read_topic(settings.kafka_bootstrap, settings.topic_readings, 2)
    assert len(msgs) == 2


def test_missing_field_and_nan_are_refused(client: TestClient) -> None:
    no_value = reading()
    del no_value["value"]
    resp = client.post(
        "/v1/readings",
        content=b'{"readings": [%s]}'
        % (
            b'{"sensor_id": "gas-oldtown-01", "kind": "gas", "value": NaN, "ts": "%s"}'
            % NOW.isoformat().encode()
        ),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["rejected"][0]["errors"][0]["field"] == "body.readings[0].value"
    resp = client.post("/v1/readings", json={"readings": [no_value]})
    assert resp.json()["rejected"][0]["errors"][0]["field"] == "body.readings[0].value"


def test_malformed_or_oversized_bodies_are_refused(client: TestClient) -> None:
    not_json = client.post("/v1/readings", content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert client.post("/v1/readings", json={"readings": []}).status_code == 422
    assert client.post("/v1/readings", json={"readings": [reading()] * 101}).status_code == 422
    big = b'{"readings": [' + b"1," * 40_000 + b"1]}"
    resp = client.post("/v1/readings", content=big)
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"
    assert (resp.json()["status"], resp.json()["instance"]) == (413, "/v1/readings")


def test_sensors_and_series_come_from_catalog_and_store(client: TestClient) -> None:
    sensors = client.get("/v1/sensors").json()
    assert len(sensors) == 41
    gas = client.get("/v1/sensors", params={"kind": "gas"}).json()
    assert {s["id"] for s in gas} >= {"gas-oldtown-01"} and all(s["unit"] == "%LEL" for s in gas)
    store = client.app.state.services.store  # type: ignore[attr-defined]
    t0 = NOW - timedelta(hours=1)
    store.write(
        [
            Point(
                "gas-oldtown-01",
                "gas",
                "g-oldtown-05",
                int((t0 + timedelta(minutes=i)).timestamp()) * 10**9,
                1.0 + i,
            )
            for i in range(10)
        ]
    )
    resp = client.get(
        "/v1/sensors/gas-oldtown-01/series",
        params={"start": t0.isoformat(), "end": (t0 + timedelta(minutes=5)).isoformat()},
    )
    assert resp.status_code == 200
    assert [p["value"] for p in resp.json()["points"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert client.get("/v1/sensors/nope/series").status_code == 404
    too_long = {"start": (NOW - timedelta(days=40)).isoformat(), "end": NOW.isoformat()}
    served = client.get("/v1/sensors/gas-oldtown-01/series", params=too_long).json()
    assert served["truncated"] is True
    assert datetime.fromisoformat(served["end"]) == NOW - timedelta(days=9)


def test_warnings_list_detail_and_transitions(client: TestClient) -> None:
    svc = client.app.state.services  # type: ignore[attr-defined]
    ts = int(NOW.timestamp()) * 10**9
    [wid] = svc.warnings.apply_signals(
        [
            Signal(
                sensor_id="gas-oldtown-01",
                kind="gas",
                area="g-oldtown-05",
                hazard="gas_leak",
                ts_ns=ts,
                value=61.0,
                score=1.0,
                detector="test",
                level="red",
                evidence={"warning_line": 50.0},
            )
        ],
        now=NOW,
        actor="detector:test",
    )
    # Grid warnings: the red one also raises its district's and city's roll-ups (alerts.rollup).
    page = client.get("/v1/warnings", params={"status": "active", "level": "red", "scope": "grid"}).json()
    assert page["total"] == 1 and page["items"][0]["id"] == wid
    assert client.get("/v1/warnings", params={"area": "g-riverside-01"}).json()["total"] == 0
    assert client.get("/v1/warnings", params={"level": "purple"}).status_code == 422
    assert client.get("/v1/warnings", params={"limit": 10_000}).status_code == 422
    detail = client.get(f"/v1/warnings/{wid}").json()
    assert detail["evidence"][0]["value"] == 61.0
    assert detail["severity"] == "Extreme" and detail["recommendations"]
    # The actor is the key (the client fixture's admin key), never the body's say.
    assert (
        client.post(f"/v1/warnings/{wid}/acknowledge", json={"actor": "duty officer wang"}).status_code == 422
    )
    ack = client.post(f"/v1/warnings/{wid}/acknowledge", json={"note": "crew sent"})
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    assert (ack.json()["events"][-1]["actor"], ack.json()["events"][-1]["actor_role"]) == (
        "test admin",
        "admin",
    )
    assert client.post(f"/v1/warnings/{wid}/acknowledge").status_code == 409
    assert client.get("/v1/warnings/nope").status_code == 404
    assert client.get("/docs").status_code == 200
