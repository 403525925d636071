"""The streaming contract, checked for every registered detector.

Every detector the service can load must be look-ahead free, resumable from a
JSON checkpoint, and keep its scores in [0, 1] even on degenerate input, or
alerts and checkpoints silently diverge between a live consumer and a replay.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import models.detectors  # noqa: F401  (registers the built-in detectors)
from models.protocol import BatchScores, StreamingDetector
from models.registry import DETECTORS

NAMES = sorted(DETECTORS)


def _series(n: int = 1500, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Daily-seasonal noisy series with a spike, a level shift and a flat stretch."""
    rng = np.random.default_rng(seed)
    ts = 1.4e9 + 300.0 * np.arange(n)
    values = 10 + 3 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n)
    values[700] += 25
    values[900:1000] += 8
    values[1200:1300] = values[1199]
    return ts, values


def _fresh(name: str) -> StreamingDetector:
    return DETECTORS[name]()


@pytest.mark.parametrize("name", NAMES)
def test_implements_protocol(name: str) -> None:
    det = _fresh(name)
    assert isinstance(det, StreamingDetector)
    assert "_" not in DETECTORS[name].name


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_point_by_point(name: str) -> None:
    ts, values = _series()
    batch = _fresh(name).score_batch(ts, values)
    assert isinstance(batch, BatchScores)
    one = _fresh(name)
    looped = np.array([one.score_one(float(t), float(v)) for t, v in zip(ts, values, strict=True)])
    np.testing.assert_array_equal(batch.scores, looped)
    for key, arr in batch.evidence.items():
        assert len(arr) == len(values), key


@pytest.mark.parametrize("name", NAMES)
def test_prefix_scores_do_not_change_when_points_are_appended(name: str) -> None:
    ts, values = _series()
    full = _fresh(name).score_batch(ts, values).scores
    prefix = _fresh(name).score_batch(ts[:800], values[:800]).scores
    np.testing.assert_array_equal(full[:800], prefix)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cut", [1, 150, 701, 1250])
def test_checkpoint_round_trip_resumes_exactly(name: str, cut: int) -> None:
    ts, values = _series()
    uninterrupted = _fresh(name).score_batch(ts, values).scores
    first = _fresh(name)
    head = first.score_batch(ts[:cut], values[:cut]).scores
    state = json.loads(json.dumps(first.get_state(), allow_nan=False))
    resumed = DETECTORS[name].from_state(state)
    tail = resumed.score_batch(ts[cut:], values[cut:]).scores
    np.testing.assert_array_equal(np.concatenate([head, tail]), uninterrupted)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "values",
    [
        np.full(600, 3.0),
        np.zeros(600),
        np.full(600, 1e12),
        np.tile([0.0, 1.0], 300),
        np.concatenate([np.full(300, 5.0), np.full(300, 50.0)]),
        np.random.default_rng(1).standard_cauchy(600),
    ],
    ids=["constant", "zeros", "huge", "two-valued", "flat-then-jump", "cauchy"],
)
def test_scores_in_unit_interval_and_finite(name: str, values: np.ndarray) -> None:
    ts = 1.4e9 + 60.0 * np.arange(len(values))
    out = _fresh(name).score_batch(ts, values)
    assert np.all(np.isfinite(out.scores))
    assert np.all((out.scores >= 0.0) & (out.scores <= 1.0))


@pytest.mark.parametrize("name", NAMES)
def test_constant_series_never_alarms(name: str) -> None:
    values = np.full(800, 42.0)
    scores = _fresh(name).score_batch(1.4e9 + 60.0 * np.arange(800), values).scores
    assert np.all(scores < 0.5)
