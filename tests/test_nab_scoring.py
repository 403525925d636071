"""Pins citywarn's NAB scorer (``bench.nab_scoring``) on small cases worked out by hand.

Hand arithmetic uses one identity: NAB's scaled sigmoid
``S(x) = 2 / (1 + exp(5x)) - 1`` equals ``-tanh(2.5 x)``, so a detection at
relative window position ``p`` earns ``tanh(-2.5 p) / tanh(2.5)`` (``tanh(2.5)
= 0.98661``, the value at the window start) and a false positive ``d`` window
lengths after a window costs ``fpWeight * tanh(2.5 d)`` (the full ``fpWeight``
from ``d >= 3`` or with no earlier window).

Most cases use 40 rows, so rows 0-5 are probationary (``floor(0.15 * 40) =
6``), and one window on rows 10-13 (``W = 4`` rows): row ``i`` in it sits at
``p = -(13 - i + 1) / 4`` and a row ``j`` after it at ``d = (j - 13) / 3``.
Costs are the standard profile: TP 1, FP 0.11, FN 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import nab
from bench.nab_scoring import (
    DEFAULT_PROFILES,
    NEVER_FIRE,
    STANDARD,
    CorpusFile,
    LabelledSeries,
    best_threshold,
    load_corpus,
    normalised,
    null_score,
    perfect_score,
    probation_length,
    raw_score,
    score_all_profiles,
    threshold_curve,
)
from models.decision import DecisionRule, SeriesDecision, decide_series
from models.detectors.windowed_gaussian import WindowedGaussianDetector

N = 40
WINDOW = ((10, 13),)
# shared/ lies beside the checkout (and beside CI's clone).
NAB_DIR = Path(__file__).resolve().parents[2] / "shared" / "nab"


def series(
    detections: dict[int, float], n: int = N, windows: tuple[tuple[int, int], ...] = WINDOW
) -> LabelledSeries:
    """A file whose score is 0 except on the given rows."""
    scores = np.zeros(n)
    for row, score in detections.items():
        scores[row] = score
    return LabelledSeries("test/file.csv", scores, windows)


def score_at_one(detections: dict[int, float]) -> float:
    return raw_score(series(detections), STANDARD, threshold=1.0)


# --------------------------------------------------------------------------- single-file rules


def test_probationary_length() -> None:
    # floor(0.15 * 40) = 6; floor(0.15 * 15902) = 2385 is capped at 0.15 * 5000 = 750.
    assert probation_length(40) == 6
    assert probation_length(15902) == 750


def test_detection_at_window_start_earns_the_full_tp_weight() -> None:
    # Row 10: p = -(13 - 10 + 1) / 4 = -1, credit tanh(2.5) / tanh(2.5) = 1.
    assert score_at_one({10: 1.0}) == pytest.approx(1.0, abs=1e-12)


def test_late_detection_in_window_earns_less() -> None:
    # Row 13 (last row): p = -1/4, credit tanh(0.625) / tanh(2.5) = 0.554600 / 0.986614 = 0.562124.
    assert score_at_one({13: 1.0}) == pytest.approx(0.562124, abs=1e-6)


def test_missed_window_costs_the_fn_weight() -> None:
    # No detection: one missed window, -fnWeight = -1.
    assert score_at_one({}) == pytest.approx(-1.0, abs=1e-12)


def test_fp_just_after_a_window_is_cheaper_than_far_away() -> None:
    # Row 14: d = 1/3, cost 0.11 * tanh(0.8333) = 0.11 * 0.682262 = 0.075049; plus the miss (-1).
    assert score_at_one({14: 1.0}) == pytest.approx(-1.075049, abs=1e-6)
    # Row 30: d = 17/3 >= 3, the full 0.11; plus the miss.
    assert score_at_one({30: 1.0}) == pytest.approx(-1.11, abs=1e-12)
    # Row 7: after probation but before any window, the full 0.11; plus the miss.
    assert score_at_one({7: 1.0}) == pytest.approx(-1.11, abs=1e-12)


def test_probationary_detections_are_ignored() -> None:
    # Row 2 lies in rows 0-5: no FP charged, the window is still a miss: -1.
    assert score_at_one({2: 1.0}) == pytest.approx(-1.0, abs=1e-12)
    # A window wholly inside probation (rows 1-4) is not scored at all: raw 0, null 0.
    inside = series({}, windows=((1, 4),))
    assert raw_score(inside, STANDARD, 1.0) == 0.0
    assert null_score([inside], STANDARD) == 0.0


def test_only_the_first_detection_in_a_window_counts() -> None:
    # Rows 11 and 13 fire; the first, row 11, has p = -3/4:
    # tanh(1.875) / tanh(2.5) = 0.954045 / 0.986614 = 0.966989. Row 13 adds nothing (not an FP).
    assert score_at_one({11: 1.0, 13: 1.0}) == pytest.approx(0.966989, abs=1e-6)


def test_threshold_turns_scores_into_detections_inclusively() -> None:
    # Row 10 scores 0.7: detected at threshold 0.7 (score >= threshold) -> +1; not at 0.71 -> -1.
    s = series({10: 0.7})
    assert raw_score(s, STANDARD, 0.7) == pytest.approx(1.0, abs=1e-12)
    assert raw_score(s, STANDARD, 0.71) == pytest.approx(-1.0, abs=1e-12)


# --------------------------------------------------------------------------- threshold sweep


def two_files() -> list[LabelledSeries]:
    """File A: TP at the window start scoring 0.9, an FP at row 20 scoring 0.95, a far FP at 0.8.
    File B: a mid-window TP (row 12) scoring 0.5 and three far FPs (rows 30-32) scoring 0.6."""
    a = series({10: 0.9, 20: 0.95, 30: 0.8})
    b = series({12: 0.5, 30: 0.6, 31: 0.6, 32: 0.6})
    return [a, b]


def test_sweep_picks_the_threshold_best_for_the_whole_corpus() -> None:
    # Hand totals (A + B), with FP at row 20: d = 7/3, cost 0.11 * tanh(5.8333) = 0.109998,
    # and B's TP at row 12: p = -1/2, credit tanh(1.25) / tanh(2.5) = 0.848284 / 0.986614 = 0.859793:
    #   never fire: -1 + -1                                          = -2
    #   0.95: (-1 - 0.109998) + -1                                   = -2.109998
    #   0.9:  (1 - 0.109998) + -1                                    = -0.109998
    #   0.8:  (1 - 0.109998 - 0.11) + -1                             = -0.219998
    #   0.6:  0.780002 + (-1 - 3 * 0.11)                             = -0.549998
    #   0.5:  0.780002 + (0.859793 - 0.33)                           = 1.309794  <- best
    # (File A alone would prefer 0.9: the corpus, not each file, picks the threshold.)
    files = two_files()
    thresholds, raw = threshold_curve(files, STANDARD)
    assert list(thresholds[:6]) == [NEVER_FIRE, 0.95, 0.9, 0.8, 0.6, 0.5]
    expected = [-2.0, -2.109998, -0.109998, -0.219998, -0.549998, 1.309794]
    assert raw[:6] == pytest.approx(expected, abs=1e-6)
    assert best_threshold(files, STANDARD) == pytest.approx((0.5, 1.309794), abs=1e-6)
    assert best_threshold(files[:1], STANDARD) == pytest.approx((0.9, 0.890002), abs=1e-6)


def test_sweep_agrees_with_direct_scoring_at_every_threshold() -> None:
    # Not hand-computed: a consistency check of the O(N log N) sweep against the plain rules,
    # on random scores with many ties and windows straddling nothing in particular.
    rng = np.random.default_rng(3)
    files = [
        LabelledSeries(f"f{k}", rng.integers(0, 12, 300) / 10.0, ((60, 80), (150, 151), (200, 260)))
        for k in range(3)
    ]
    thresholds, raw = threshold_curve(files, STANDARD)
    for t, r in zip(thresholds, raw, strict=True):
        assert r == pytest.approx(sum(raw_score(f, STANDARD, t) for f in files), abs=1e-9)


# --------------------------------------------------------------------------- normalisation


def test_normalisation_maps_null_to_0_and_perfect_to_100() -> None:
    # 100 (raw - null) / (perfect - null) with null -2, perfect 2: raw 0 -> 50, -2 -> 0, 2 -> 100.
    assert normalised(0.0, -2.0, 2.0) == 50.0
    assert normalised(-2.0, -2.0, 2.0) == 0.0
    assert normalised(2.0, -2.0, 2.0) == 100.0


def test_null_and_perfect_scores_follow_the_profile() -> None:
    # Two files with one window each: null = 2 misses = -2 (standard), -4 with fnWeight 2;
    # perfect = 2 detections at window starts = +2.
    files = two_files()
    assert null_score(files, STANDARD) == -2.0
    assert null_score(files, DEFAULT_PROFILES["reward_low_FN_rate"]) == -4.0
    assert perfect_score(files, STANDARD) == pytest.approx(2.0, abs=1e-12)
    # Best raw 1.309794 (above) normalises to 100 * 3.309794 / 4 = 82.74485.
    result = score_all_profiles(files)["standard"]
    assert result.score == pytest.approx(82.74485, abs=1e-4)


# --------------------------------------------------------------------------- on the real corpus


needs_corpus = pytest.mark.skipif(not (NAB_DIR / "data").is_dir(), reason="NAB data not mounted")


@needs_corpus
def test_null_and_perfect_detectors_on_the_corpus() -> None:
    corpus = load_corpus(NAB_DIR / "data", NAB_DIR / "labels" / "combined_windows.json")
    null = [LabelledSeries(f.name, np.zeros(len(f.values)), f.windows) for f in corpus]
    perfect = []
    for f in corpus:
        scores = np.zeros(len(f.values))
        scores[[lo for lo, _ in f.windows]] = 1.0
        perfect.append(LabelledSeries(f.name, scores, f.windows))
    for result in score_all_profiles(null).values():
        assert result.score == 0.0
    for result in score_all_profiles(perfect).values():
        assert result.score == pytest.approx(100.0, abs=1e-9)


@needs_corpus
def test_cli_writes_nab_results_and_json(tmp_path: Path) -> None:
    data = tmp_path / "data" / "realAdExchange"
    data.mkdir(parents=True)
    name = "exchange-3_cpc_results.csv"
    (data / name).write_text((NAB_DIR / "data" / "realAdExchange" / name).read_text())
    labels = json.loads((NAB_DIR / "labels" / "combined_windows.json").read_text())
    label_path = tmp_path / "windows.json"
    label_path.write_text(json.dumps({f"realAdExchange/{name}": labels[f"realAdExchange/{name}"]}))
    out, report = tmp_path / "results", tmp_path / "report.json"
    argv = ["--data", str(tmp_path / "data"), "--labels", str(label_path), "--out", str(out)]
    assert nab.main([*argv, "--detector", "windowedgaussian", "--json", str(report)]) == 0
    written = (out / "windowedgaussian" / "realAdExchange" / f"windowedgaussian_{name}").read_text()
    source = (NAB_DIR / "data" / "realAdExchange" / name).read_text().splitlines()
    lines = written.splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert [line.rsplit(",", 1)[0] for line in lines[1:]] == source[1:]
    summary = json.loads(report.read_text())
    assert summary["detector"] == "windowedgaussian"
    assert set(summary["scores"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert summary["points_per_s"] > 0


# --------------------------------------------------------------------------- the baseline detector


def test_windowed_gaussian_batch_equals_loop_and_resumes_across_slides() -> None:
    # Small window and step so the window slides many times within the test series.
    rng = np.random.default_rng(5)
    values = np.asarray(rng.normal(10, 2, 300), dtype=np.float64)
    values[150] += 30
    ts = 1.4e9 + 60.0 * np.arange(300, dtype=np.float64)
    batch = WindowedGaussianDetector(window=50, step=7).score_batch(ts, values).scores
    one = WindowedGaussianDetector(window=50, step=7)
    looped = [one.score_one(float(t), float(v)) for t, v in zip(ts, values, strict=True)]
    np.testing.assert_array_equal(batch, looped)
    head = WindowedGaussianDetector(window=50, step=7)
    first = head.score_batch(ts[:123], values[:123]).scores
    resumed = WindowedGaussianDetector.from_state(json.loads(json.dumps(head.get_state())))
    rest = resumed.score_batch(ts[123:], values[123:]).scores
    np.testing.assert_array_equal(np.concatenate([first, rest]), batch)
    assert batch[150] == 1.0


def test_benchmark_scores_what_the_service_decides() -> None:
    """The harness passes detector scores through the service's decision step, hold-off included."""
    rng = np.random.default_rng(11)
    values = rng.normal(10.0, 1.0, 3000)
    values[2000:2005] += 25.0
    ts = np.arange(3000, dtype=np.float64) * 300.0
    corpus_file = CorpusFile(
        name="synthetic/spike.csv",
        timestamp_text=tuple(str(t) for t in ts),
        value_text=tuple(str(v) for v in values),
        ts_seconds=ts,
        values=values,
        windows=(),
    )
    raw, _ = nab.score_file("recordrarity", corpus_file, raw=True)
    held, _ = nab.score_file("recordrarity", corpus_file)
    rule = DecisionRule()
    expected = decide_series(SeriesDecision(), rule, ts, values, raw, np.full(len(values), np.nan))
    assert held.tolist() == [d.held_score for d in expected]
    first = int(np.argmax(raw >= rule.hold_trigger))
    assert raw[2000:2005].max() >= rule.hold_trigger
    assert np.all(held[first + 1 : first + rule.hold_points] == 0.0)
    assert raw[first + 1 : first + rule.hold_points].max() > 0.0
