"""Incremental checkpoints: a restore from a snapshot plus logged points scores exactly as if never stopped.

On the real state databases (SQLite and PostgreSQL), with the shipped
detector, a per-kind model, out-of-range readings (health-only points) and
sensors that checkpoint at different rhythms.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from alerts import db
from alerts.checkpoints import CheckpointRepository
from bench.scoring import gas_model as quiet_gas_model
from models import state_codec
from models.detectors import record_kernel as k
from models.detectors.record_ensemble import RecordEnsembleDetector
from models.engine import MAX_LOGGED_POINTS, ScoringEngine
from models.multivariate import KindModel
from models.series_checkpoint import (
    POINT_BYTES,
    SeriesCheckpoint,
    decode_points,
    decode_runs,
    decode_snapshot,
    encode_points,
    encode_snapshot,
)
from models.signals import Signal
from store.schemas import Point
from tests.factories import CATALOG

T0 = 1_790_000_000 * 10**9
STEP = 300 * 10**9
SENSORS = {"gas-oldtown-01": "g-oldtown-05", "gas-oldtown-02": "g-oldtown-01", "gas-bench-x": "g-oldtown-01"}
NOW = datetime(2026, 9, 22, tzinfo=UTC)
DETECTOR = "recordensemble"  # the service's default


def gas_values(n: int, seed: int) -> list[float]:
    """Quiet methane with spikes, a stretch past the lines, and runs of impossible readings."""
    rng = np.random.default_rng(seed)
    values = 1.5 + 0.2 * rng.standard_normal(n)
    values[700] = 9.0
    values[900:940] = 12.0 + 10.0 * rng.random(40)
    values[1000] = 55.0
    values[1100:1105] = 250.0  # past valid_max: health learns from them, no detector does
    values[1200] = -3.0
    return [float(v) for v in values]


def stream(n: int) -> tuple[list[Point], list[tuple[int, int]]]:
    columns = [
        [Point(sid, "gas", area, T0 + i * STEP, v) for i, v in enumerate(gas_values(n, seed))]
        for seed, (sid, area) in enumerate(SENSORS.items())
    ]
    # The third sensor reports every other step, so its checkpoints fall out of step with the others'.
    rows = enumerate(zip(*columns, strict=True))
    points = [p for i, row in rows for j, p in enumerate(row) if j < 2 or i % 2]
    return points, [(0, offset) for offset in range(len(points))]


@pytest.fixture(scope="module")
def gas_model() -> KindModel:
    return quiet_gas_model()  # bench.scoring's: four quiet series, the same model every run


def new_engine(model: KindModel) -> ScoringEngine:
    engine = ScoringEngine(CATALOG, detector=DETECTOR, signal_threshold=0.9, repeat_s=1800.0)
    engine.set_kind_models({"gas": model})
    return engine


def run(engine: ScoringEngine, points: Sequence[Point], positions: Sequence[tuple[int, int]]) -> list[Signal]:
    out: list[Signal] = []
    for start in range(0, len(points), 37):
        out += engine.score(points[start : start + 37], positions[start : start + 37])
    return out


def key(signal: Signal) -> tuple[str, int, str]:
    return signal.sensor_id, signal.ts_ns, str(signal.level)


def whole(engine: ScoringEngine) -> dict[str, Any]:
    """Every series' whole state, for comparison (marks them all dirty first)."""
    engine._dirty.update(engine._series)
    return engine.dirty_states()


POINTS, POSITIONS = stream(1500)


@pytest.mark.parametrize("cut", [250, 1650, 3100])
def test_a_restore_from_snapshot_and_deltas_continues_exactly(
    engine: sa.Engine, gas_model: KindModel, cut: int
) -> None:
    uninterrupted = new_engine(gas_model)
    expected = run(uninterrupted, POINTS, POSITIONS)
    assert any(s.level == "red" for s in expected) and any(s.level is None for s in expected)

    repo = CheckpointRepository(engine)
    first = new_engine(gas_model)
    before: list[Signal] = []
    for start in range(0, cut, 37):
        stop = min(cut, start + 37)
        before += first.score(POINTS[start:stop], POSITIONS[start:stop])
        repo.save_series(first.checkpoint(), log="log-a", now=NOW)
    with engine.connect() as conn:
        logged = conn.execute(sa.select(sa.func.count()).select_from(db.deltas)).scalar_one()
    assert logged > 0, "some series are between snapshots at the cut"

    resumed = new_engine(gas_model)
    resumed.restore(repo.load(SENSORS))
    after = run(resumed, POINTS[cut:], POSITIONS[cut:])
    assert sorted(before + after, key=key) == sorted(expected, key=key)
    assert whole(resumed) == whole(uninterrupted)


def test_an_unreadable_snapshot_starts_its_series_afresh_and_the_others_restore_exactly(
    engine: sa.Engine, gas_model: KindModel, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot the kernel could not score safely (here a window count past its buffer), or one
    missing a part, is refused: that series learns again from its next reading, and one bad record
    fails no batch, so the other series go on exactly as if never stopped."""
    cut = 1650
    uninterrupted = new_engine(gas_model)
    expected = run(uninterrupted, POINTS, POSITIONS)
    repo = CheckpointRepository(engine)
    first = new_engine(gas_model)
    before = run(first, POINTS[:cut], POSITIONS[:cut])
    repo.save_series(first.checkpoint(), log="log-a", now=NOW)
    saved = repo.load(SENSORS)
    broken = "gas-oldtown-02"
    snapshot = decode_snapshot(saved[broken]["state"]["snapshot"])
    snapshot["detector"]["ints"][k.C_WIN_N] = 10**6
    saved[broken]["state"]["snapshot"] = encode_snapshot(snapshot)
    decision_lost = "gas-bench-x"  # a part other than the detector's missing
    snapshot = decode_snapshot(saved[decision_lost]["state"]["snapshot"])
    del snapshot["decision"]
    saved[decision_lost]["state"]["snapshot"] = encode_snapshot(snapshot)

    resumed = new_engine(gas_model)
    with caplog.at_level(logging.WARNING, logger="models.engine"):
        resumed.restore(saved)
    refused = {broken, decision_lost}
    assert [sid for sid in SENSORS if resumed.known(sid)] == [sid for sid in SENSORS if sid not in refused]
    for sid in refused:
        assert any(sid in r.getMessage() and "afresh" in r.getMessage() for r in caplog.records)
    after = run(resumed, POINTS[cut:], POSITIONS[cut:])
    assert all(resumed.known(sid) for sid in refused), "a refused series learns again from its next reading"
    others = [s for s in before + after if s.sensor_id not in refused]
    assert sorted(others, key=key) == sorted((s for s in expected if s.sensor_id not in refused), key=key)


def test_a_restore_whose_log_spans_a_kinds_first_model_continues_exactly(
    engine: sa.Engine, gas_model: KindModel
) -> None:
    """A restore replays a series' logged points in one run, some scored by no model (NaN) and some by
    the kind's first model: each must count as it did live."""
    arrives, cut = 1700, 1800  # the spike at step 700 falls between
    make = partial(ScoringEngine, CATALOG, detector=DETECTOR, signal_threshold=0.9, repeat_s=1800.0)
    uninterrupted = make()
    expected = run(uninterrupted, POINTS[:arrives], POSITIONS[:arrives])
    uninterrupted.set_kind_models({"gas": gas_model})
    expected += run(uninterrupted, POINTS[arrives:], POSITIONS[arrives:])

    repo = CheckpointRepository(engine)
    first = make()
    before: list[Signal] = []
    edges = sorted({*range(0, cut, 37), arrives, cut})
    for start, stop in itertools.pairwise(edges):
        if start == arrives:
            first.set_kind_models({"gas": gas_model})
        before += first.score(POINTS[start:stop], POSITIONS[start:stop])
        repo.save_series(first.checkpoint(), log="log-a", now=NOW)
    saved = repo.load(SENSORS)
    spans = [
        sid
        for sid, rec in saved.items()
        if len({bool(np.isnan(decode_points(d).multivariate).all()) for d in rec["state"]["deltas"]}) == 2
    ]
    assert spans, "some series logged points both before and after the model came"

    resumed = make()
    resumed.set_kind_models({"gas": gas_model})
    resumed.restore(saved)
    after = run(resumed, POINTS[cut:], POSITIONS[cut:])
    assert sorted(before + after, key=key) == sorted(expected, key=key)
    assert whole(resumed) == whole(uninterrupted)


def test_the_log_never_outweighs_the_snapshot_and_snapshots_are_rewritten(
    engine: sa.Engine, gas_model: KindModel
) -> None:
    repo = CheckpointRepository(engine)
    scorer = new_engine(gas_model)
    snapshot_at: dict[str, set[int]] = {sid: set() for sid in SENSORS}
    for start in range(0, len(POINTS), 11):
        scorer.score(POINTS[start : start + 11], POSITIONS[start : start + 11])
        repo.save_series(scorer.checkpoint(), log="log-a", now=NOW)
        with engine.connect() as conn:
            snaps = {r.sensor_id: (r.learned, len(r.snapshot)) for r in conn.execute(sa.select(db.snapshots))}
            logged = dict(
                conn.execute(
                    sa.select(
                        db.deltas.c.sensor_id, sa.func.sum(sa.func.length(db.deltas.c.points))
                    ).group_by(db.deltas.c.sensor_id)
                ).all()
            )
        for sid, (learned, size) in snaps.items():
            snapshot_at[sid].add(learned)
            assert (logged.get(sid) or 0) < size, f"{sid}: the log holds more than a snapshot's worth"
            assert (logged.get(sid) or 0) < MAX_LOGGED_POINTS * POINT_BYTES, f"{sid}: too long to replay"
    for sid, times in snapshot_at.items():
        assert len(times) >= 3, f"{sid} rewrote its snapshot only {len(times)} times"


def test_a_checkpoint_between_snapshots_writes_only_the_new_points(gas_model: KindModel) -> None:
    scorer = new_engine(gas_model)
    run(scorer, POINTS, POSITIONS)
    first = {r.sensor_id: r for r in scorer.checkpoint()}
    assert all(r.snapshot is not None and len(r.snapshot) > 20_000 for r in first.values())

    nxt = [Point("gas-oldtown-01", "gas", "g-oldtown-05", T0 + 10**6 * STEP, 1.4)]
    scorer.score(nxt, [(0, 10**6)])
    (record,) = scorer.checkpoint()
    assert record.snapshot is None
    assert record.delta is not None and len(record.delta) == POINT_BYTES
    assert record.learned == first["gas-oldtown-01"].learned + 1


def test_a_whole_json_checkpoint_of_the_previous_format_still_restores(
    engine: sa.Engine, gas_model: KindModel
) -> None:
    uninterrupted = new_engine(gas_model)
    expected = run(uninterrupted, POINTS, POSITIONS)
    repo = CheckpointRepository(engine)
    old = new_engine(gas_model)
    before = run(old, POINTS[:2000], POSITIONS[:2000])
    repo.save({sid: {**rec, "log": "log-a"} for sid, rec in old.dirty_states().items()}, now=NOW)

    resumed = new_engine(gas_model)
    resumed.restore(repo.load(SENSORS))
    after = run(resumed, POINTS[2000:], POSITIONS[2000:])
    assert sorted(before + after, key=key) == sorted(expected, key=key)
    assert all(r.snapshot is not None for r in resumed.checkpoint()), "the first new checkpoint is whole"


def test_points_and_states_round_trip_bit_for_bit() -> None:
    points = [(T0 + i, float(v), float("nan") if i % 3 else 0.25 * i) for i, v in enumerate(range(-5, 20))]
    learned = decode_points(encode_points(points))
    assert learned.ts_ns.tolist() == [p[0] for p in points]
    assert learned.values.tolist() == [p[1] for p in points]
    assert np.array_equal(learned.multivariate, [p[2] for p in points], equal_nan=True)

    state = {"a": [0.1 * i for i in range(50)], "b": [[1, 2], list(range(30))], "c": None, "d": [1.0, 2]}
    # Long lists that are not all floats or all ints stay lists, their items as they were.
    state |= {"e": [1.0] * 10 + [2], "f": [True] * 10, "g": [*range(10), [3.5] * 9]}
    back = state_codec.decode(state_codec.encode(state))
    assert back["a"].tolist() == state["a"] and back["b"][1].tolist() == state["b"][1]
    assert back["b"][0] == [1, 2] and back["c"] is None and back["d"] == [1.0, 2]
    assert back["e"] == state["e"] and [type(v) for v in back["e"]] == [float] * 10 + [int]
    assert back["f"] == state["f"] and all(v is True for v in back["f"])
    assert back["g"][:10] == list(range(10)) and back["g"][10].tolist() == [3.5] * 9
    with pytest.raises(state_codec.StateDecodeError):
        state_codec.decode(b"not a state at all")
    with pytest.raises(state_codec.StateDecodeError):
        state_codec.decode(state_codec.encode(state)[:-8])  # an array cut short


@pytest.mark.parametrize("n", [1, 2, 9])
def test_a_delta_is_its_points_as_three_little_endian_columns(n: int) -> None:
    points = [(T0 + 10**9 * i + 7, 0.1 - 1.5 * i, float("nan") if i % 2 else 0.5 * i) for i in range(n)]
    ts, values, mv = (
        np.array([p[k] for p in points], dtype) for k, dtype in enumerate(("<i8", "<f8", "<f8"))
    )
    assert encode_points(points) == ts.tobytes() + values.tobytes() + mv.tobytes()
    assert len(encode_points(points)) == n * POINT_BYTES and encode_points([]) == b""


@pytest.mark.parametrize("sizes", [[3], [1, 1], [2, 0, 5, 1], [0], [0, 0], [40, 1, 17]])
def test_deltas_read_as_one_run_are_each_delta_in_order(sizes: list[int]) -> None:
    rng = np.random.default_rng(len(sizes))
    runs, at = [], 0
    for n in sizes:
        scores = np.where(rng.random(n) < 0.5, np.nan, rng.random(n))
        runs.append(
            [(T0 + 10**9 * (at + i) - 3, float(rng.normal()), float(s)) for i, s in enumerate(scores)]
        )
        at += n
    learned = decode_runs([encode_points(run) for run in runs])
    each = [decode_points(encode_points(run)) for run in runs]
    assert learned.ts_ns.dtype == np.int64
    assert learned.ts_ns.tolist() == [t for d in each for t in d.ts_ns.tolist()]
    assert learned.values.tolist() == [v for d in each for v in d.values.tolist()]
    assert np.array_equal(
        learned.multivariate, np.concatenate([d.multivariate for d in each]), equal_nan=True
    )
    with pytest.raises(state_codec.StateDecodeError):
        decode_runs([encode_points(runs[0]), b"\0" * (POINT_BYTES + 1)])


def test_equal_rows_of_numbers_come_back_as_one_table_and_other_rows_as_they_were() -> None:
    state = {
        "table": [[0.5 * i, -1.0 / (i + 1)] for i in range(6)],  # 12 floats in rows of two
        "ints": [[i, i * i] for i in range(4)],
        "few": [[1.0, 2.0]] * 3,  # 6 numbers: fewer than an array is worth
        "mixed": [[1.0, 2]] * 5,  # an int among floats: kept, each as it was
        "ragged": [[1.0] * 4, [2.0] * 5],
        "empty": [[]] * 48,
    }
    back = state_codec.decode(state_codec.encode(state))
    assert back["table"].shape == (6, 2) and back["table"].dtype == np.float64
    assert back["table"].tolist() == state["table"]
    assert back["ints"].dtype == np.int64 and back["ints"].tolist() == state["ints"]
    assert (
        back["few"] == state["few"] and back["ragged"] == state["ragged"] and back["empty"] == state["empty"]
    )
    assert back["mixed"] == state["mixed"] and [type(v) for v in back["mixed"][0]] == [float, int]


def test_a_seasonal_table_packed_whole_restores_a_detector_that_continues_exactly() -> None:
    """Three whole days in: every slot keeps two days, so the snapshot holds the seasonal table
    (and today's sums) as 2-D arrays, which the rebuild takes as they are."""
    rng = np.random.default_rng(3)
    ts = 86400.0 * 16204 + 300.0 * np.arange(3 * 288 + 400)  # from a midnight
    values = 5.0 + np.sin(ts / 13751.0) + 0.1 * rng.standard_normal(len(ts))
    det = RecordEnsembleDetector()
    det.score_batch(ts[: 3 * 288], values[: 3 * 288])
    back = state_codec.decode(state_codec.encode(det.get_state()))
    assert isinstance(back["season"], np.ndarray) and back["season"].shape == (48, 2)
    assert isinstance(back["season_today"], np.ndarray)
    restored = RecordEnsembleDetector.from_state(back)
    assert json.dumps(restored.get_state()) == json.dumps(det.get_state())
    later = slice(3 * 288, None)
    assert np.array_equal(
        restored.score_batch(ts[later], values[later]).scores,
        det.score_batch(ts[later], values[later]).scores,
    )


def test_short_lists_of_other_scalars_are_kept_as_they_were() -> None:
    """Lists that are not runs of one number type: numpy scalars, tuples, containers among scalars."""
    state = {"a": [np.float64(2.5), 1, "x", None], "b": (1, 2.0), "c": [[0.5] * 8, {"d": list(range(8))}, 3]}
    back = state_codec.decode(state_codec.encode(state))
    assert back["a"] == [2.5, 1, "x", None] and back["b"] == [1, 2.0]
    assert back["c"][0].tolist() == [0.5] * 8 and back["c"][1]["d"].tolist() == list(range(8))
    assert back["c"][2] == 3


def test_series_that_start_together_do_not_all_snapshot_at_one_checkpoint() -> None:
    """300 series, one reading each per batch, a checkpoint after every batch: their snapshots spread
    out. With one budget for all, every series snapshotted at the same checkpoint, and that
    checkpoint held the worker for the whole city's encoding."""
    scorer = ScoringEngine(CATALOG, detector=DETECTOR, signal_threshold=0.9)
    rng = np.random.default_rng(7)
    sensors = [f"gas-stagger-{n:03d}" for n in range(300)]
    per_checkpoint = []
    for step in range(600):
        at = T0 + step * STEP
        points = [Point(s, "gas", "g-oldtown-01", at, 1.5 + 0.1 * rng.random()) for s in sensors]
        scorer.score(points, [(0, step * len(sensors) + i) for i in range(len(sensors))])
        per_checkpoint.append(sum(r.snapshot is not None for r in scorer.checkpoint()))
    assert per_checkpoint[0] == len(sensors)  # each series' first checkpoint is whole
    later = per_checkpoint[1:]
    assert sum(later) >= 2 * len(sensors)  # every series snapshots again, more than once, in 600 points
    assert max(later) <= len(sensors) // 10, f"{max(later)} of {len(sensors)} series snapshotted at once"


def stored_sizes(engine: sa.Engine) -> dict[str, tuple[int, int]]:
    """Each snapshot's size as PostgreSQL stores it, beside its length."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT sensor_id, pg_column_size(snapshot), octet_length(snapshot) FROM detector_snapshots"
            )
        ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_snapshots_are_stored_as_written_not_compressed_on_postgresql(postgres_url: str) -> None:
    """Compressing a snapshot cost the server three times the CPU of storing it (migration 0010).

    Zeros compress to almost nothing, so a compressed value, in the table or on its way through the
    staging table (which keeps a value's compressed form), would show as a smaller stored size.
    """
    engine = db.connect(postgres_url)
    try:
        repo = CheckpointRepository(engine)
        health = {"fault": None}
        blobs = {"s-1": bytes(20_000), "s-2": bytes(9_000)}
        first = [SeriesCheckpoint(sid, DETECTOR, (0, 1), 1, health, snapshot=b) for sid, b in blobs.items()]
        repo.save_series(first, log="log-a", now=NOW)
        # The second save replaces the rows: the path through ON CONFLICT ... DO UPDATE.
        blobs["s-1"] = bytes(30_000)
        repo.save_series([first[0]._replace(learned=2, snapshot=blobs["s-1"])], log="log-a", now=NOW)

        assert stored_sizes(engine) == {sid: (len(b), len(b)) for sid, b in blobs.items()}
        loaded = repo.load(blobs)
        assert {sid: rec["state"]["snapshot"] for sid, rec in loaded.items()} == blobs
    finally:
        engine.dispose()
