"""Behaviour of the ``recordrarity`` detector on situations an EOC cares about."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.detectors.recordrarity import CHANNELS, RecordRarityDetector
from models.registry import detector_class

ALARM = 0.65


def _noise(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return 1.4e9 + 300.0 * np.arange(n), 20 + rng.normal(0, 1, n)


def _square_wave(n: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Daily two-state series (idle 20, busy 80 for a third of the day) with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    busy = (t % 288) >= 192
    return 1.4e9 + 300.0 * t, np.where(busy, 80.0, 20.0) + rng.normal(0, 1.5, n)


def test_is_registered_under_its_name() -> None:
    assert detector_class("recordrarity") is RecordRarityDetector


def test_warmup_scores_zero() -> None:
    ts, values = _noise(150)
    assert np.all(RecordRarityDetector().score_batch(ts, values).scores == 0.0)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_spike_after_warmup_scores_high(sign: float) -> None:
    ts, values = _noise(1500)
    values[1200] += sign * 15
    out = RecordRarityDetector().score_batch(ts, values)
    assert out.scores[1200] >= ALARM
    assert sign * out.evidence_at(1200)["deviation"] > 10


def test_steady_noise_rarely_alarms() -> None:
    ts, values = _noise(6000)
    scores = RecordRarityDetector().score_batch(ts, values).scores
    assert (scores >= 0.8).sum() <= 3


def test_level_between_the_usual_states_is_caught_by_rarity() -> None:
    """A stuck reading half-way between idle and busy is near the median yet never seen before."""
    ts, values = _square_wave(4000)
    values[3000:3100] = 50.0 + np.random.default_rng(9).normal(0, 0.3, 100)
    out = RecordRarityDetector().score_batch(ts, values)
    hits = np.flatnonzero(out.scores[3000:3100] >= ALARM)
    assert hits.size >= 1
    first = 3000 + int(hits[0])
    assert first < 3020
    assert abs(out.evidence_at(first)["deviation"]) < 3  # a z-score alone would not flag it
    assert CHANNELS[int(out.evidence_at(first)["channel"])] in {"level_rarity", "point_rarity"}


def test_regular_two_state_rhythm_does_not_alarm_after_learning() -> None:
    ts, values = _square_wave(4000)
    scores = RecordRarityDetector().score_batch(ts, values).scores
    assert (scores[1500:] >= ALARM).sum() <= 2


def test_level_shift_is_detected_once_then_absorbed() -> None:
    ts, values = _noise(5000)
    values[1500:] += 4
    scores = RecordRarityDetector().score_batch(ts, values).scores
    assert scores[1500:1520].max() >= ALARM
    assert (scores[3500:] >= ALARM).sum() == 0


def test_state_keeps_parameters_and_window_type() -> None:
    det = RecordRarityDetector(window=300, history=500, bandwidth=0.1)
    ts, values = _noise(400)
    det.score_batch(ts, values)
    clone = RecordRarityDetector.from_state(json.loads(json.dumps(det.get_state())))
    assert clone.params == det.params
    assert clone.score_one(ts[-1] + 300, 21.0) == det.score_one(ts[-1] + 300, 21.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"z_floor": 0.0}, {"rarity_floor": 0.0}, {"bandwidth": 0.0}, {"window": 5, "level_len": 10}],
)
def test_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RecordRarityDetector(**kwargs)


def test_evidence_is_finite_even_during_warmup() -> None:
    ts, values = _noise(400)
    out = RecordRarityDetector().score_batch(ts, values)
    for key, arr in out.evidence.items():
        assert np.all(np.isfinite(arr)), key
