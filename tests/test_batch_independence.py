"""Signals do not depend on how the stream is cut into batches, nor on a crash and replay in between."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts import db, sinks
from alerts.checkpoints import CheckpointRepository
from alerts.service import WarningService
from alerts.sinks import DetectionSink
from bench.scoring import gas_model as quiet_gas_model
from config.areas import load_areas
from config.settings import CITY_DIR
from models.engine import ScoringEngine
from models.multivariate import KindModel
from models.signals import Signal
from store.schemas import Point
from tests.factories import CATALOG, PLAYBOOKS

T0 = 1_790_000_000 * 10**9
STEP = 300 * 10**9
SENSORS = {"gas-oldtown-01": "g-oldtown-05", "gas-oldtown-02": "g-oldtown-01"}
NOW = datetime(2026, 9, 22, tzinfo=UTC)
Position = tuple[int, int]


def gas_values(n: int, seed: int) -> list[float]:
    """Quiet methane with a spike, a stretch past the blue and yellow lines, and a red-line reading."""
    rng = np.random.default_rng(seed)
    values = 1.5 + 0.2 * rng.standard_normal(n)
    values[400] = 9.0
    values[500:540] = 12.0 + 10.0 * rng.random(40)
    values[600] = 55.0
    return [float(v) for v in values]


def stream(n: int = 700) -> tuple[list[Point], list[Position]]:
    """Two sensors interleaved on one partition, as a consumer would receive them."""
    columns = [
        [Point(sid, "gas", area, T0 + i * STEP, v) for i, v in enumerate(gas_values(n, seed))]
        for seed, (sid, area) in enumerate(SENSORS.items())
    ]
    points = [p for pair in zip(*columns, strict=True) for p in pair]
    return points, [(0, offset) for offset in range(len(points))]


@pytest.fixture(scope="module")
def gas_model() -> KindModel:
    return quiet_gas_model()  # bench.scoring's: four quiet series, the same model every run


def new_engine(model: KindModel) -> ScoringEngine:
    engine = ScoringEngine(CATALOG, detector="recordrarity", signal_threshold=0.9, repeat_s=1800.0)
    engine.set_kind_models({"gas": model})
    return engine


def in_batches(sizes: Sequence[int], n: int) -> Iterator[slice]:
    start = 0
    for size in sizes:
        if start >= n:
            return
        yield slice(start, min(n, start + size))
        start += size
    if start < n:
        yield slice(start, n)


def key(signal: Signal) -> tuple[str, int]:
    return signal.sensor_id, signal.ts_ns


POINTS, POSITIONS = stream()


@pytest.fixture(scope="module")
def one_at_a_time(gas_model: KindModel) -> tuple[list[Signal], dict[str, Any]]:
    engine = new_engine(gas_model)
    signals = [s for i in range(len(POINTS)) for s in engine.score(POINTS[i : i + 1], POSITIONS[i : i + 1])]
    return sorted(signals, key=key), engine.dirty_states()


def test_the_stream_raises_anomalies_line_crossings_and_reminders(
    one_at_a_time: tuple[list[Signal], dict[str, Any]],
) -> None:
    signals, _ = one_at_a_time
    for sensor in SENSORS:
        mine = [s for s in signals if s.sensor_id == sensor]
        levels = [s.level for s in mine]
        assert any(s.level is None and s.value == 9.0 for s in mine), "the spike is an anomaly signal"
        assert "red" in levels and "blue" in levels
        # 40 readings past a line, 5 minutes apart, reminders every 30 minutes: far fewer than 40 signals.
        assert 3 <= len([s for s in mine if T0 + 500 * STEP <= s.ts_ns < T0 + 540 * STEP]) <= 12


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=60))
def test_any_batching_gives_the_signals_of_one_point_at_a_time(
    gas_model: KindModel, one_at_a_time: tuple[list[Signal], dict[str, Any]], sizes: list[int]
) -> None:
    engine = new_engine(gas_model)
    signals = [s for cut in in_batches(sizes, len(POINTS)) for s in engine.score(POINTS[cut], POSITIONS[cut])]
    expected_signals, expected_states = one_at_a_time
    assert sorted(signals, key=key) == expected_signals
    assert engine.dirty_states() == expected_states


def test_a_checkpoint_saved_and_loaded_resumes_the_per_kind_model_exactly(
    gas_model: KindModel, tmp_path: Path, one_at_a_time: tuple[list[Signal], dict[str, Any]]
) -> None:
    repo = CheckpointRepository(db.connect(f"sqlite:///{tmp_path}/state.sqlite3"))
    first = new_engine(gas_model)
    cut = 2 * 598  # just before both red-line readings, so the model's context decides their score
    signals = first.score(POINTS[:cut], POSITIONS[:cut])
    repo.save(first.dirty_states(), now=NOW)
    resumed = new_engine(gas_model)
    resumed.restore(repo.load(SENSORS))
    signals += resumed.score(POINTS[cut:], POSITIONS[cut:])
    assert sorted(signals, key=key) == one_at_a_time[0]


def test_the_saved_position_is_the_highest_offset_not_the_latest_timestamp(gas_model: KindModel) -> None:
    late_first = [
        Point("gas-oldtown-01", "gas", "g-oldtown-05", T0 + (10 - i) * STEP, 1.5) for i in range(10)
    ]
    engine = new_engine(gas_model)
    engine.score(late_first, [(0, 100 + i) for i in range(10)])
    [saved] = engine.dirty_states().values()
    assert tuple(saved["position"]) == (0, 109)


def warning_service(url: str) -> tuple[WarningService, sa.Engine]:
    engine = db.connect(url)
    service = WarningService(
        engine,
        catalog=CATALOG,
        playbooks=PLAYBOOKS,
        areas=load_areas(CITY_DIR / "areas.geojson"),
        fusion_window=timedelta(hours=6),
    )
    return service, engine


def evidence_rows(engine: sa.Engine) -> list[tuple[str, datetime]]:
    e = db.evidence.c
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(e.sensor_id, e.observed_at)))


def feed(sink: DetectionSink, sizes: Sequence[int], start: int, stop: int, *, checkpoint_every: int) -> None:
    for n, cut in enumerate(in_batches(sizes, stop - start), start=1):
        batch = slice(start + cut.start, start + cut.stop)
        sink.process(POINTS[batch], POSITIONS[batch], now=NOW)
        if n % checkpoint_every == 0:
            sink.checkpoint(now=NOW)


def test_a_replay_after_a_crash_adds_no_evidence(gas_model: KindModel, tmp_path: Path) -> None:
    def sink_on(url: str) -> tuple[DetectionSink, sa.Engine]:
        service, engine = warning_service(url)
        return DetectionSink(
            engine=new_engine(gas_model), warnings=service, checkpoints=CheckpointRepository(engine)
        ), engine

    whole, whole_db = sink_on(f"sqlite:///{tmp_path}/whole.sqlite3")
    feed(whole, [50] * 100, 0, len(POINTS), checkpoint_every=4)

    crashed, crashed_db = sink_on(f"sqlite:///{tmp_path}/crashed.sqlite3")
    feed(crashed, [50] * 100, 0, 1000, checkpoint_every=4)  # checkpointed up to offset 800, then crashed
    restarted = DetectionSink(
        engine=new_engine(gas_model), warnings=crashed.warnings, checkpoints=crashed.checkpoints
    )
    # Kafka delivers again from the committed offset, cut into other batches.
    feed(restarted, [37] * 100, 800, len(POINTS), checkpoint_every=4)

    assert evidence_rows(crashed_db) == evidence_rows(whole_db)
    assert len(evidence_rows(whole_db)) > 10


def test_a_restarted_sink_tells_what_restoring_its_series_cost(gas_model: KindModel, tmp_path: Path) -> None:
    service, engine = warning_service(f"sqlite:///{tmp_path}/state.sqlite3")
    first = DetectionSink(
        engine=new_engine(gas_model), warnings=service, checkpoints=CheckpointRepository(engine)
    )
    feed(first, [50] * 4, 0, 200, checkpoint_every=4)
    told: list[tuple[int, float]] = []
    restarted = DetectionSink(
        engine=new_engine(gas_model),
        warnings=service,
        checkpoints=CheckpointRepository(engine),
        on_restored=lambda series, seconds: told.append((series, seconds)),
    )
    feed(restarted, [50] * 4, 200, 400, checkpoint_every=4)  # both series come back in its first batch
    assert [series for series, _ in told] == [len(SENSORS)]  # once: later batches find them held
    assert told[0][1] > 0


def test_a_checkpoint_first_moves_the_warnings_on_to_the_readings_it_covers(
    gas_model: KindModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sink moves warnings on at most every ``ADVANCE_EVERY_S`` (here never but at the first
    batch), so a quiet batch leaves the clock behind; the checkpoint covering it moves it first."""
    monkeypatch.setattr(sinks, "ADVANCE_EVERY_S", 3600.0)
    service, engine = warning_service(f"sqlite:///{tmp_path}/state.sqlite3")
    sink = DetectionSink(
        engine=new_engine(gas_model), warnings=service, checkpoints=CheckpointRepository(engine)
    )
    through_red = 2 * 601  # both sensors up to and including their red-line readings
    sink.process(POINTS[:through_red], POSITIONS[:through_red], now=NOW)
    open_ids = [w.id for w in service.list(hazard="gas_leak", limit=100).items if w.status != "resolved"]
    assert open_ids
    # 99 quiet readings a sensor after it: more than eight hours past the 30 minutes gas needs to release.
    sink.process(POINTS[through_red:], POSITIONS[through_red:], now=NOW)
    assert {service.get(i).status for i in open_ids} != {"resolved"}  # type: ignore[union-attr]
    sink.checkpoint(now=NOW)
    assert {service.get(i).status for i in open_ids} == {"resolved"}  # type: ignore[union-attr]
