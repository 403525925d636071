"""Behaviour of the default ``recorddev`` detector on situations an EOC cares about."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.detectors.record_deviation import RecordDeviationDetector

ALARM = 0.65


def _noise(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return 1.4e9 + 300.0 * np.arange(n), 20 + rng.normal(0, 1, n)


def test_warmup_scores_zero() -> None:
    ts, values = _noise(150)
    scores = RecordDeviationDetector().score_batch(ts, values).scores
    assert np.all(scores == 0.0)


def test_spike_after_warmup_scores_high() -> None:
    ts, values = _noise(1500)
    values[1200] += 15
    out = RecordDeviationDetector().score_batch(ts, values)
    assert out.scores[1200] >= ALARM
    assert out.evidence_at(1200)["deviation"] > 10


def test_downward_spike_scores_high_too() -> None:
    ts, values = _noise(1500)
    values[1200] -= 15
    assert RecordDeviationDetector().score_batch(ts, values).scores[1200] >= ALARM


def test_steady_noise_rarely_alarms() -> None:
    ts, values = _noise(6000)
    scores = RecordDeviationDetector().score_batch(ts, values).scores
    # Records of pure noise get rarer with time; a handful in 6000 points is the ceiling.
    assert (scores >= 0.8).sum() <= 3


def test_level_shift_is_detected_once_then_absorbed() -> None:
    ts, values = _noise(3000)
    values[1500:] += 4  # 4 sigma: no single point is extreme, the level is
    scores = RecordDeviationDetector().score_batch(ts, values).scores
    assert scores[1500:1520].max() >= ALARM
    assert (scores[2200:] >= ALARM).sum() == 0  # new level became the baseline


def test_state_keeps_parameters() -> None:
    det = RecordDeviationDetector(window=300)
    clone = RecordDeviationDetector.from_state(json.loads(json.dumps(det.get_state())))
    assert clone.params == det.params


def test_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError):
        RecordDeviationDetector(z_floor=0.0)


def test_evidence_is_finite_even_during_warmup() -> None:
    ts, values = _noise(400)
    out = RecordDeviationDetector().score_batch(ts, values)
    for key, arr in out.evidence.items():
        assert np.all(np.isfinite(arr)), key
