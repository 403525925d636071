"""Sensor health: silent, stuck and impossible sensors raise one ``sensor_fault`` warning each.

Real state databases (SQLite and PostgreSQL) and, for impossible values, the
real Kafka consumer path with its dead-letter topic. The silence check runs
against a clock the test moves, so "twenty minutes later" takes no twenty minutes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.checkpoints import CheckpointRepository
from alerts.repository import SqlWarningRepository
from alerts.schemas import WarningDetail
from alerts.sensor_faults import SensorFaultDesk
from alerts.service import WarningService
from alerts.sinks import DetectionSink
from app.services import build_services
from app.silence import SilenceWatch
from app.workers import build_ingest_worker
from bench.isolation import as_json, isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics
from models.engine import ScoringEngine
from models.sensor_health import HealthEvent, overdue
from store.schemas import Point
from tests.factories import CATALOG, PLAYBOOKS
from tests.pipeline_harness import read_topic, wait_until
from tests.test_consumer_faults import produce, running

T0 = datetime(2026, 9, 22, tzinfo=UTC)
STEP_S = 300
GAS, GAS_AREA = "gas-oldtown-01", "g-oldtown-05"
HEALTHY, HEALTHY_AREA = "gas-oldtown-02", "g-oldtown-01"


def ns(at: datetime) -> int:
    return int(at.timestamp()) * 10**9


def noisy(n: int, seed: int, level: float = 1.5) -> list[float]:
    rng = np.random.default_rng(seed)
    return [round(float(v), 3) for v in level + 0.2 * rng.standard_normal(n)]


def series(sensor: str, area: str, values: Sequence[float], start: int = 0) -> list[Point]:
    return [
        Point(sensor, "gas", area, ns(T0) + (start + i) * STEP_S * 10**9, v) for i, v in enumerate(values)
    ]


def interleave(*columns: list[Point]) -> tuple[list[Point], list[tuple[int, int]]]:
    points = sorted((p for c in columns for p in c), key=lambda p: (p.ts_ns, p.sensor_id))
    return points, [(0, i) for i in range(len(points))]


class Pipeline:
    """The detection sink with its fault desk over one state database, as the service wires it."""

    def __init__(self, engine: sa.Engine) -> None:
        self.db = engine
        self.checkpoints = CheckpointRepository(engine)
        self.desk = SensorFaultDesk(SqlWarningRepository(engine), catalog=CATALOG, playbooks=PLAYBOOKS)
        self.warnings = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS)
        self.sink = self.restart()

    def restart(self) -> DetectionSink:
        scoring = ScoringEngine(CATALOG, detector=Settings().detector, signal_threshold=0.66)
        self.sink = DetectionSink(
            engine=scoring, warnings=self.warnings, checkpoints=self.checkpoints, faults=self.desk
        )
        return self.sink

    def feed(self, points: list[Point], positions: list[tuple[int, int]], *, now: datetime) -> None:
        for start in range(0, len(points), 97):
            self.sink.process(points[start : start + 97], positions[start : start + 97], now=now)
        self.sink.checkpoint(now=now)

    def faults(self, **filters: object) -> list[WarningDetail]:
        page = self.warnings.list(hazard="sensor_fault", limit=500, **filters)  # type: ignore[misc]
        found = [self.warnings.get(w.id) for w in page.items]
        return [w for w in found if w is not None]

    def watch(self, now: list[datetime]) -> SilenceWatch:
        return SilenceWatch(
            catalog=CATALOG, checkpoints=self.checkpoints, faults=self.desk, clock=lambda: now[0], slack_s=5.0
        )


# ---- stuck ------------------------------------------------------------------------------------


def test_a_flatlined_sensor_raises_a_sensor_fault_with_its_last_good_reading(engine: sa.Engine) -> None:
    """Eight hours at exactly 1.62 %LEL (a calm value, so the gas detector stays quiet) is a stuck cell."""
    p = Pipeline(engine)
    before, after = noisy(300, 1), noisy(50, 2)
    stuck_from = len(before)
    stuck = series(GAS, GAS_AREA, before + [1.62] * 96 + after)
    points, positions = interleave(stuck, series(HEALTHY, HEALTHY_AREA, noisy(446, 3)))
    p.feed(points[: 2 * (stuck_from + 96)], positions[: 2 * (stuck_from + 96)], now=T0)

    [fault] = p.faults()
    assert (fault.area, fault.status, fault.level, fault.certainty) == (
        GAS_AREA,
        "active",
        "yellow",
        "Likely",
    )
    assert {e.sensor_id for e in fault.evidence} == {GAS}
    details = fault.evidence[0].details
    first_stuck = T0 + timedelta(seconds=stuck_from * STEP_S)
    assert details["fault"] == "flatline"
    assert (details["last_good_value"], details["last_good_at"]) == (1.62, first_stuck.isoformat())
    # Six hours (the kind's stuck_after_s) after the value stuck, not before.
    assert fault.first_signal_at == first_stuck + timedelta(hours=6)
    what = " ".join(r["what"] for r in fault.recommendations)
    assert GAS in what and "Hongqi" in what and f"1.62 %LEL at {first_stuck.isoformat()}" in what
    assert {r["who"] for r in fault.recommendations} >= {"Sensor maintenance team"}
    assert fault.recommendations[0]["where"]["location"]["sensor_id"] == GAS
    # Kept apart from the hazard the sensor watches: no gas-leak warning came of it.
    assert p.warnings.list(hazard="gas_leak").total == 0

    p.feed(points[2 * (stuck_from + 96) :], positions[2 * (stuck_from + 96) :], now=T0)
    [fault] = p.faults()
    assert fault.status == "resolved"
    assert fault.events[-1].actor == "sensor-health"
    assert fault.events[-1].action == "resolved"


def test_a_dry_rain_gauge_reading_zero_for_days_is_healthy(engine: sa.Engine) -> None:
    p = Pipeline(engine)
    zeros = [
        Point("rf-oldtown-01", "rainfall", "g-oldtown-02", ns(T0) + i * STEP_S * 10**9, 0.0)
        for i in range(900)
    ]
    p.feed(zeros, [(0, i) for i in range(900)], now=T0)
    assert p.faults() == []


def test_a_restart_does_not_raise_a_fault_already_raised(engine: sa.Engine) -> None:
    """Not while it is open, nor after an operator resolved it while the sensor stays stuck."""
    p = Pipeline(engine)
    points = series(GAS, GAS_AREA, noisy(300, 1) + [1.62] * 120)
    positions = [(0, i) for i in range(len(points))]
    p.feed(points[:390], positions[:390], now=T0)
    [fault] = p.faults()
    p.warnings.resolve(fault.id, now=T0, actor="maintenance:li", note="ticket 4711 opened")

    p.restart()
    p.feed(points[370:], positions[370:], now=T0)  # a replay of the last points, then new stuck ones
    [again] = p.faults()
    assert again.id == fault.id and again.status == "resolved"
    assert again.signal_count == 1


# ---- impossible values ------------------------------------------------------------------------


def test_a_run_of_impossible_values_raises_a_sensor_fault_and_the_batch_goes_on(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Through Kafka: each impossible reading is dead-lettered; three in a row are a fault, one a glitch."""
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        checkpoint_interval_s=0.5,
    )
    ensure_topics(settings)
    now = datetime.now(UTC).replace(microsecond=0)

    def reading(sensor: str, i: int, value: float) -> dict[str, object]:
        ts = now - timedelta(seconds=(60 - i) * STEP_S)
        return {"sensor_id": sensor, "kind": "gas", "value": value, "ts": ts.isoformat()}

    faulty = [reading(GAS, i, 1.5 + 0.01 * i) for i in range(40)]
    for i in (30, 31, 32):
        faulty[i]["value"] = 180.0  # %LEL cannot exceed 100
    glitchy = [reading(HEALTHY, i, 1.4 + 0.01 * i) for i in range(40)]
    glitchy[10]["value"] = -3.0
    produce(settings, settings.topic_readings, as_json(faulty + glitchy))

    svc = build_services(settings)
    try:
        with running(build_ingest_worker(svc)):
            wait_until(
                lambda: (
                    svc.warnings.list(hazard="sensor_fault", status="resolved").total > 0
                    and svc.store.count(GAS) + svc.store.count(HEALTHY) == 76
                ),
                timeout_s=60,
                what="the impossible run to raise a fault, a good reading to clear it, the rest to be stored",
            )
            dead = read_topic(settings.kafka_bootstrap, settings.topic_deadletter, 4)
        assert sorted(json.loads(m.value())["value"] for m in dead) == [-3.0, 180.0, 180.0, 180.0]
        [fault] = [svc.warnings.get(w.id) for w in svc.warnings.list(hazard="sensor_fault").items]
        assert fault is not None
        assert (fault.area, fault.certainty) == (GAS_AREA, "Observed")
        raised = [e for e in fault.evidence if e.details["fault"] == "out_of_range"]
        assert [e.value for e in raised] == [180.0]
        assert raised[0].details["last_good_value"] == faulty[29]["value"]
        # The next good reading (index 33) cleared it.
        assert fault.status == "resolved"
    finally:
        svc.close()


# ---- silence ----------------------------------------------------------------------------------


def test_a_silent_sensor_raises_a_sensor_fault_once_and_clears_when_it_reports(engine: sa.Engine) -> None:
    p = Pipeline(engine)
    wall = T0 + timedelta(days=1)
    points, positions = interleave(
        series(GAS, GAS_AREA, noisy(50, 1)), series(HEALTHY, HEALTHY_AREA, noisy(50, 2))
    )
    p.feed(points, positions, now=wall)
    last_good = points[-2] if points[-2].sensor_id == GAS else points[-1]
    clock = [wall + timedelta(minutes=10)]
    watch = p.watch(clock)
    assert watch.check() == []  # ten minutes: two reports missed, not yet three

    # The healthy sensor keeps reporting; the gas sensor does not.
    later = series(HEALTHY, HEALTHY_AREA, noisy(4, 4), start=50)
    p.feed(later, [(0, 100 + i) for i in range(4)], now=wall + timedelta(minutes=19))
    clock[0] = wall + timedelta(minutes=20)
    [silent] = watch.check()
    assert (silent.sensor_id, silent.fault) == (GAS, "silent")
    [fault] = p.faults()
    assert (fault.area, fault.level, fault.certainty, fault.status) == (
        GAS_AREA,
        "yellow",
        "Observed",
        "active",
    )
    details = fault.evidence[0].details
    assert details["last_good_value"] == last_good.value
    assert details["last_good_at"] == datetime.fromtimestamp(last_good.ts_ns / 1e9, UTC).isoformat()
    assert any("last good reading" in r["what"] for r in fault.recommendations)

    # A restart of the check forgets nothing and raises nothing again.
    clock[0] = wall + timedelta(minutes=25)
    assert p.watch(clock).check() == []
    assert [f.signal_count for f in p.faults()] == [1]

    # The sensor reports again: the fault is over.
    back = series(GAS, GAS_AREA, noisy(2, 5), start=60)
    p.feed(back, [(0, 200), (0, 201)], now=wall + timedelta(minutes=26))
    clock[0] = wall + timedelta(minutes=27)
    [recovered] = p.watch(clock).check()
    assert recovered.fault is None
    [fault] = p.faults()
    assert fault.status == "resolved" and fault.events[-1].actor == "sensor-health"


def test_a_restart_after_downtime_calls_a_sensor_silent_only_once_it_was_listened_for(
    engine: sa.Engine,
) -> None:
    """An hour down is not an hour of silence: the sensors are judged from the restart on, and a
    silence raised before it stays raised until its sensor reports."""
    p = Pipeline(engine)
    wall = T0 + timedelta(days=1)
    both = interleave(series(GAS, GAS_AREA, noisy(50, 1)), series(HEALTHY, HEALTHY_AREA, noisy(50, 2)))
    p.feed(*both, now=wall)
    later = series(HEALTHY, HEALTHY_AREA, noisy(4, 3), start=50)
    p.feed(later, [(0, 100 + i) for i in range(4)], now=wall + timedelta(minutes=19))
    clock = [wall + timedelta(minutes=20)]
    [silent] = p.watch(clock).check()  # before the restart: the gas sensor missed three reports
    assert silent.sensor_id == GAS

    restarted = wall + timedelta(hours=1)

    def watch() -> SilenceWatch:
        return SilenceWatch(
            catalog=CATALOG,
            checkpoints=p.checkpoints,
            faults=p.desk,
            clock=lambda: clock[0],
            slack_s=5.0,
            listening_since=restarted,
        )

    clock[0] = restarted + timedelta(seconds=30)  # the first round after the restart
    heard = p.checkpoints.last_saved()[HEALTHY]
    assert overdue(last_seen_s=heard.timestamp(), interval_s=STEP_S, now_s=clock[0].timestamp())  # by itself
    assert watch().check() == []  # the healthy sensor, unheard for an hour, is not called silent ...
    assert [(f.status, f.signal_count) for f in p.faults()] == [("active", 1)]  # ... nor the fault cleared

    # The healthy sensor reports after the restart; fifteen minutes on it is still not silent.
    again = series(HEALTHY, HEALTHY_AREA, noisy(1, 4), start=62)
    p.feed(again, [(0, 110)], now=restarted + timedelta(minutes=2))
    clock[0] = restarted + timedelta(minutes=16)
    assert watch().check() == []
    # Three missed reports after its last one, counted from then: now it is.
    clock[0] = restarted + timedelta(minutes=18)
    [late] = watch().check()
    assert (late.sensor_id, late.fault) == (HEALTHY, "silent")


def test_a_consumer_back_after_an_hour_behind_gives_the_sensors_time_to_be_heard(engine: sa.Engine) -> None:
    """The broker down for an hour, say: no reading was taken then, and that is no sensor's silence."""
    p = Pipeline(engine)
    wall = T0 + timedelta(days=1)
    p.feed(series(HEALTHY, HEALTHY_AREA, noisy(10, 2)), [(0, i) for i in range(10)], now=wall)
    clock, behind = [wall + timedelta(minutes=5)], [True]
    watch = SilenceWatch(
        catalog=CATALOG,
        checkpoints=p.checkpoints,
        faults=p.desk,
        clock=lambda: clock[0],
        slack_s=5.0,
        caught_up=lambda: not behind[0],
        listening_since=wall,
    )
    assert watch.check() == []
    clock[0] = wall + timedelta(hours=1)
    assert watch.check() == []  # still behind: the last round that saw it so
    behind[0] = False
    clock[0] = wall + timedelta(hours=1, seconds=30)
    assert watch.check() == []  # unheard for an hour, but listened for only since the last round behind
    clock[0] = wall + timedelta(hours=1, minutes=16)
    [silent] = watch.check()  # three reports missed since the consumer was back
    assert (silent.sensor_id, silent.fault) == (HEALTHY, "silent")


def test_silence_is_not_judged_while_the_consumer_is_behind(engine: sa.Engine) -> None:
    p = Pipeline(engine)
    p.feed(series(GAS, GAS_AREA, noisy(10, 1)), [(0, i) for i in range(10)], now=T0)
    watch = SilenceWatch(
        catalog=CATALOG,
        checkpoints=p.checkpoints,
        faults=p.desk,
        clock=lambda: T0 + timedelta(hours=2),
        slack_s=5.0,
        caught_up=lambda: False,
    )
    assert watch.check() == []
    assert p.faults() == []


def test_the_silence_check_survives_the_state_database_being_down() -> None:
    """A database that refuses connections skips rounds; the task lives on (a dead task stops the process)."""
    down = sa.create_engine(
        "postgresql+psycopg://citywarn@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    watch = SilenceWatch(
        catalog=CATALOG,
        checkpoints=CheckpointRepository(down),
        faults=SensorFaultDesk(SqlWarningRepository(down), catalog=CATALOG, playbooks=PLAYBOOKS),
        clock=lambda: T0,
        slack_s=5.0,
        every_s=0.05,
    )
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            watch.run(stop)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive() and not failed
    stop.set()
    thread.join(10)
    assert not failed


# ---- batching ---------------------------------------------------------------------------------


def health_events(cuts: Sequence[int]) -> list[HealthEvent]:
    values = noisy(120, 9) + [1.62] * 80 + [150.0] * 4 + noisy(20, 10) + [150.0]
    points = series(GAS, GAS_AREA, values)
    engine = ScoringEngine(CATALOG, detector="recordrarity", signal_threshold=0.9)
    events: list[HealthEvent] = []
    start = 0
    for size in [*cuts, len(points)]:
        batch = points[start : start + size]
        engine.score(batch, [(0, start + i) for i in range(len(batch))])
        events += engine.take_health_events()
        start += len(batch)
        if start >= len(points):
            break
    return events


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=12))
def test_health_does_not_depend_on_batching(cuts: list[int]) -> None:
    one_by_one = health_events([1] * 300)
    assert [e.fault for e in one_by_one] == ["flatline", "out_of_range", None]
    assert health_events(cuts) == one_by_one


# ---- the catalog ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "expected_interval_s: 300\n    # a dry gauge",
            "expected_interval_s: -5\n    # a dry gauge",
            "kinds[rainfall].expected_interval_s",
        ),
        (
            "stuck_after_s: 21600\n    steady_at: [0]\n  pm25",
            "stuck_after_s: 600\n    steady_at: [0]\n  pm25",
            "kinds[gas].expected_interval_s",
        ),
        ("steady_at: [0]\n  pm25", "steady_at: [-1]\n  pm25", "kinds[gas]"),
        (
            'name: "Rain gauge, Zhongshan park"}',
            'name: "Rain gauge, Zhongshan park", expected_interval_s: 9000}',
            "sensors[rf-oldtown-01].expected_interval_s",
        ),
    ],
)
def test_citywarn_check_names_a_bad_health_rule(
    old: str,
    new: str,
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.cli import main
    from config.settings import CITY_DIR

    catalog = tmp_path / "sensors.yaml"
    text = (CITY_DIR / "sensors.yaml").read_text(encoding="utf-8")
    assert old in text
    catalog.write_text(text.replace(old, new, 1), encoding="utf-8")
    monkeypatch.setenv("CITYWARN_CATALOG_PATH", str(catalog))
    with pytest.raises(SystemExit) as exit_info:
        main(["check"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"sensors.yaml: {where}" in err, err
