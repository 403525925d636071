"""One compiled call scores a batch's series exactly as a ``score_batch`` call per series does.

The pool (``record_ensemble.StatePool``) holds the detectors' own arrays. These tests compare it,
bit for bit, with detectors that are not pooled: across batches of uneven lengths, buffers growing
mid-batch, missing values, detectors grown outside the pool (a restore's replay), detectors of other
parameters, and through the engine with restores and a reset in between.
"""

from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pytest

from models.detectors.record_ensemble import RecordEnsembleDetector, StatePool
from models.engine import ScoringEngine
from store.schemas import Point
from tests.factories import CATALOG

T0_S = 1_790_000_000.0
STEP_S = 300.0


def _batches(rng: np.random.Generator, series: int, batches: int, most: int):
    """Batches of each series' next 0 to ``most`` points (sometimes NaN), as (bounds, ts, values)."""
    taken = np.zeros(series, dtype=np.int64)
    for _ in range(batches):
        lengths = rng.integers(0, most + 1, size=series)
        bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
        ts = np.concatenate([T0_S + STEP_S * (taken[s] + np.arange(n)) for s, n in enumerate(lengths)])
        values = np.sin(ts / 7200.0) + 0.3 * rng.standard_normal(len(ts))
        values[rng.random(len(ts)) < 0.02] = np.nan
        taken += lengths
        yield bounds, ts, values


def _assert_same(expected, got, start: int, end: int) -> None:
    assert np.array_equal(expected.scores, got.scores[start:end], equal_nan=True)
    for name, row in expected.evidence.items():
        assert np.array_equal(row, got.evidence[name][start:end], equal_nan=True), name


def test_a_pool_scores_every_series_as_its_own_calls_do_while_buffers_grow() -> None:
    rng = np.random.default_rng(11)
    alone = [RecordEnsembleDetector() for _ in range(25)]
    pooled = [RecordEnsembleDetector() for _ in range(25)]
    pool = RecordEnsembleDetector.pool()
    assert all(pool.add(d) for d in pooled)
    sizes_before = [len(d._f) for d in pooled]
    for bounds, ts, values in _batches(rng, 25, batches=60, most=9):
        got = pool.score(pooled, bounds, ts, values)
        assert got is not None
        for s, det in enumerate(alone):
            a, b = bounds[s], bounds[s + 1]
            _assert_same(det.score_batch(ts[a:b], values[a:b]), got, a, b)
    assert all(len(d._f) > n for d, n in zip(pooled, sizes_before, strict=True))  # every series grew
    assert [d.get_state() for d in pooled] == [d.get_state() for d in alone]


def test_a_detector_grown_by_its_own_calls_is_scored_from_its_new_arrays() -> None:
    """A restore replays logged points through ``score_batch``: the pool must follow the growth."""
    rng = np.random.default_rng(5)
    alone, pooled = RecordEnsembleDetector(), RecordEnsembleDetector()
    pool = RecordEnsembleDetector.pool()
    pool.add(pooled)
    ts = T0_S + STEP_S * np.arange(400)
    values = rng.standard_normal(400)
    arrays = (pooled._i, pooled._f)
    for det in (alone, pooled):
        det.score_batch(ts[:399], values[:399])
    assert pooled._f is not arrays[1]  # it grew outside the pool
    got = pool.score([pooled], np.array([0, 1], dtype=np.intp), ts[399:], values[399:])
    assert got is not None
    _assert_same(alone.score_batch(ts[399:], values[399:]), got, 0, 1)
    assert pooled.get_state() == alone.get_state()


def test_a_detector_of_other_parameters_or_another_pool_is_not_held_and_nothing_is_scored() -> None:
    pool, other_pool = RecordEnsembleDetector.pool(), RecordEnsembleDetector.pool()
    usual, narrow, elsewhere = (
        RecordEnsembleDetector(),
        RecordEnsembleDetector(window=50),
        RecordEnsembleDetector(),
    )
    assert pool.add(usual) and not pool.add(narrow)
    assert other_pool.add(elsewhere) and not pool.add(elsewhere)
    bounds = np.array([0, 1, 2], dtype=np.intp)
    for stranger in (narrow, elsewhere):
        before = usual.get_state()
        assert pool.score([usual, stranger], bounds, np.array([T0_S, T0_S]), np.array([1.0, 2.0])) is None
        assert usual.get_state() == before
    with pytest.raises(ValueError, match="as long as bounds say"):
        pool.score([usual], np.array([0, 2], dtype=np.intp), np.array([T0_S]), np.array([1.0]))


def test_a_replaced_detector_leaves_its_place_and_the_pool_keeps_no_cycle() -> None:
    pool = RecordEnsembleDetector.pool()
    old, new = RecordEnsembleDetector(), RecordEnsembleDetector()
    pool.add(old)
    assert pool.add(new, instead_of=old) and len(pool) == 1
    assert not pool.holds(old) and pool.holds(new)
    # Detectors refer to their pool weakly: dropping the pool frees it without the cycle collector.
    gone = weakref.ref(pool)
    gc.disable()
    try:
        del pool
        assert gone() is None
    finally:
        gc.enable()
    new.score_batch(np.array([T0_S]), np.array([1.0]))  # a detector outlives its pool


def _readings(rng: np.random.Generator, step: int, sensors: list[tuple[str, str, str]]) -> list[Point]:
    """One or two readings of each sensor, with a gas leak past the red line now and then."""
    points = []
    for sensor_id, kind, area in sensors:
        for k in range(int(rng.integers(1, 3))):
            ts_ns = int((T0_S + STEP_S * (2 * step + k)) * 1e9)
            value = 2.0 + np.sin(2 * step / 40.0) + 0.2 * rng.standard_normal()
            if kind == "gas" and rng.random() < 0.01:
                value = 60.0
            points.append(Point(sensor_id, kind, area, ts_ns, float(value)))
    rng.shuffle(points)  # type: ignore[arg-type]
    return points


def test_the_engine_gives_the_same_signals_and_checkpoints_with_a_pool_as_without() -> None:
    """Unpooled: a factory without ``pool``, so every series is scored by its own call."""
    sensors = [(s.id, s.kind, s.area) for s in CATALOG.current().sensors][:16]
    pooled = ScoringEngine(CATALOG, detector="recordensemble", signal_threshold=0.9)
    alone = ScoringEngine(
        CATALOG,
        detector="recordensemble",
        signal_threshold=0.9,
        make_detector=lambda: RecordEnsembleDetector(),
    )
    assert isinstance(pooled._pool, StatePool) and alone._pool is None
    rng = np.random.default_rng(3)
    offset = 0
    signals: dict[str, list[object]] = {"pooled": [], "alone": []}
    for step in range(420):
        points = _readings(rng, step, sensors)
        positions = [(0, offset + i) for i in range(len(points))]
        offset += len(points)
        signals["pooled"] += pooled.score(points, positions)
        signals["alone"] += alone.score(points, positions)
        if step in (150, 300):
            # Checkpoint, forget, restore: restored detectors join a fresh pool.
            saved = json.loads(json.dumps(pooled.dirty_states()))
            assert saved == json.loads(json.dumps(alone.dirty_states()))
            pooled.forget_all()
            pooled.restore(saved)
            assert len(pooled._pool) == len(sensors)
        if step == 200:
            # A known series restored again takes its own place in the pool.
            one = json.loads(json.dumps(pooled.dirty_states()))
            alone.restore(json.loads(json.dumps(alone.dirty_states())))
            pooled.restore(one)
            assert len(pooled._pool) == len(sensors)
    assert any(s.level == "red" for s in signals["pooled"])  # type: ignore[attr-defined]
    assert signals["pooled"] == signals["alone"]
    assert [(c.sensor_id, c.snapshot, c.delta) for c in sorted(pooled.checkpoint())] == [
        (c.sensor_id, c.snapshot, c.delta) for c in sorted(alone.checkpoint())
    ]
