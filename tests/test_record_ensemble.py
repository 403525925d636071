"""Behaviour of the default ``recordensemble`` detector on situations an EOC cares about.

Thresholds come from the service's settings, so these tests check the detector
at the operating point the service ships.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from config.settings import Settings
from models.decision import DecisionRule, SeriesDecision, decide_series
from models.detectors.record_ensemble import RecordEnsembleDetector
from models.detectors.record_kernel import CHANNELS
from models.engine import ScoringEngine
from models.registry import DEFAULT_DETECTOR, detector_class

THRESHOLD = Settings().signal_threshold
STEP_S = 300.0
DAY = 288  # points per day at five-minute sampling


def _ts(n: int) -> np.ndarray:
    return 1.4e9 + STEP_S * np.arange(n)


def _noise(n: int, seed: int = 3) -> np.ndarray:
    return 20 + np.random.default_rng(seed).normal(0, 1, n)


def _daily(n: int, seed: int = 5) -> np.ndarray:
    """A daily rhythm (a peak of 40 over a base of 10 in the afternoon) with small noise."""
    t = np.arange(n)
    peak = np.exp(-(((t % DAY) - 200) ** 2) / (2 * 20.0**2))
    return 10 + 40 * peak + np.random.default_rng(seed).normal(0, 0.5, n)


def _signals(values: np.ndarray, det: RecordEnsembleDetector | None = None) -> list[int]:
    """Indices the service would signal for a series without kind, at the default threshold."""
    ts = _ts(len(values))
    scores = (det or RecordEnsembleDetector()).score_batch(ts, values).scores
    rule = DecisionRule(threshold=THRESHOLD)
    decisions = decide_series(SeriesDecision(), rule, ts, values, scores, np.full(len(values), np.nan))
    return [i for i, d in enumerate(decisions) if d.signal]


def test_is_the_default_of_the_registry_and_the_service() -> None:
    assert DEFAULT_DETECTOR == "recordensemble" == Settings().detector
    assert detector_class(DEFAULT_DETECTOR) is RecordEnsembleDetector


def test_warmup_scores_zero_and_evidence_is_finite() -> None:
    values = _noise(400)
    out = RecordEnsembleDetector().score_batch(_ts(400), values)
    assert np.all(out.scores[:200] == 0.0)
    for key, arr in out.evidence.items():
        assert np.all(np.isfinite(arr)), key


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_spike_is_signalled_and_plain_noise_is_not(sign: float) -> None:
    values = _noise(3000)
    values[2500] += sign * 12
    assert 2500 in _signals(values)


def test_plain_noise_sets_a_chance_record_about_once_a_week() -> None:
    """Seven channels, each a 1-in-3000 chance record per point, less the 8 % margin past the record:
    three weeks of Gaussian noise (6,000 points after a full history) give a few signals, not dozens.
    The kind's minimum deviation, not the detector, keeps such noise from the EOC."""
    counts = [len([i for i in _signals(_noise(9000, seed)) if i >= 3000]) for seed in range(5)]
    assert np.mean(counts) <= 4, counts


def test_a_repeated_fault_stands_out_as_the_first_did() -> None:
    """A pump's second identical fault is signalled: the first one raised the record only a little."""
    values = _noise(4000, seed=9)
    for start in (2000, 2600, 3200):
        values[start : start + 5] += 9
    signalled = _signals(values)
    for start in (2000, 2600, 3200):
        assert any(start <= i < start + 5 for i in signalled), (start, signalled)


def test_a_missing_daily_peak_is_seen_by_the_seasonal_channel() -> None:
    values = _daily(DAY * 12)
    day = DAY * 10
    values[day + 150 : day + 250] = 10 + np.random.default_rng(1).normal(0, 0.5, 100)
    out = RecordEnsembleDetector().score_batch(_ts(len(values)), values)
    hits = np.flatnonzero(out.scores[day + 150 : day + 250] >= THRESHOLD)
    assert hits.size, "no signal while the afternoon peak was missing"
    first = day + 150 + int(hits[0])
    assert CHANNELS[int(out.evidence["channel"][first])] in {"seasonal", "level", "density"}
    assert out.evidence["seasonal"][first] > 5


def test_the_seasonal_baseline_is_per_day_whatever_the_sampling_rate() -> None:
    """At one reading a minute (30 per half-hour slot), the slot's baseline is still the last days'
    means, so an evening that stays at its afternoon level stands out on the seasonal channel."""
    per_day = 1440
    n = per_day * 9
    t = np.arange(n)
    evening = ((t % per_day) >= 1080) & ((t % per_day) < 1260)  # 18:00-21:00 is busy every day
    values = np.where(evening, 50.0, 10.0) + np.random.default_rng(4).normal(0, 0.5, n)
    day = per_day * 8
    values[day + 1260 : day + 1300] = 50 + np.random.default_rng(5).normal(0, 0.5, 40)  # stays busy
    ts = 1.4e9 - 1.4e9 % 86400 + 60.0 * t  # midnight UTC at row 0
    out = RecordEnsembleDetector().score_batch(ts, values)
    late = slice(day + 1260, day + 1300)
    assert out.evidence["seasonal"][late].max() > 10
    assert out.scores[late].max() >= THRESHOLD


def test_an_abrupt_drop_inside_the_usual_range_is_seen_by_the_jump_channel() -> None:
    """A slow daily swing between 60 and 100; a sudden fall from 95 to 65 stays inside that range."""
    n = DAY * 10
    t = np.arange(n)
    values = 80 + 20 * np.sin(2 * np.pi * t / DAY) + np.random.default_rng(2).normal(0, 0.2, n)
    at = DAY * 8 + DAY // 4  # the daily maximum
    values[at:] -= 30
    values[at + 40 :] += 30  # back after 40 points
    out = RecordEnsembleDetector().score_batch(_ts(n), values)
    assert out.scores[at] >= THRESHOLD
    assert CHANNELS[int(out.evidence["channel"][at])] == "jump"


def test_a_lasting_change_of_regime_becomes_the_new_normal() -> None:
    values = _noise(6000)
    values[2000:] = 3 * (values[2000:] - 20) + 50  # a new level, three times noisier
    signalled = [i for i in _signals(values) if i >= 2000]
    assert signalled and signalled[0] < 2010
    # Absorbed within a few hundred points: without that, a signal would follow every hold-off.
    assert not [i for i in signalled if 2200 <= i < 5000], signalled


def test_state_round_trips_through_json_mid_day() -> None:
    values = _daily(DAY * 9)
    ts = _ts(len(values))
    whole = RecordEnsembleDetector().score_batch(ts, values)
    head = RecordEnsembleDetector()
    head.score_batch(ts[:1777], values[:1777])
    resumed = RecordEnsembleDetector.from_state(json.loads(json.dumps(head.get_state())))
    rest = resumed.score_batch(ts[1777:], values[1777:])
    np.testing.assert_array_equal(rest.scores, whole.scores[1777:])
    for key in whole.evidence:
        np.testing.assert_array_equal(rest.evidence[key], whole.evidence[key][1777:])


@pytest.mark.parametrize(
    "kwargs",
    [{"window": 5, "level_len": 10}, {"warmup": 2}, {"clip": 0.5}, {"bins": 0}, {"z_floor": 0.0}],
)
def test_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RecordEnsembleDetector(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- in the scoring engine


def _substation(days: int, *, seed: int = 6) -> np.ndarray:
    """Substation load (%): an evening peak 20 points above the night, well past the kind's 15 %
    minimum deviation from the median, with 1.5 % noise."""
    t = np.arange(days * DAY)
    evening = np.cos(2 * np.pi * ((t % DAY) / DAY - 19 / 24))
    return 50 + 20 * evening + np.random.default_rng(seed).normal(0, 1.5, len(t))


def _engine_signals(values: np.ndarray) -> list[int]:
    """Indices the engine signals for a power-load sensor of the demo city, at default settings."""
    from store.schemas import Point
    from tests.factories import CATALOG

    start_ns = int(1.4e9 - 1.4e9 % 86400) * 10**9
    points = [
        Point("pl-oldtown-01", "power_load", "g-oldtown-06", start_ns + i * int(STEP_S) * 10**9, float(v))
        for i, v in enumerate(values)
    ]
    engine = ScoringEngine(CATALOG, detector=Settings().detector, signal_threshold=THRESHOLD)
    first_ns = {p.ts_ns: i for i, p in enumerate(points)}
    return [first_ns[s.ts_ns] for s in engine.score(points, [(0, i) for i in range(len(points))])]


def test_a_daily_cycle_is_learned_not_warned() -> None:
    """A series' statistics raise nothing before its first day is complete (a daily peak cannot be
    told from an anomaly before), and afterwards the minimum deviation is measured from what is
    usual at that hour: a week of an ordinary evening peak raises no signal at all."""
    assert _engine_signals(_substation(8)) == []


def test_an_unusual_load_at_night_is_signalled() -> None:
    values = _substation(8)
    night = 6 * DAY + 36  # 03:00 on day 7: load at its evening height, 40 % above the usual night
    values[night : night + 12] += 40
    signalled = _engine_signals(values)
    assert signalled and night <= signalled[0] < night + 12


def test_a_young_series_raises_no_anomaly_until_it_has_a_day() -> None:
    values = _noise(DAY + 100)
    values[250] += 30  # a huge spike, before the first day is complete
    values[DAY + 50] += 30  # the same on the second day
    ts = 1.4e9 - 1.4e9 % 86400 + STEP_S * np.arange(len(values))  # from midnight UTC
    scores = RecordEnsembleDetector().score_batch(ts, values).scores
    assert np.all(scores[:DAY] == 0.0)
    assert scores[DAY + 50] >= THRESHOLD


def test_read_only_input_uses_the_one_compiled_kernel() -> None:
    """A second array type would compile a second kernel, seconds inside a batch (the benchmark's
    corpus arrays are read-only)."""
    from models.detectors import record_kernel

    values = _noise(300)
    ts = _ts(300)
    RecordEnsembleDetector().score_batch(ts, values)
    compiled = len(record_kernel.score_points.signatures)
    values.flags.writeable = False
    ts.flags.writeable = False
    RecordEnsembleDetector().score_batch(ts, values)
    assert len(record_kernel.score_points.signatures) == compiled == 1


def test_a_channel_scores_only_once_its_record_has_its_own_history() -> None:
    """The seasonal channel has evidence only from the second day; compared then with an empty
    record it would call the first ordinary deviations records (white noise at one reading a
    minute signalled about 50 readings into its second day)."""
    n = 1440 + 100
    ts = 1.4e9 - 1.4e9 % 86400 + 60.0 * np.arange(n)
    for seed in range(5):
        values = 20 + np.random.default_rng(seed).normal(0, 1, n)
        out = RecordEnsembleDetector().score_batch(ts, values)
        early = np.flatnonzero(out.scores[1440:1540] >= THRESHOLD) + 1440
        assert not [i for i in early if CHANNELS[int(out.evidence["channel"][i])] == "seasonal"], seed
