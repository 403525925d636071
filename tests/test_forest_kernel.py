"""The compiled forest gives sklearn's ``score_samples`` bit for bit, for every kind of forest and row."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from models.features import window_features
from models.forest_kernel import average_path_length, flatten_forest, node_depths


def _sensor_features(n_sensors: int, n: int, seed: int) -> np.ndarray:
    """Features of water-level-like series with spikes, a level shift, a flatline and a dropout."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_sensors):
        ts = 1.7e9 + 300.0 * np.arange(n) + rng.normal(0, 4, n)
        level = rng.uniform(1, 50)
        values = level + 0.1 * level * np.sin(2 * np.pi * ts / 86400) + rng.normal(0, 0.01 * level, n)
        values[n // 3] += 0.5 * level
        values[n // 2 :] += 0.05 * level
        values[2 * n // 3 : 2 * n // 3 + 30] = values[2 * n // 3]
        ts[3 * n // 4 :] += 3 * 3600.0
        rows.append(window_features(ts, values))
    return np.vstack(rows)


def _random_features(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)) * [1.0, 3.0, 0.5, 10.0, 1.0, 2.0]
    x[:, 4] = rng.random(n) < 0.05  # a binary column, like "flatline"
    return x


def _queries(train: np.ndarray, seed: int) -> np.ndarray:
    """Held-out rows plus the rows most likely to expose a rounding or comparison difference."""
    rng = np.random.default_rng(seed)
    lo, hi = train.min(axis=0), train.max(axis=0)
    uniform = rng.uniform(lo - (hi - lo), hi + (hi - lo), (2000, train.shape[1]))
    # float64 values a hair either side of float32 rounding boundaries, around the training values
    near = train[rng.integers(0, len(train), 500)]
    nudged = np.vstack([np.nextafter(near, np.inf), np.nextafter(near, -np.inf), near * (1 + 2e-8)])
    # (sklearn refuses values beyond float32's range, so the largest here stay inside it)
    extremes = np.array(
        [[50.0] * 6, [-50.0] * 6, [0.0] * 6, [-0.0] * 6, [3e38] * 6, [-3e38] * 6, [1e-46] * 6]
    )
    return np.vstack([uniform, train[:500], nudged, extremes])


def _with_thresholds(forest: IsolationForest, x: np.ndarray) -> np.ndarray:
    """Rows that sit exactly on split thresholds, on their float32 rounding, and one float32 above it."""
    rows = []
    for tree, columns in zip(forest.estimators_[:5], forest.estimators_features_[:5], strict=True):
        t = tree.tree_
        for node in np.flatnonzero(t.children_left != -1)[:20]:
            column = columns[t.feature[node]] if len(columns) != x.shape[1] else t.feature[node]
            for value in (
                t.threshold[node],
                np.float32(t.threshold[node]),
                np.nextafter(np.float32(t.threshold[node]), np.float32(np.inf)),
            ):
                row = x[node % len(x)].copy()
                row[column] = value
                rows.append(row)
    return np.array(rows)


FORESTS = [
    pytest.param(dict(n_estimators=100, max_samples=256), "sensor", id="production-defaults-sensor"),
    pytest.param(dict(n_estimators=100, max_samples=256), "random", id="production-defaults-random"),
    pytest.param(dict(n_estimators=1, max_samples=64), "sensor", id="one-tree"),
    pytest.param(dict(n_estimators=37, max_samples=1000), "sensor", id="deep-trees"),
    pytest.param(dict(n_estimators=25, max_samples=0.05), "random", id="float-max-samples"),
    pytest.param(dict(n_estimators=50, max_samples=128, max_features=0.5), "sensor", id="feature-subsets"),
    pytest.param(
        dict(n_estimators=50, max_samples=128, max_features=3, bootstrap=True), "random", id="bootstrap"
    ),
    pytest.param(dict(n_estimators=20, max_samples=2), "random", id="two-samples"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "data"), FORESTS)
def test_scores_equal_sklearns_bit_for_bit(params: dict[str, object], data: str) -> None:
    train = _sensor_features(4, 1500, seed=1) if data == "sensor" else _random_features(3000, seed=2)
    forest = IsolationForest(random_state=3, **params).fit(train)  # type: ignore[arg-type]
    flat = flatten_forest(forest)
    assert flat.anomaly_scores(train[:0]).shape == (0,)  # sklearn refuses empty input; KindModel skips it
    for x in (_queries(train, seed=4), _with_thresholds(forest, train), train[:1]):
        got = flat.anomaly_scores(x)
        want = -forest.score_samples(x)
        assert got.dtype == np.float64
        assert np.array_equal(got, want), np.max(np.abs(got - want), initial=0.0)


def test_nan_and_infinite_rows_go_where_sklearn_sends_them() -> None:
    """KindModel refuses non-finite rows before they get here; the kernel still follows sklearn's tree."""
    rng = np.random.default_rng(5)
    train = rng.standard_normal((2000, 6))
    train[rng.random(train.shape) < 0.1] = np.nan  # trees then learn where missing values go
    forest = IsolationForest(n_estimators=60, random_state=0).fit(train)
    sides = [t.tree_.missing_go_to_left[t.tree_.children_left != -1] for t in forest.estimators_]
    assert any(side.any() and not side.all() for side in sides)  # NaN goes left at some splits only
    x = rng.standard_normal((3000, 6))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[rng.random(x.shape) < 0.05] = np.inf
    x[rng.random(x.shape) < 0.05] = -np.inf
    assert np.array_equal(flatten_forest(forest).anomaly_scores(x), -forest.score_samples(x))


def test_path_lengths_match_sklearns_tables() -> None:
    """The per-node pieces equal the fitted forest's own tables (private: read in this test only)."""
    forest = IsolationForest(n_estimators=10, random_state=0).fit(_random_features(1000, seed=6))
    for tree, depths, c in zip(
        forest.estimators_, forest._decision_path_lengths, forest._average_path_length_per_tree, strict=True
    ):
        t = tree.tree_
        assert np.array_equal(node_depths(t.children_left, t.children_right), depths)
        assert np.array_equal(average_path_length(t.n_node_samples), c)
    assert average_path_length(np.array([0, 1, 2, 3])).tolist()[:3] == [0.0, 0.0, 1.0]


def test_wrong_width_is_refused() -> None:
    forest = IsolationForest(n_estimators=3, random_state=0).fit(_random_features(300, seed=7))
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        flatten_forest(forest).anomaly_scores(np.zeros((4, 5)))


def test_every_count_of_rows_left_over_from_the_lanes_is_scored() -> None:
    """Rows walk eight at a time; 1 to 17 rows leave every remainder for the one-row walk."""
    train = _random_features(1000, seed=6)
    forest = IsolationForest(n_estimators=30, random_state=0).fit(train)
    flat = flatten_forest(forest)
    for n in range(1, 18):
        x = _queries(train, seed=n)[:n]
        assert np.array_equal(flat.anomaly_scores(x), -forest.score_samples(x)), n
