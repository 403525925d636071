"""The per-kind IsolationForest: features without look-ahead, calibrated scores, safe round trips."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from models.features import (
    FEATURE_NAMES,
    _row_medians,
    history_needed,
    stacked_window_features,
    window_features,
)
from models.multivariate import CALIBRATION_POINTS, MIN_SAMPLES, KindModel, fit_kind_model, range_excess

STEP_S = 300.0
T0 = 1.7e9
FROM = datetime(2024, 1, 1, tzinfo=UTC)
TO = datetime(2024, 1, 8, tzinfo=UTC)
Series = tuple[np.ndarray, np.ndarray, float]


def _sensor(n: int, seed: int) -> Series:
    """One water-level-like sensor: its own level, daily cycle and noise; timestamps jitter a little."""
    rng = np.random.default_rng(seed)
    ts = T0 + STEP_S * np.arange(n) + rng.normal(0, 4, n)
    level = rng.uniform(1, 50)
    amp = rng.uniform(0.05, 0.3) * level
    noise = amp * rng.uniform(0.05, 0.15)
    phase = rng.uniform(0, 2 * np.pi)
    values = level + amp * np.sin(2 * np.pi * ts / 86400 + phase) + rng.normal(0, noise, n)
    return ts, values, noise


def _training_features(n_sensors: int = 6, n: int = 2016) -> np.ndarray:
    return np.vstack([window_features(*_sensor(n, seed)[:2]) for seed in range(n_sensors)])


@pytest.fixture(scope="module")
def model() -> KindModel:
    return fit_kind_model("water_level", _training_features(), trained_from=FROM, trained_to=TO)


@pytest.fixture(scope="module")
def held_out() -> Series:
    return _sensor(2000, seed=100)  # a sensor the model never saw


# --- features ---------------------------------------------------------------------------------------


def test_features_have_one_finite_row_per_point_and_zero_warmup() -> None:
    ts, values, _ = _sensor(500, seed=1)
    feats = window_features(ts, values, window=12)
    assert feats.shape == (500, len(FEATURE_NAMES))
    assert np.isfinite(feats).all()
    assert np.all(feats[: history_needed(12)] == 0.0)
    assert np.any(feats[12:] != 0.0)


def test_short_and_empty_series_are_all_normal() -> None:
    assert window_features(np.arange(5.0), np.ones(5)).tolist() == [[0.0] * len(FEATURE_NAMES)] * 5
    assert window_features(np.empty(0), np.empty(0)).shape == (0, len(FEATURE_NAMES))


def test_features_of_a_prefix_do_not_change_when_points_are_appended() -> None:
    ts, values, noise = _sensor(600, seed=2)
    values[300] += 20 * noise  # a spike must not leak into the features of the points before it
    values[450:480] = values[450]  # nor a flatline
    full = window_features(ts, values)
    for cut in (1, 12, 13, 299, 300, 301, 460, 599):
        np.testing.assert_array_equal(window_features(ts[:cut], values[:cut]), full[:cut])


def test_features_are_unit_free() -> None:
    ts, values, _ = _sensor(400, seed=3)
    np.testing.assert_allclose(window_features(ts, values * 1000.0), window_features(ts, values), atol=1e-9)


def test_features_reject_bad_input() -> None:
    ts, values, _ = _sensor(50, seed=4)
    values[10] = np.nan
    with pytest.raises(ValueError, match="finite"):
        window_features(ts, values)
    with pytest.raises(ValueError, match="equal length"):
        window_features(ts[:-1], values)
    with pytest.raises(ValueError, match="window"):
        window_features(ts, np.ones(50), window=2)


@pytest.mark.parametrize("window", [3, 12, 30])
def test_stacked_features_compute_only_kept_rows_and_change_no_value(window: int) -> None:
    """A live batch (the window as context, one new point) and every odd segment, bit for bit."""
    rng = np.random.default_rng(window)
    segments = []
    for _ in range(400):
        n = window + 1 if rng.random() < 0.5 else int(rng.integers(0, 3 * window))
        ts = 1.7e9 + np.cumsum(np.round(rng.exponential(300.0, n)))  # rounding leaves some zero gaps
        values = 10.0 ** rng.uniform(-6, 6) * (rng.uniform(-10, 10) + rng.standard_normal(n))
        if n > window + 5 and rng.random() < 0.3:
            values[2 : window + 5] = values[2]  # a flatline
        context = window if n == window + 1 else int(rng.integers(0, n + 3))  # sometimes past the end
        segments.append((ts, values, context))
    segments.append((np.empty(0), np.empty(0), 0))
    stacked = stacked_window_features(segments, window=window)
    expected = np.vstack([window_features(ts, v, window=window)[context:] for ts, v, context in segments])
    assert np.array_equal(stacked, expected) and np.array_equal(np.signbit(stacked), np.signbit(expected))
    assert np.count_nonzero(stacked.any(axis=1)) > 200


def test_stacked_features_check_every_segment() -> None:
    ts, values, _ = _sensor(40, seed=6)
    bad = values.copy()
    bad[3] = np.inf  # in the context: it would still reach a kept row's window
    with pytest.raises(ValueError, match="finite"):
        stacked_window_features([(ts, values, 12), (ts, bad, 39)])
    with pytest.raises(ValueError, match="equal length"):
        stacked_window_features([(ts, values[:-1], 12)])
    assert stacked_window_features([]).shape == (0, len(FEATURE_NAMES))


_EDGY = st.one_of(
    st.floats(allow_nan=False, width=64),  # every finite magnitude, and both infinities
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e308, -1e308]),  # ties, signed zeros, sums that overflow
)


@settings(max_examples=300, deadline=None)
@given(rows=st.integers(1, 6).flatmap(lambda m: st.integers(1, 14).flatmap(
    lambda w: arrays(np.float64, (m, w), elements=_EDGY))))  # fmt: skip
def test_row_medians_are_numpys_medians(rows: np.ndarray) -> None:
    """The features' medians (sorted, not partitioned) are np.median's, so trained models see the same rows.

    Equal as numbers: where a row's middle holds both 0.0 and -0.0 the two may pick different
    signs of zero, which compare equal, and so take the same branch of every tree.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # two huge middles overflow alike
        assert np.array_equal(_row_medians(rows), np.median(rows, axis=1), equal_nan=True)


# --- scores -----------------------------------------------------------------------------------------


def test_normal_held_out_windows_score_low(model: KindModel, held_out: Series) -> None:
    ts, values, _ = held_out
    scores = model.score_series(ts, values)
    assert scores.shape == values.shape
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert np.median(scores[12:]) < 0.6
    assert np.mean(scores[12:] > 0.99) < 0.03  # calibrated: about 1 % of normal windows


def _spike(ts: np.ndarray, v: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, slice]:
    v[1000] += 10 * noise
    return ts, v, slice(1000, 1001)


def _dip(ts: np.ndarray, v: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, slice]:
    v[1000] -= 10 * noise
    return ts, v, slice(1000, 1001)


def _level_shift(ts: np.ndarray, v: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, slice]:
    v[1000:] += 8 * noise
    return ts, v, slice(1000, 1003)


def _flatline(ts: np.ndarray, v: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, slice]:
    v[1000:1100] = v[1000]  # stuck sensor: the same reading for eight hours
    return ts, v, slice(1000 + 12, 1100)


def _dropout(ts: np.ndarray, v: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray, slice]:
    keep = np.r_[0:1000, 1036 : len(ts)]  # three hours without data; scored when the sensor returns
    return ts[keep], v[keep], slice(1000, 1001)


@pytest.mark.parametrize("inject", [_spike, _dip, _level_shift, _flatline, _dropout])
def test_anomalies_score_high(
    model: KindModel,
    held_out: Series,
    inject: Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray, slice]],
) -> None:
    ts, values, noise = held_out
    ts, values, where = inject(ts.copy(), values.copy(), noise)
    scores = model.score_series(ts, values)
    assert scores[where].max() > 0.95
    assert np.median(scores[12:900]) < 0.6  # untouched stretch stays calm


def test_flatline_is_seen_even_though_training_never_had_one(model: KindModel) -> None:
    assert "flatline" in model.metrics["constant_features"]


def test_score_is_batch_shaped_and_checks_its_input(model: KindModel) -> None:
    assert model.score(np.empty((0, len(FEATURE_NAMES)))).shape == (0,)
    with pytest.raises(ValueError, match="shape"):
        model.score(np.zeros((3, len(FEATURE_NAMES) + 1)))
    with pytest.raises(ValueError, match="shape"):
        model.score(np.zeros(len(FEATURE_NAMES)))


def test_non_finite_rows_are_refused_before_the_forest(model: KindModel) -> None:
    for bad in (np.nan, np.inf, -np.inf):
        rows = np.zeros((3, len(FEATURE_NAMES)))
        rows[1, 2] = bad
        with pytest.raises(ValueError, match="finite"):
            model.score(rows)


@pytest.mark.parametrize(("n_estimators", "max_samples"), [(100, 256), (10, 64), (150, 2000)])
def test_forest_scores_and_calibration_are_sklearns_bit_for_bit(
    n_estimators: int, max_samples: int, held_out: Series
) -> None:
    """The compiled forest replaces ``score_samples`` without moving any score by one bit."""
    feats = _training_features(n_sensors=3, n=1200)
    fitted = fit_kind_model(
        "gas", feats, trained_from=FROM, trained_to=TO, n_estimators=n_estimators, max_samples=max_samples
    )
    ts, values, noise = held_out[0], held_out[1].copy(), held_out[2]
    values[1000] += 10 * noise
    values[1500:1600] = values[1500]
    window = window_features(ts, values)
    probe = np.vstack([window, feats[:500], 3.0 * window[-200:]])  # normal, trained-on, out-of-range
    guard = fitted.params["range_weight"] * range_excess(probe, fitted.feature_range)
    assert np.any(guard > 0)
    assert np.array_equal(fitted.raw_scores(probe), -fitted.estimator.score_samples(probe) + guard)

    raw = np.sort(-fitted.estimator.score_samples(feats))
    positions = np.round(np.linspace(0, len(raw) - 1, min(CALIBRATION_POINTS, len(raw)))).astype(np.intp)
    assert np.array_equal(fitted.calibration, raw[positions])


def test_the_compiled_forest_always_belongs_to_the_estimator(model: KindModel, held_out: Series) -> None:
    """Derived, never stored: a loaded model builds its own, and a swapped estimator gets a new one."""
    probe = window_features(*held_out[:2])
    restored = KindModel.from_bytes(model.to_bytes())
    assert restored.kernel is not None and restored.kernel.source is restored.estimator
    other = fit_kind_model("water_level", _training_features(2, 600), trained_from=FROM, trained_to=TO)
    swapped = dataclasses.replace(model, estimator=other.estimator)
    assert swapped.kernel is not None and swapped.kernel.source is other.estimator
    forest_only = dataclasses.replace(swapped, params=model.params | {"range_weight": 0.0})
    assert np.array_equal(forest_only.raw_scores(probe), -other.estimator.score_samples(probe))


# --- training, persistence, metadata ----------------------------------------------------------------


def test_same_random_state_gives_same_scores(held_out: Series) -> None:
    feats = _training_features(n_sensors=2, n=600)
    probe = window_features(*held_out[:2])
    a = fit_kind_model("gas", feats, trained_from=FROM, trained_to=TO, random_state=7)
    b = fit_kind_model("gas", feats, trained_from=FROM, trained_to=TO, random_state=7)
    np.testing.assert_array_equal(a.score(probe), b.score(probe))


def test_too_little_history_is_refused_clearly() -> None:
    feats = _training_features(n_sensors=1, n=MIN_SAMPLES - 1)
    with pytest.raises(ValueError, match=rf"'rain'.*{MIN_SAMPLES - 1} feature rows.*at least {MIN_SAMPLES}"):
        fit_kind_model("rain", feats, trained_from=FROM, trained_to=TO)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fit_kind_model("rain", _training_features(1, 400), trained_from=datetime(2024, 1, 1), trained_to=TO)


def test_bytes_round_trip_scores_identically(model: KindModel, held_out: Series) -> None:
    restored = KindModel.from_bytes(model.to_bytes())
    probe = window_features(*held_out[:2])
    np.testing.assert_array_equal(restored.score(probe), model.score(probe))
    assert restored.describe() == model.describe()
    assert restored.trained_from == FROM and restored.trained_to == TO


def test_from_bytes_refuses_foreign_or_damaged_bytes(model: KindModel) -> None:
    with pytest.raises(ValueError, match="magic"):
        KindModel.from_bytes(b"\x80\x04not ours")
    data = bytearray(model.to_bytes())
    data[-10] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        KindModel.from_bytes(bytes(data))


def test_describe_is_json_and_says_what_was_trained(model: KindModel) -> None:
    info = json.loads(json.dumps(model.describe()))
    assert info["kind"] == "water_level"
    assert info["version"].startswith("water_level-") and len(info["version"]) == len("water_level-") + 14
    assert info["n_samples"] == model.n_samples == 6 * 2016
    assert info["trained_from"] == FROM.isoformat()
    assert info["feature_names"] == list(FEATURE_NAMES)
    assert 0.005 <= info["metrics"]["fraction_flagged"] <= 0.015
    assert info["calibration_points"] <= 2000
    assert "estimator" not in info
