"""``pass_quiet``: a run it takes in one step leaves the state exactly as the point-by-point step would."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models.decision import DecisionRule, SeriesDecision, decide_series, pass_quiet

RULES = [
    DecisionRule(hold_points=5, threshold=0.9, min_deviation=1.0, repeat_s=30.0),
    DecisionRule(hold_points=5, lines=(10.0, 20.0, 35.0, 50.0), repeat_s=30.0),
    DecisionRule(hold_points=5, lines=(5.0, 3.0, 2.0, 1.0), above=False, repeat_s=30.0),
    DecisionRule(hold_points=5, threshold=0.0, repeat_s=30.0),  # a held score (0) is at the threshold
]

run = st.lists(
    st.tuples(
        st.floats(0.0, 60.0),  # seconds forward (or back: late points) from the previous one
        st.floats(-5.0, 60.0),
        st.one_of(st.floats(0.0, 0.89), st.floats(0.85, 1.0), st.floats(-1.0, -0.1), st.just(math.nan)),
    ),
    min_size=1,
    max_size=12,
)


def split(points: list[tuple[float, float, float]], start: float) -> tuple[np.ndarray, ...]:
    ts = start + np.cumsum([p[0] for p in points]) * np.where(np.arange(len(points)) % 4 == 3, -1, 1)
    return ts, np.array([p[1] for p in points]), np.array([p[2] for p in points])


@settings(max_examples=400, deadline=None)
@given(rule_index=st.integers(0, len(RULES) - 1), runs=st.lists(run, min_size=1, max_size=6))
def test_runs_taken_at_once_or_point_by_point_give_the_same_signals_and_state(
    rule_index: int, runs: list[list[tuple[float, float, float]]]
) -> None:
    rule = RULES[rule_index]
    stepped, quick = SeriesDecision(), SeriesDecision()
    start = 0.0
    taken_at_once = 0
    for points in runs:
        ts, values, scores = split(points, start)
        start = float(ts.max())
        nan = np.full(len(ts), np.nan)
        expected = [d.signal for d in decide_series(stepped, rule, ts, values, scores, nan)]
        if pass_quiet(quick, rule, ts, values, scores):
            taken_at_once += 1
            assert not any(expected), "a run taken at once held a signal"
        else:
            got = [d.signal for d in decide_series(quick, rule, ts, values, scores, nan)]
            assert got == expected
        assert quick == stepped


def test_a_quiet_run_moves_only_the_count_and_the_clock() -> None:
    state = SeriesDecision(seen=3, clock_s=100.0)
    ts, values, scores = np.array([90.0, 130.0, 120.0]), np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.5, 0.2])
    assert pass_quiet(state, RULES[1], ts, values, scores)
    assert state == SeriesDecision(seen=6, clock_s=130.0)


def test_a_run_that_crosses_a_line_scores_high_or_holds_a_line_is_not_taken_at_once() -> None:
    quiet = (np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array([0.1, 0.2]))
    assert not pass_quiet(SeriesDecision(), RULES[1], quiet[0], np.array([1.0, 10.0]), quiet[2])
    assert not pass_quiet(SeriesDecision(), RULES[2], quiet[0], np.array([6.0, 5.0]), quiet[2])
    assert not pass_quiet(SeriesDecision(), RULES[0], quiet[0], quiet[1], np.array([0.1, 0.9]))
    assert not pass_quiet(SeriesDecision(), RULES[0], quiet[0], quiet[1], np.array([0.1, math.nan]))
    assert not pass_quiet(SeriesDecision(held_level=0), RULES[1], *quiet)
    untouched = SeriesDecision(held_level=0)
    pass_quiet(untouched, RULES[1], *quiet)
    assert untouched == SeriesDecision(held_level=0)


def test_a_run_held_at_a_threshold_of_zero_is_not_taken_at_once() -> None:
    """Held scores are 0, which a threshold of 0 counts as an anomaly, whatever the scores were."""
    rule, ts = RULES[3], np.array([1.0, 2.0])
    state = SeriesDecision()
    assert [
        d.signal for d in decide_series(state, rule, ts, np.ones(2), np.zeros(2), np.full(2, np.nan))
    ] == [
        True,
        True,
    ]
    assert not pass_quiet(state, rule, ts + 2, np.ones(2), np.full(2, -0.5))
