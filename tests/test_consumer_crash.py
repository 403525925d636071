"""SIGKILL the consumer process mid-stream, start it again: every reading is stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.isolation import as_json, isolated_settings
from ingest.broker import EmbeddedBroker
from ingest.kafka import producer_config
from ingest.producer import ConfirmedProducer
from store.factory import open_store
from tests.factories import CATALOG
from tests.pipeline_harness import store_url_for, wait_until

READINGS_PER_SENSOR = 1500


def stream() -> list[dict[str, object]]:
    """41 sensors x 1500 seconds of quiet readings, ending a minute ago."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    out = []
    for i in range(READINGS_PER_SENSOR):
        ts = (end - timedelta(seconds=READINGS_PER_SENSOR - i)).isoformat().replace("+00:00", "Z")
        for s in CATALOG.sensors:
            kind = CATALOG.kinds[s.kind]
            value = kind.valid_min + (kind.valid_max - kind.valid_min) * 0.01 * (1 + i % 3)
            if kind.thresholds is not None and kind.thresholds.direction == "below":
                value = kind.valid_max * 0.9
            out.append({"sensor_id": s.id, "kind": s.kind, "value": value, "ts": ts})
    return out


def start_consumer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab")
    )


def test_sigkill_mid_stream_then_restart_stores_every_reading_once(
    broker: EmbeddedBroker,
    influx_url: str,
    tmp_path: Path,
) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        store_url=store_url_for("influxdb", influx_url=influx_url, tmp_path=tmp_path),
        batch_max_messages=2000,
    )
    env = {
        **os.environ,
        **{f"CITYWARN_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None},
    }
    messages = stream()
    producer = ConfirmedProducer(producer_config(settings))
    producer.send_all(settings.topic_readings, as_json(messages))
    producer.close()
    store = open_store(settings.store_url)
    log = tmp_path / "consumer.log"

    first = start_consumer(env, log)
    try:
        wait_until(
            lambda: store.count() >= len(messages) // 4,
            timeout_s=90,
            what="the first consumer to store a quarter of the stream",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = store.count()
        assert killed_at < len(messages), "the consumer finished before it could be killed"
    finally:
        if first.poll() is None:
            first.kill()

    second = start_consumer(env, log)
    try:
        wait_until(
            lambda: store.count() >= len(messages),
            timeout_s=120,
            what="the restarted consumer to finish the stream",
        )
        time.sleep(2)  # let any duplicate that would appear, appear
        assert store.count() == len(messages)
        for s in CATALOG.sensors[:5]:
            assert store.count(s.id) == READINGS_PER_SENSOR
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()[-2000:]
        store.close()
