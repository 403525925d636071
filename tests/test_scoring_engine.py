"""The scoring engine: signals from lines and anomalies, exact resume, replays learned once."""

from __future__ import annotations

import json

import numpy as np

from models.engine import ScoringEngine
from store.schemas import Point
from tests.factories import CATALOG

T0 = 1_790_000_000 * 10**9
STEP = 300 * 10**9


def gas_series(values: list[float], *, sensor: str = "gas-oldtown-01", start: int = 0) -> list[Point]:
    return [Point(sensor, "gas", "g-oldtown-05", T0 + (start + i) * STEP, v) for i, v in enumerate(values)]


def quiet(n: int, seed: int = 1) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(1.5 + 0.2 * rng.standard_normal(n))


def engine() -> ScoringEngine:
    return ScoringEngine(CATALOG, detector="recorddev", signal_threshold=0.9)


def positions(points: list[Point], first_offset: int = 0) -> list[tuple[int, int]]:
    return [(0, first_offset + i) for i in range(len(points))]


def test_quiet_series_gives_no_signal() -> None:
    points = gas_series(quiet(600))
    assert engine().score(points, positions(points)) == []


def test_entering_and_rising_past_warning_lines_are_signals_with_the_line() -> None:
    # 30 %LEL after 55 is below red but still past yellow: no new line, no reminder due yet.
    points = gas_series([*quiet(300), 12.0, 55.0, 30.0])
    blue, signal = engine().score(points, positions(points))
    assert (blue.level, blue.value, blue.evidence["warning_line"]) == ("blue", 12.0, 10.0)
    assert (signal.level, signal.value) == ("red", 55.0)
    assert (signal.hazard, signal.area) == ("gas_leak", "g-oldtown-05")
    assert signal.evidence["warning_line"] == 50.0


def test_small_anomaly_below_min_deviation_is_not_a_signal() -> None:
    # A jump from 1.5 to 5 %LEL is far outside the noise but below the kind's 5 %LEL
    # min_deviation and below the blue line: unusual, not dangerous.
    points = gas_series([*quiet(300), 5.0])
    assert engine().score(points, positions(points)) == []


def test_resume_from_checkpoint_scores_like_the_uninterrupted_run() -> None:
    values = [*quiet(400), 8.0, 9.5, *quiet(50, seed=2), 52.0, *quiet(50, seed=3)]
    points = gas_series(values)
    pos = positions(points)
    whole = engine()
    whole_signals = whole.score(points[:200], pos[:200]) + whole.score(points[200:], pos[200:])

    first = engine()
    first_signals = first.score(points[:200], pos[:200])
    saved = json.loads(json.dumps(first.dirty_states()))
    resumed = engine()
    resumed.restore(saved)
    resumed_signals = first_signals + resumed.score(points[200:], pos[200:])

    assert resumed_signals == whole_signals
    assert resumed.dirty_states() == whole.dirty_states()


def test_a_redelivered_batch_is_not_learned_twice() -> None:
    points = gas_series(quiet(300))
    once, twice = engine(), engine()
    once.score(points, positions(points))
    twice.score(points, positions(points))
    assert twice.score(points, positions(points)) == []
    assert once.dirty_states() == twice.dirty_states()


def test_a_trained_kind_model_scores_alongside_the_detector_and_resumes_exactly() -> None:
    from datetime import UTC, datetime

    from models.features import window_features
    from models.multivariate import fit_kind_model

    history = [window_features(np.arange(2000) * 300.0, np.array(quiet(2000, seed=s))) for s in range(4)]
    model = fit_kind_model(
        "gas",
        np.vstack(history),
        trained_from=datetime(2026, 1, 1, tzinfo=UTC),
        trained_to=datetime(2026, 2, 1, tzinfo=UTC),
    )
    points = gas_series([*quiet(400), 9.0])
    pos = positions(points)

    whole = engine()
    whole.set_kind_models({"gas": model})
    [signal] = whole.score(points, pos)
    assert signal.value == 9.0
    assert float(signal.evidence["multivariate"]) >= 0.999
    assert signal.evidence["multivariate_model"] == model.version

    first = engine()
    first.set_kind_models({"gas": model})
    first.score(points[:300], pos[:300])
    resumed = engine()
    resumed.set_kind_models({"gas": model})
    resumed.restore(json.loads(json.dumps(first.dirty_states())))
    assert resumed.score(points[300:], pos[300:]) == [signal]
