"""HTTP ingest: only known sensors, only JSON bodies, and a 202 that says how safe the data is."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from bench.isolation import isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.http import BATCH_PARTLY_REFUSED
from ingest.kafka import producer_config
from ingest.producer import ConfirmedProducer
from tests.auth_helpers import admin_client
from tests.factories import gas_reading as reading
from tests.pipeline_harness import read_topic, running_pipeline, wait_until

NOW = datetime.now(UTC).replace(microsecond=0)


def settings_for(broker: EmbeddedBroker, tmp_path: Path, **extra: object) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        **extra,
    )


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return settings_for(broker, tmp_path)


def report(**overrides: object) -> dict[str, object]:
    return {
        "report_id": "r-1",
        "source": "app",
        "category": "waterlogging",
        "text": "积水很深",
        "ts": NOW.isoformat(),
        "area": "g-riverside-05",
        **overrides,
    }


def test_a_made_up_sensor_is_refused_by_name_and_the_rest_is_accepted(
    client: TestClient, settings: Settings
) -> None:
    # The attack that opened a red flood warning: a made-up gauge far above the road-depth red line.
    fake = reading(sensor_id="wl-fake-99", kind="water_level", unit="m", value=3.0, area="g-riverside-01")
    batch = [reading(), fake, reading(value=2.0, ts=(NOW - timedelta(minutes=1)).isoformat())]
    resp = client.post("/v1/readings", json={"readings": batch})
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert (body["type"], body["status"], body["instance"]) == (BATCH_PARTLY_REFUSED, 422, "/v1/readings")
    assert body["accepted"] == 2 and body["durable"] is True
    [refused] = body["rejected"]
    assert refused["index"] == 1
    [error] = [e for e in refused["errors"] if e["field"] == "body.readings[1].sensor_id"]
    assert "wl-fake-99" in (error["value"] or "") and "catalog" in error["reason"]
    msgs = read_topic(settings.kafka_bootstrap, settings.topic_readings, 2)
    assert sorted(m.key() for m in msgs) == [b"g-oldtown-05"] * 2  # gas-oldtown-01's area


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"kind": "water_level", "unit": "m", "value": 1.0}, "body.readings[0].kind"),
        ({"unit": "ppm"}, "body.readings[0].unit"),
        ({"area": "g-riverside-01"}, "body.readings[0].area"),
    ],
)
def test_a_reading_contradicting_its_sensors_catalog_entry_is_refused(
    client: TestClient, bad: dict[str, object], field: str
) -> None:
    resp = client.post("/v1/readings", json={"readings": [reading(**bad)]})
    assert resp.status_code == 422
    assert resp.json()["accepted"] == 0
    assert field in {e["field"] for e in resp.json()["rejected"][0]["errors"]}


@pytest.mark.parametrize("path", ["/v1/readings", "/v1/reports"])
def test_only_json_bodies_are_taken_so_a_web_page_cannot_post_readings(
    client: TestClient, settings: Settings, path: str
) -> None:
    field = path.rsplit("/", 1)[1]
    body = json.dumps({field: [reading() if field == "readings" else report()]}).encode()
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/jsonp",
        None,
    ):
        headers = {"content-type": content_type} if content_type else {}
        resp = client.post(path, content=body, headers=headers)
        assert resp.status_code == 415, content_type
        assert resp.headers["content-type"] == "application/problem+json"
        assert "application/json" in resp.json()["detail"]
    topic = settings.topic_readings if field == "readings" else settings.topic_reports
    assert read_topic(settings.kafka_bootstrap, topic, 0, timeout_s=1) == []


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (b'{"readings": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "body.readings[0]", "nested deeper"),
        (b'{"readings": [{"value": ' + b"9" * 5000 + b"}]}", "body.readings[0].value", "number literal"),
    ],
)
def test_bodies_past_the_parser_limits_are_a_422_naming_the_field(
    client: TestClient, settings: Settings, body: bytes, field: str, reason: str
) -> None:
    resp = client.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    [problem] = resp.json()["errors"]
    assert problem["field"].startswith(field) and reason in problem["reason"]
    assert read_topic(settings.kafka_bootstrap, settings.topic_readings, 0, timeout_s=1) == []


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ("[READING]", "body", 'expected an object {"readings": [...]}, got a JSON array'),
        ("5", "body", 'expected an object {"readings": [...]}, got a number'),
        ('{"reading": [READING]}', "body.readings", "missing: expected a non-empty list"),
        ('{"readings": []}', "body.readings", "expected a non-empty list, got an empty list"),
        ('{"readings": READING}', "body.readings", "expected a non-empty list, got a JSON object"),
        ('{"readings": null}', "body.readings", "expected a non-empty list, got null"),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_422_saying_what_was_sent(
    client: TestClient, settings: Settings, body: str, field: str, reason: str
) -> None:
    content = body.replace("READING", json.dumps(reading())).encode()
    resp = client.post("/v1/readings", content=content, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    [problem] = resp.json()["errors"]
    assert (problem["field"], problem["reason"]) == (field, reason)
    assert read_topic(settings.kafka_bootstrap, settings.topic_readings, 0, timeout_s=1) == []


def test_nan_or_u0000_in_one_item_refuses_only_that_item(client: TestClient, settings: Settings) -> None:
    good = json.dumps(reading()).encode()
    items = [
        good,
        b'{"sensor_id": "gas\\u0000", "kind": "gas", "value": 1, "ts": "%s"}' % NOW.isoformat().encode(),
    ]
    items.append(json.dumps(reading(value=2.0)).encode().replace(b"2.0", b"NaN"))
    body = b'{"readings": [' + b", ".join(items) + b"]}"
    resp = client.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["accepted"] == 1
    fields = {e["field"] for r in problem["rejected"] for e in r["errors"]}
    assert fields == {"body.readings[1].sensor_id", "body.readings[2].value"}
    assert len(read_topic(settings.kafka_bootstrap, settings.topic_readings, 1)) == 1


@pytest.mark.parametrize("body", [b'{"readings": [', b"\xff\xfe", b'{"readings": [1,]}'])
def test_a_body_that_is_not_json_is_a_400(client: TestClient, body: bytes) -> None:
    resp = client.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["status"] == 400 and ("JSON" in problem["detail"] or "UTF-8" in problem["detail"])


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=UTF-8"])
def test_json_with_or_without_a_utf8_charset_is_taken(client: TestClient, content_type: str) -> None:
    resp = client.post(
        "/v1/readings",
        content=json.dumps({"readings": [reading()]}).encode(),
        headers={"content-type": content_type},
    )
    assert resp.status_code == 202


def test_reports_with_control_characters_are_refused_naming_the_field(
    client: TestClient, settings: Settings
) -> None:
    controls = ["\x00", "\x07", "\x1b", "\r", "\x7f", "\x85"]
    body = {
        "reports": [
            report(report_id="kept-1", text="第一行\n\t第二行"),
            *(report(report_id=f"bad-{i}", text=f"积水{c}很深") for i, c in enumerate(controls)),
            report(report_id="kept-2"),
        ]
    }
    resp = client.post("/v1/reports", json=body)
    assert resp.status_code == 422
    assert resp.json()["accepted"] == 2
    refused = resp.json()["rejected"]
    assert [r["index"] for r in refused] == list(range(1, len(controls) + 1))
    for r, char in zip(refused, controls, strict=True):
        [error] = r["errors"]
        assert (
            error["field"] == f"body.reports[{r['index']}].text" and f"U+{ord(char):04X}" in error["reason"]
        )
    assert len(read_topic(settings.kafka_bootstrap, settings.topic_reports, 2)) == 2


@pytest.mark.parametrize(
    ("durable", "detail"),
    [
        (False, "queued on the embedded broker (memory only): not yet stored; a crash before the consumer"),
        (True, "queued on a replicated broker: will be stored"),
    ],
)
def test_the_202_says_whether_the_readings_are_durable_yet(
    broker: EmbeddedBroker, tmp_path: Path, durable: bool, detail: str
) -> None:
    settings = settings_for(broker, tmp_path, broker_durable=durable)
    with admin_client(create_app(settings)) as client:
        for path, item in (("/v1/readings", reading()), ("/v1/reports", report())):
            field = path.rsplit("/", 1)[1]
            resp = client.post(path, json={field: [item]})
            assert resp.status_code == 202
            body = resp.json()
            assert (body["accepted"], body["rejected"]) == (1, [])
            assert (body["status"], body["durable"]) == ("queued", durable)
            assert body["detail"].startswith(detail)


def test_the_openapi_schema_documents_every_ingest_answer(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path, item in (("/v1/readings", "Reading"), ("/v1/reports", "Report")):
        post = spec["paths"][path]["post"]
        assert set(post["responses"]) >= {"202", "400", "401", "403", "413", "415", "422", "429", "500"}
        assert "503" in post["responses"]
        accepted = post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
        props = schemas[accepted.rsplit("/", 1)[1]]["properties"]
        assert {"accepted", "rejected", "status", "durable", "detail"} <= set(props)
        for code in ("400", "415", "503"):
            assert post["responses"][code]["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }
        refusal = post["responses"]["422"]["content"]["application/problem+json"]["schema"]["allOf"]
        assert {"$ref": "#/components/schemas/BatchRefusal"} in refusal
        body = post["requestBody"]["content"]["application/json"]["schema"]
        field = path.rsplit("/", 1)[1]
        assert body["required"] == [field] and body["properties"][field]["minItems"] == 1
        assert body["properties"][field]["items"] == {"$ref": f"#/components/schemas/{item}"}
        assert "ts" in schemas[item]["required"]


def test_a_made_up_sensor_on_kafka_is_dead_lettered_with_the_reason(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = settings_for(broker, tmp_path)
    fake = json.dumps(reading(sensor_id="wl-fake-99", kind="water_level", unit="m", value=3.0)).encode()
    good = json.dumps(reading()).encode()
    producer = ConfirmedProducer(producer_config(settings))
    try:
        with running_pipeline(settings) as (svc, worker):
            producer.send_all(settings.topic_readings, [(b"wl-fake-99", fake, None), (b"g", good, None)])
            wait_until(lambda: worker.stats.consumed >= 2, timeout_s=30, what="both messages")
            assert svc.store.count() == 1 and svc.store.count("wl-fake-99") == 0
    finally:
        producer.close()
    [dead] = read_topic(settings.kafka_bootstrap, settings.topic_deadletter, 1)
    assert dead.value() == fake
    reason = dict(dead.headers())["reason"].decode()
    assert reason.startswith("sensor_id:") and "wl-fake-99" in reason
