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
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench import nab
from bench.nab_cv import (
    GRID,
    SIGNALLED,
    ScoreTable,
    build_table,
    cross_validate,
    held_scores,
    signalled,
    signals_at,
)
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
    score_profile,
    threshold_curve,
)
from config.settings import Settings
from models.decision import DecisionRule, SeriesDecision, decide_series, strength
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


def strengths(scores: np.ndarray) -> np.ndarray:
    return np.array([strength(float(s)) for s in scores])


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
    raw, _ = nab.detector_scores(nab.default_detector(), corpus_file)
    rule = nab.service_rule(Settings())
    held = held_scores(corpus_file, raw, rule)
    expected = decide_series(SeriesDecision(), rule, ts, values, raw, np.full(len(values), np.nan))
    assert held.tolist() == [d.held_score for d in expected]
    assert raw[2000:2005].max() >= rule.threshold
    first = 2000 + int(np.argmax(held[2000:] >= rule.threshold))
    assert first < 2005
    # Held at 0 after the signal, but for a point twice as strong (the break-through).
    after = slice(first + 1, first + rule.hold_points)
    assert np.count_nonzero(raw[after]) > np.count_nonzero(held[after])
    kept = np.flatnonzero(held[after])
    assert np.all(strengths(raw[after][kept]) >= rule.escalation * strength(raw[first]))


# --------------------------------------------------------------------------- one operating point


def corpus_file(
    scores: dict[int, float], n: int = N, windows: tuple[tuple[int, int], ...] = WINDOW
) -> CorpusFile:
    """A flat series (values carry no information: NAB rules have no warning lines) of ``n`` rows."""
    ts = 1.4e9 + 300.0 * np.arange(n, dtype=np.float64)
    return CorpusFile(
        name="cat/file.csv",
        timestamp_text=tuple(str(t) for t in ts),
        value_text=("1.0",) * n,
        ts_seconds=ts,
        values=np.ones(n),
        windows=windows,
    )


def test_score_at_a_fixed_threshold_does_no_search() -> None:
    # two_files() at threshold 0.9: raw -0.109998 (hand totals above), not the optimum 1.309794:
    # normalised 100 (-0.109998 + 2) / 4 = 47.25005.
    result = score_profile(two_files(), STANDARD, threshold=0.9)
    assert result.threshold == 0.9
    assert result.raw == pytest.approx(-0.109998, abs=1e-6)
    assert result.score == pytest.approx(47.25005, abs=1e-4)
    assert score_all_profiles(two_files(), threshold=0.9)["standard"] == result


def test_service_rule_is_the_one_the_engine_builds_for_a_series_without_kind() -> None:
    rule = nab.service_rule(Settings(signal_threshold=0.8))
    assert rule == replace(DecisionRule(), threshold=0.8)
    assert rule.min_deviation == 0.0 and rule.lines == ()
    assert nab.service_rule(Settings()).threshold == Settings().signal_threshold


def test_default_settings_count_only_what_the_service_signals() -> None:
    # Row 10 (window start) scores 0.7, row 11 scores 0.95. At threshold 0.9, row 10 is no signal and
    # holds nothing, so row 11 is signalled: p = -3/4, credit 0.966989, normalised
    # 100 (0.966989 + 1) / 2 = 98.34945. A searched threshold of 0.7 would catch row 10 (100): the
    # optimised figure, not what the service at 0.9 does.
    f = corpus_file({10: 0.7, 11: 0.95})
    scores = np.zeros(N)
    scores[10], scores[11] = 0.7, 0.95
    rule = DecisionRule(threshold=0.9)
    assert np.flatnonzero(signalled(f, scores, rule)).tolist() == [11]
    at_default = LabelledSeries(f.name, signalled(f, scores, rule), f.windows)
    assert score_profile([at_default], STANDARD, threshold=SIGNALLED).score == pytest.approx(
        98.34945, abs=1e-4
    )
    raw_scores = LabelledSeries(f.name, scores, f.windows)
    assert score_profile([raw_scores], STANDARD).score == pytest.approx(100.0)


# --------------------------------------------------------------------------- cross-validation


def test_table_scores_each_threshold_as_the_service_would_signal_it() -> None:
    """The table's fast path (``signals_at``) must agree with the decision step, break-through included."""
    rng = np.random.default_rng(8)
    n = 400
    windows = ((100, 130), (250, 280))
    files = [corpus_file({}, n=n, windows=windows) for _ in range(2)]
    scores = [np.round(rng.random(n) ** 4, 3) for _ in files]  # mostly low, with ties
    thresholds = (0.9, 0.66, 0.6, 0.5)
    base = DecisionRule(hold_points=20)
    table = build_table(files, scores, thresholds, base, STANDARD)
    for k, t in enumerate(thresholds):
        rule = replace(base, threshold=t)
        for i, (f, s) in enumerate(zip(files, scores, strict=True)):
            np.testing.assert_array_equal(signals_at(s, t, rule), signalled(f, s, rule))
            signals = LabelledSeries(f.name, signalled(f, s, rule), f.windows)
            assert table.raw[k, i] == pytest.approx(raw_score(signals, STANDARD, SIGNALLED), abs=1e-12)
    assert len(set(table.raw[:, 0].round(9))) > 1  # the thresholds differ, so the check has teeth


def hand_table() -> ScoreTable:
    """One file per category; x, y, z hold one window each (null -1, perfect 1), n holds none.

    A (threshold 0.9) catches x and y, misses z; B (0.7) is middling on x and y and catches z.
    """
    return ScoreTable(
        thresholds=(0.9, 0.7),
        categories=("n", "x", "y", "z"),
        raw=np.array([[-0.3, 1.0, 1.0, -1.0], [-0.5, 0.0, 0.0, 1.0]]),
        null=np.array([0.0, -1.0, -1.0, -1.0]),
        perfect=np.array([0.0, 1.0, 1.0, 1.0]),
    )


def test_each_fold_is_scored_at_the_choice_made_without_it() -> None:
    # Fold x: train n, y, z: A -0.3 + 1 - 1 = -0.3 -> 100 (1.7 / 4) = 42.5; B -0.5 + 0 + 1 = 0.5 -> 62.5:
    #   B chosen; x at B: raw 0 -> 100 (0 + 1) / 2 = 50. Fold y: the same.
    # Fold z: train n, x, y: A 1.7 -> 92.5, B -0.5 -> 37.5: A chosen; z at A: raw -1 -> 0.
    # Fold n: train x, y, z: A 1 -> 100 (1 + 3) / 6 = 66.67, B 1 -> tie, the higher threshold (A) wins;
    #   n has no window, so its normalised score is undefined (None), raw -0.3.
    # Mean over the folds with windows: (50 + 50 + 0) / 3; pooled: (-0.3 + 0 + 0 - 1) -> 100 (1.7 / 6).
    table = hand_table()
    at_default = np.array([0.0, -1.0, 1.0, -1.0])
    cv = cross_validate(table, at_default)
    folds = {f.category: f for f in cv.folds}
    assert [f.category for f in cv.folds] == ["n", "x", "y", "z"]
    assert folds["x"].threshold == folds["y"].threshold == 0.7
    assert folds["z"].threshold == folds["n"].threshold == 0.9
    assert folds["x"].train_standard == pytest.approx(62.5)
    assert folds["x"].standard == pytest.approx(50.0)
    assert folds["z"].standard == pytest.approx(0.0)
    assert folds["n"].standard is None and folds["n"].raw == pytest.approx(-0.3)
    assert folds["y"].at_default == pytest.approx(100.0)
    assert cv.mean_standard == pytest.approx(100.0 / 3)
    assert cv.pooled_standard == pytest.approx(100.0 * 1.7 / 6)
    # On every file: A 0.7 -> 100 (0.7 + 3) / 6 = 61.67, B 0.5 -> 58.33: A.
    assert cv.in_sample == 0.9
    assert cv.in_sample_standard == pytest.approx(100.0 * 3.7 / 6)


def test_a_restricted_candidate_set_is_chosen_from_only() -> None:
    table = hand_table()
    only_b = cross_validate(table, np.zeros(4), thresholds=(0.7,))
    assert {f.threshold for f in only_b.folds} == {0.7}
    # x, y at B: 50 each; z at B: 100 (raw 1).
    assert only_b.mean_standard == pytest.approx(200.0 / 3)


def write_corpus(root: Path, layout: dict[str, int]) -> tuple[Path, Path]:
    """``layout``: category -> number of files; each file 1,500 noisy rows, a level shift in its one
    window (or none in a category named ``*NoAnomaly``)."""
    rng = np.random.default_rng(21)
    labels: dict[str, list[list[str]]] = {}
    stamps = np.datetime64("2015-01-01T00:00") + np.arange(1500) * np.timedelta64(5, "m")
    text = [str(t).replace("T", " ") + ":00" for t in stamps]
    for category, count in layout.items():
        (root / "data" / category).mkdir(parents=True)
        for k in range(count):
            values = rng.normal(50.0, 2.0, 1500)
            name = f"{category}/f{k}.csv"
            labels[name] = []
            if not category.endswith("NoAnomaly"):
                start = 600 + 150 * k
                values[start + 20 : start + 40] += 25.0
                labels[name] = [[text[start], text[start + 60]]]
            rows = [f"{t},{v:.3f}" for t, v in zip(text, values, strict=True)]
            (root / "data" / name).write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    (root / "labels.json").write_text(json.dumps(labels))
    return root / "data", root / "labels.json"


def test_cli_reports_default_settings_first_and_cross_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, labels = write_corpus(tmp_path, {"artA": 2, "artB": 2, "artNoAnomaly": 1})
    report = tmp_path / "report.json"
    argv = ["--data", str(data), "--labels", str(labels), "--out", str(tmp_path / "out")]
    assert nab.main([*argv, "--json", str(report), "--cv"]) == 0
    out = capsys.readouterr().out
    assert out.index("service's settings") < out.index("optimised")
    summary = json.loads(report.read_text())
    profiles = {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert set(summary["scores_at_default"]) == set(summary["scores"]) == profiles
    assert summary["settings"]["signal_threshold"] == Settings().signal_threshold
    cv = summary["cv"]
    assert summary["detector"] == Settings().detector
    assert [f["category"] for f in cv["folds"]] == ["artA", "artB", "artNoAnomaly"]
    assert cv["folds"][2]["standard"] is None
    assert cv["mean_standard"] == pytest.approx(
        (cv["folds"][0]["standard"] + cv["folds"][1]["standard"]) / 2, abs=1e-3
    )
    for fold in cv["folds"]:
        assert fold["threshold"] in GRID
    # A fold at the service's threshold scores its category as the service does.
    for fold in cv["folds"]:
        if fold["threshold"] == Settings().signal_threshold and fold["standard"] is not None:
            assert fold["standard"] == fold["standard_at_default"]
