"""The demo day through the real pipeline (broker, embedded store, SQLite state): by its end the gas
leak whose valve closed, or the rain that eased, has resolved on its own (issue 10, what must hold)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.isolation import as_json, isolated_settings
from demo.city import demo_readings
from ingest.broker import EmbeddedBroker
from ingest.kafka import producer_config
from ingest.producer import ConfirmedProducer
from tests.factories import CATALOG
from tests.pipeline_harness import running_pipeline, store_url_for, wait_until

END = datetime.now(UTC).replace(microsecond=0)


def test_on_the_demo_day_a_warning_resolves_on_its_own(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        store_url=store_url_for("embedded", influx_url=None, tmp_path=tmp_path),
    )
    readings = demo_readings(end=END, catalog=CATALOG)
    producer = ConfirmedProducer(producer_config(settings))
    try:
        with running_pipeline(settings) as (svc, worker):
            producer.send_all(settings.topic_readings, as_json(readings))
            wait_until(lambda: worker.stats.consumed >= len(readings), timeout_s=120, what="the demo day")
            warnings = svc.warnings.list(limit=500, scope="grid").items
            resolved = []
            for w in warnings:
                detail = svc.warnings.get(w.id)
                assert detail is not None
                resolved += [(w.hazard, e) for e in detail.events if e.to_status == "resolved"]
    finally:
        producer.close()
    by_citywarn = {hazard for hazard, e in resolved if e.actor == "citywarn" and e.event_time is not None}
    seen = [(w.hazard, w.area, w.status, w.level) for w in warnings]
    assert by_citywarn & {"gas_leak", "flood", "waterlogging"}, seen
    gas = next(e for hazard, e in resolved if hazard == "gas_leak")
    assert gas.note.startswith("released: no evidence in"), gas.note
