"""`citywarn run --demo` raises no sensor_fault for its healthy sensors, during its day or after it.

The demo's day and then its live stream go through the real scoring engine,
fault desk and state database; the silence check runs every half minute of
a clock that follows the replay. The last step stops the stream, to show the
same check would have called every sensor silent.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts import db
from alerts.checkpoints import CheckpointRepository
from alerts.repository import SqlWarningRepository
from alerts.sensor_faults import SensorFaultDesk
from alerts.service import WarningService
from alerts.sinks import DetectionSink
from app.silence import SilenceWatch
from bench.isolation import isolated_settings
from config.settings import Settings
from config.timeutil import to_ns
from demo.city import demo_live_readings, demo_readings
from demo.live import STEP_S, stream_live
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics, producer_config
from ingest.producer import ConfirmedProducer
from models.engine import ScoringEngine
from store.schemas import Point
from tests.factories import CATALOG, PLAYBOOKS
from tests.pipeline_harness import read_topic

END = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)  # 20:00 local, as `citywarn run --demo` might start


def as_points(readings: list[dict[str, Any]]) -> list[Point]:
    return [
        Point(
            str(r["sensor_id"]),
            str(r["kind"]),
            str(r["area"]),
            to_ns(datetime.fromisoformat(str(r["ts"]))),
            float(r["value"]),
        )
        for r in readings
    ]


def test_the_demo_raises_no_sensor_fault_for_its_healthy_sensors(tmp_path: Path) -> None:
    engine = db.connect(f"sqlite:///{tmp_path}/state.sqlite3")
    checkpoints = CheckpointRepository(engine)
    warnings = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS)
    desk = SensorFaultDesk(SqlWarningRepository(engine), catalog=CATALOG, playbooks=PLAYBOOKS)
    scoring = ScoringEngine(
        CATALOG, detector=Settings().detector, signal_threshold=Settings().signal_threshold
    )
    sink = DetectionSink(engine=scoring, warnings=warnings, checkpoints=checkpoints, faults=desk)
    wall = [END]
    watch = SilenceWatch(
        catalog=CATALOG, checkpoints=checkpoints, faults=desk, clock=lambda: wall[0], slack_s=5.0
    )
    offset = 0

    def deliver(points: list[Point]) -> None:
        nonlocal offset
        sink.process(points, [(0, offset + i) for i in range(len(points))], now=wall[0])
        sink.checkpoint(now=wall[0])
        offset += len(points)

    # The day, replayed over ten minutes of wall time, checked every half minute.
    day = as_points(demo_readings(end=END, catalog=CATALOG))
    chunk = len(day) // 20 + 1
    for start in range(0, len(day), chunk):
        deliver(day[start : start + chunk])
        wall[0] += timedelta(seconds=30)
        watch.check()
    # Then two hours of the live stream.
    for tick in range(24):
        deliver(as_points(demo_live_readings(wall[0], tick=tick, day_end=END, catalog=CATALOG)))
        for _ in range(int(STEP_S // 30)):
            wall[0] += timedelta(seconds=30)
            watch.check()
    assert warnings.list(hazard="sensor_fault").total == 0
    assert warnings.list().total > 0  # the scenario's own warnings are there

    # Had the stream stopped, every sensor would be silent three intervals later.
    wall[0] += timedelta(seconds=3 * STEP_S)
    assert {e.sensor_id for e in watch.check()} == {s.id for s in CATALOG.sensors}
    engine.dispose()


def test_the_live_stream_keeps_every_sensor_reporting_and_moving(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    )
    ensure_topics(settings)
    producer = ConfirmedProducer(producer_config(settings))
    stop = threading.Event()
    ticks = [END + timedelta(minutes=5 * k) for k in range(3)]

    def clock() -> datetime:
        at = ticks.pop(0)
        if not ticks:
            stop.set()
        return at

    try:
        sent = stream_live(
            producer,
            topic=settings.topic_readings,
            catalog=CATALOG,
            day_end=END,
            stop=stop,
            step_s=0.01,
            clock=clock,
        )
    finally:
        producer.close()
    assert sent == 3
    n = len(CATALOG.sensors)
    messages = [
        json.loads(m.value()) for m in read_topic(settings.kafka_bootstrap, settings.topic_readings, 3 * n)
    ]
    by_sensor: dict[str, list[float]] = {}
    for m in sorted(messages, key=lambda m: m["ts"]):
        by_sensor.setdefault(m["sensor_id"], []).append(m["value"])
    assert set(by_sensor) == {s.id for s in CATALOG.sensors}
    assert all(len(values) == 3 for values in by_sensor.values())
    assert all(len(set(values)) > 1 for values in by_sensor.values()), by_sensor
