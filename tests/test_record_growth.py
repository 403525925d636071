"""``recordensemble``'s buffers grow with what a series has seen, and scores do not notice.

The reference is the detector as it was before its buffers grew: every buffer
allocated at its parameter's full size before the first point (``_allocate``
with the full sizes). Growing ones must give the same scores and evidence, bit
for bit, across every doubling, past the full window, and through checkpoint
round trips taken while they grow.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest

from models.detectors.record_ensemble import RecordEnsembleDetector

STEP_S = 300.0
SMALL = {"window": 64, "level_len": 10, "density_len": 5, "history": 50, "warmup": 20, "bins": 6, "days": 3}
TINY = {"window": 9, "level_len": 9, "warmup": 4, "history": 1, "residuals": 1, "days": 1, "bins": 1}
# level_len above warmup: the first level medians read ring slots no value has reached yet (zeros).
LONG_LEVEL = {
    "window": 100,
    "level_len": 30,
    "warmup": 8,
    "history": 40,
    "residuals": 9,
    "days": 2,
    "bins": 4,
}


def _preallocated(params: dict[str, Any]) -> RecordEnsembleDetector:
    """A detector holding every buffer at full size from the start, as before they grew."""
    det = RecordEnsembleDetector(**params)
    p = det.params
    det._allocate(
        window=p["window"],
        jumps=p["window"],
        residuals=p["residuals"],
        records=p["history"] + 1,
        season_days=p["days"],
    )
    return det


def _series(kind: str, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ts = 1.4e9 + STEP_S * t
    if kind == "daily":
        values = 10 + 40 * np.exp(-(((t % 288) - 200) ** 2) / 800.0) + rng.normal(0, 0.5, n)
    elif kind == "falling":  # each point a new minimum: record deques as long as the history
        values = -0.01 * t + rng.normal(0, 0.001, n)
    elif kind == "gappy":  # missing readings, and timestamps jumping back and forth across days
        ts = 1.4e9 + np.cumsum(rng.normal(3000, 9000, n))
        values = np.sin(t / 7) + rng.normal(0, 0.3, n)
        values[rng.random(n) < 0.1] = np.nan
    else:
        values = 20 + rng.normal(0, 1, n)
    return ts, values


def _run(
    det: RecordEnsembleDetector, ts: np.ndarray, values: np.ndarray, cuts: list[int], restore_at: set[int]
) -> tuple[np.ndarray, RecordEnsembleDetector]:
    """Scores and evidence rows of ``values`` fed in the batches ``cuts`` makes, JSON round trips between."""
    out = []
    for start, end in itertools.pairwise(cuts):
        if start in restore_at:
            det = RecordEnsembleDetector.from_state(json.loads(json.dumps(det.get_state())))
        batch = det.score_batch(ts[start:end], values[start:end])
        out.append(np.vstack([batch.scores, *batch.evidence.values()]))
    return np.hstack(out), det


def _cuts(n: int, seed: int) -> list[int]:
    """Batch bounds: single points first (every doubling inside a call), then uneven batches."""
    rng = np.random.default_rng(seed)
    return sorted({*range(0, 40), *rng.integers(40, n, 40).tolist(), n})


@pytest.mark.parametrize(
    ("params", "kind", "n"),
    [
        ({}, "daily", 5200),  # past the full window (4000), history (3000) and residuals (2000)
        ({}, "falling", 3200),
        (SMALL, "noise", 700),
        (SMALL, "falling", 400),
        (SMALL, "gappy", 900),
        (LONG_LEVEL, "noise", 400),
        (
            {"window": 9, "level_len": 9, "warmup": 4, "history": 1, "residuals": 1, "days": 1, "bins": 1},
            "noise",
            300,
        ),
    ],
)
def test_growing_buffers_score_bit_for_bit_as_preallocated_ones(
    params: dict[str, Any], kind: str, n: int
) -> None:
    ts, values = _series(kind, n)
    reference, full = _run(_preallocated(params), ts, values, [0, n], set())
    cuts = _cuts(n, seed=n)
    for restore_at in (set(), set(cuts[1::5])):
        got, grown = _run(RecordEnsembleDetector(**params), ts, values, cuts, restore_at)
        assert np.array_equal(got.view(np.int64), reference.view(np.int64)), restore_at  # NaN == NaN too
        assert json.dumps(grown.get_state()) == json.dumps(full.get_state())


def test_a_checkpoint_of_a_preallocated_detector_restores_and_continues_alike() -> None:
    """Checkpoints written before buffers grew restore into growing ones (the format is unchanged)."""
    ts, values = _series("daily", 4600, seed=4)
    old = _preallocated({})
    old.score_batch(ts[:1000], values[:1000])
    restored = RecordEnsembleDetector.from_state(json.loads(json.dumps(old.get_state())))
    grown = RecordEnsembleDetector()
    grown.score_batch(ts[:1000], values[:1000])
    # Sized as a detector that grew to the 1,000 values it holds, not to the window's 4,000.
    assert restored._win_ring.shape == grown._win_ring.shape and grown._win_ring.shape[0] < 4000
    a = old.score_batch(ts[1000:], values[1000:])
    b = restored.score_batch(ts[1000:], values[1000:])
    assert np.array_equal(a.scores, b.scores)
    assert json.dumps(old.get_state()) == json.dumps(restored.get_state())


@pytest.mark.parametrize("learned", [3, 40, 300, 1000, 5000])
def test_a_restored_detector_takes_its_next_point_without_growing(learned: int) -> None:
    """Restored buffers have a growing detector's room: sized to the values held, each was full,
    and the first point after every restore reallocated them all."""
    ts, values = _series("daily", learned + 1, seed=5)
    det = RecordEnsembleDetector()
    det.score_batch(ts[:learned], values[:learned])
    restored = RecordEnsembleDetector.from_state(json.loads(json.dumps(det.get_state())))
    state_arrays = restored._i, restored._f
    a = det.score_batch(ts[learned:], values[learned:])
    b = restored.score_batch(ts[learned:], values[learned:])
    assert restored._i is state_arrays[0] and restored._f is state_arrays[1]  # no reallocation
    assert np.array_equal(a.scores, b.scores)


def _held_bytes(det: RecordEnsembleDetector) -> int:
    return sum(getattr(det, name).nbytes for name in RecordEnsembleDetector.__slots__ if name.startswith("_"))


def test_memory_follows_what_the_series_has_seen_up_to_the_preallocated_size() -> None:
    ts, values = _series("daily", 6000, seed=2)
    det = RecordEnsembleDetector()
    det.score_batch(ts[:2], values[:2])
    young = _held_bytes(det)
    det.score_batch(ts[2:300], values[2:300])
    day = _held_bytes(det)
    det.score_batch(ts[300:], values[300:])
    full = _held_bytes(det)
    preallocated = _held_bytes(_preallocated({}))
    assert young < 6 * 1024 < preallocated / 50, (young, preallocated)
    assert young < day < full <= preallocated, (young, day, full, preallocated)
    # Never beyond the parameters' sizes: the full window is the window, a deque at most history + 1.
    assert det._win_ring.shape == det._jump_ring.shape == (4000,)
    assert det._res_ring.shape == (2000,) and det._season.shape == (48, 7)
    assert det._rec_values.shape[1] <= 3001


def test_the_parameters_of_one_set_are_shared_not_copied_per_series() -> None:
    a, b = RecordEnsembleDetector(), RecordEnsembleDetector()
    assert a.params is b.params and a._p_int is b._p_int
    assert RecordEnsembleDetector(window=50).params["window"] == 50 and a.params["window"] == 4000
    assert a.get_state()["params"] is not a.params  # a checkpoint owns its copy


def test_a_state_lists_every_ring_row_oldest_first_after_its_rows_wrapped() -> None:
    """Season slots and record deques are gathered row by row from where each row's head is.

    Nine days at five-minute steps with short record deques: every seasonal slot has wrapped
    past ``days`` and the deques have expired entries, so heads are spread over the rows.
    """
    det = RecordEnsembleDetector(history=40, days=3, bins=24)
    ts = 300.0 * np.arange(9 * 288)
    det.score_batch(ts, np.sin(ts / 3600.0) + 0.01 * (np.arange(len(ts)) % 7))
    parts = det._parts()
    state = det.get_state()

    def row(ring: np.ndarray, head: int, n: int) -> list[Any]:
        return [ring[(head + i) % ring.shape[0]].item() for i in range(n)]

    season_meta = parts.season_meta.tolist()
    assert any(head for head, _, _ in season_meta), "some seasonal slot has wrapped"
    assert state["season"] == [row(parts.season[b], h, n) for b, (h, n, _) in enumerate(season_meta)]
    rec_meta = parts.rec_meta.tolist()
    assert any(head for head, *_ in rec_meta), "some record deque has expired entries"
    for ch, (head, n, count, run) in enumerate(rec_meta):
        saved = state["records"][ch]
        assert saved["values"] == row(parts.rec_values[ch], head, n)
        assert saved["index"] == row(parts.rec_index[ch], head, n)
        assert (saved["count"], saved["run"], saved["base"]) == (count, run, parts.rec_base[ch].item())
    resumed = RecordEnsembleDetector.from_state(json.loads(json.dumps(state)))
    later = ts[-1] + 300.0 * np.arange(1, 50)
    assert np.array_equal(
        resumed.score_batch(later, np.cos(later / 3600.0)).scores,
        det.score_batch(later, np.cos(later / 3600.0)).scores,
    )


@pytest.mark.parametrize("kind", ["daily", "noise", "falling"])
def test_a_replayed_batch_grows_its_windows_at_once_to_the_size_point_by_point_reaches(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore replays up to 256 logged points in one batch: the sorted windows grow once for all
    of them, not doubling after doubling, and end no larger than a live series' point by point."""
    ts, values = _series(kind, 556, seed=6)
    young = RecordEnsembleDetector()
    young.score_batch(ts[:300], values[:300])
    state = json.dumps(young.get_state())
    grows = 0
    grow = RecordEnsembleDetector._grow

    def counted(self: RecordEnsembleDetector, coming: int) -> bool:
        nonlocal grows
        grows += 1
        return grow(self, coming)

    monkeypatch.setattr(RecordEnsembleDetector, "_grow", counted)
    replayed, live = (RecordEnsembleDetector.from_state(json.loads(state)) for _ in range(2))
    replayed_scores = replayed.score_batch(ts[300:], values[300:]).scores
    in_one_batch, grows = grows, 0
    live_scores = [live.score_batch(ts[i : i + 1], values[i : i + 1]).scores[0] for i in range(300, 556)]
    assert in_one_batch < grows, (in_one_batch, grows)
    assert np.array_equal(replayed_scores, live_scores)
    assert _held_bytes(replayed) <= _held_bytes(live)
    assert json.dumps(replayed.get_state()) == json.dumps(live.get_state())


@pytest.mark.parametrize("kind", ["daily", "noise", "falling"])
@pytest.mark.parametrize("coming", [1, 37, 256])
def test_a_restore_told_the_points_to_come_sizes_its_windows_for_them_at_once(kind: str, coming: int) -> None:
    """``from_state(coming=n)`` (what a restore's replay passes) sizes the value and jump windows for
    the n points in one allocation: neither grows during the replay, the scores and the state are
    those of the series taking the points live, one by one, and it holds no more bytes than that."""
    ts, values = _series(kind, 300 + coming, seed=7)
    young = RecordEnsembleDetector()
    young.score_batch(ts[:300], values[:300])
    state = json.dumps(young.get_state())
    told = RecordEnsembleDetector.from_state(json.loads(state), coming=coming)
    live = RecordEnsembleDetector.from_state(json.loads(state))
    sizes = told._win_ring.shape, told._jump_ring.shape
    default = live._win_ring.shape, live._jump_ring.shape
    replayed = told.score_batch(ts[300:], values[300:]).scores
    assert (told._win_ring.shape, told._jump_ring.shape) == sizes  # room made before, none during
    one_by_one = [
        live.score_batch(ts[i : i + 1], values[i : i + 1]).scores[0] for i in range(300, 300 + coming)
    ]
    assert np.array_equal(replayed, one_by_one)
    assert json.dumps(told.get_state()) == json.dumps(live.get_state())
    assert _held_bytes(told) <= _held_bytes(live)
    if coming == 1:  # room for one point to come is what a restore always made
        assert sizes == default
