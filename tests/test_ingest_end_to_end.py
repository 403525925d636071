"""From Kafka to warnings on the real broker, a real store and a real state database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.isolation import as_json, isolated_settings
from demo.city import demo_readings, demo_scenario
from ingest.broker import EmbeddedBroker
from ingest.kafka import producer_config
from ingest.producer import ConfirmedProducer
from tests.factories import CATALOG
from tests.pipeline_harness import (
    assert_warnings_match_scenario,
    read_topic,
    running_pipeline,
    store_url_for,
    wait_until,
)

END = datetime.now(UTC).replace(microsecond=0)

BAD_MESSAGES: dict[str, tuple[bytes, str]] = {
    "malformed": (b'{"sensor_id": "wl-riverside-01", "kind": "water_le', "body"),
    "wrong_type": (
        json.dumps(
            {"sensor_id": "gas-oldtown-01", "kind": "gas", "value": "high", "ts": END.isoformat()}
        ).encode(),
        "value",
    ),
    "missing_field": (
        json.dumps({"sensor_id": "gas-oldtown-01", "kind": "gas", "ts": END.isoformat()}).encode(),
        "value",
    ),
    "out_of_range": (
        json.dumps(
            {"sensor_id": "gas-oldtown-01", "kind": "gas", "value": 250.0, "ts": END.isoformat()}
        ).encode(),
        "value",
    ),
    "future": (
        json.dumps(
            {
                "sensor_id": "gas-oldtown-01",
                "kind": "gas",
                "value": 1.0,
                "ts": (END + timedelta(days=400)).isoformat(),
            }
        ).encode(),
        "ts",
    ),
}


@pytest.mark.parametrize(("store_kind", "database"), [("influxdb", "postgresql"), ("embedded", "sqlite")])
def test_stream_lands_once_bad_input_is_dead_lettered_and_anomalies_warn(
    store_kind: str,
    database: str,
    broker: EmbeddedBroker,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    influx = request.getfixturevalue("influx_url") if store_kind == "influxdb" else None
    db_url = (
        request.getfixturevalue("postgres_url")
        if database == "postgresql"
        else f"sqlite:///{tmp_path}/state.sqlite3"
    )
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        database_url=db_url,
        store_url=store_url_for(store_kind, influx_url=influx, tmp_path=tmp_path),
    )
    good = demo_readings(end=END, catalog=CATALOG)
    scenario = demo_scenario(end=END, catalog=CATALOG)
    producer = ConfirmedProducer(producer_config(settings))
    request.addfinalizer(producer.close)

    with running_pipeline(settings) as (svc, worker):
        # Bad messages in the middle of the stream: the stream must go on around them.
        half = len(good) // 2
        producer.send_all(settings.topic_readings, as_json(good[:half]))
        producer.send_all(settings.topic_readings, [(b"bad", raw, None) for raw, _ in BAD_MESSAGES.values()])
        producer.send_all(settings.topic_readings, as_json(good[half:]))
        total = len(good) + len(BAD_MESSAGES)
        wait_until(lambda: worker.stats.consumed >= total, timeout_s=90, what="the whole stream")

        # Every good reading is in the store exactly once.
        assert svc.store.count() == len(good)
        per_sensor = {s.id: 0 for s in CATALOG.sensors}
        for m in good:
            per_sensor[m["sensor_id"]] += 1
        for sensor_id in ("gas-oldtown-01", "wl-riverside-01", scenario.anomalies[0].sensor_ids[0]):
            assert svc.store.count(sensor_id) == per_sensor[sensor_id]
        assert worker.stats.dead_lettered == len(BAD_MESSAGES)

        # Every bad one is in the dead-letter topic, byte for byte, with a reason naming the field.
        dead = read_topic(broker.bootstrap, settings.topic_deadletter, len(BAD_MESSAGES))
        assert sorted(m.value() for m in dead) == sorted(raw for raw, _ in BAD_MESSAGES.values())
        for m in dead:
            headers = dict(m.headers())
            expected_field = next(f for raw, f in BAD_MESSAGES.values() if raw == m.value())
            assert headers["reason"].decode().startswith(expected_field + ":")
            assert headers["source"].decode().startswith(settings.topic_readings + "/")

        # Warnings exist for the injected anomalies, and for nothing else.
        assert_warnings_match_scenario(svc, scenario)
        warnings = svc.warnings.list(limit=500, scope="grid").items  # not the district and city roll-ups
        gas = next(w for w in warnings if w.hazard == "gas_leak")
        assert gas.level == "red" and gas.area == "g-oldtown-05"
        detail = svc.warnings.get(gas.id)
        assert detail is not None and {e.sensor_id for e in detail.evidence} == {"gas-oldtown-01"}
