"""Behaviour both record-ratio detectors share through their base class, tested once for each."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.detectors.record_base import RecordDetectorBase
from models.detectors.record_deviation import RecordDeviationDetector
from models.detectors.recordrarity import RecordRarityDetector

ALARM = 0.65
DETECTORS = [RecordDeviationDetector, RecordRarityDetector]


def _noise(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return 1.4e9 + 300.0 * np.arange(n), 20 + rng.normal(0, 1, n)


@pytest.mark.parametrize("cls", DETECTORS)
def test_detectors_only_score_a_repeat_alarm_is_not_held(cls: type[RecordDetectorBase]) -> None:
    # Holding alarms after one is the decision step's job (tests/test_decision.py).
    ts, values = _noise(1500)
    values[1000] += 20
    values[1010] += 40
    out = cls().score_batch(ts, values)
    assert out.scores[1000] >= ALARM
    assert out.scores[1010] >= ALARM


@pytest.mark.parametrize("cls", DETECTORS)
def test_scale_invariance(cls: type[RecordDetectorBase]) -> None:
    ts, values = _noise(1500)
    values[1100] += 12
    a = cls().score_batch(ts, values).scores
    b = cls().score_batch(ts, values * 1e6 - 3e7).scores
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("cls", DETECTORS)
def test_missing_reading_scores_zero_and_is_not_learned(cls: type[RecordDetectorBase]) -> None:
    ts, values = _noise(600)
    det = cls()
    det.score_batch(ts[:500], values[:500])
    before = json.dumps(det.get_state())
    assert det.score_one(ts[500], float("nan")) == 0.0
    assert json.dumps(det.get_state()) == before
