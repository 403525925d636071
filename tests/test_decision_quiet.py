"""``pass_quiet`` and ``signals_among``: what they take at once leaves the state exactly as the
point-by-point step would, and they find the same signals."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models.decision import DecisionRule, SeriesDecision, decide_series, pass_quiet, signals_among

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


long_run = st.lists(
    st.tuples(
        st.floats(0.0, 60.0),
        st.one_of(st.floats(-5.0, 9.0), st.floats(-5.0, 60.0)),  # mostly short of the lines
        st.one_of(
            st.floats(0.0, 0.89),
            st.floats(0.0, 0.89),
            st.floats(0.85, 1.0),
            st.floats(-1.0, -0.1),
            st.just(math.nan),
        ),
        st.one_of(st.floats(-10.0, 60.0), st.just(math.nan)),  # the baseline a deviation is measured from
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(
    rule_index=st.integers(0, len(RULES) - 1),
    runs=st.lists(long_run, min_size=1, max_size=4),
    held=st.integers(-1, 3),
)
def test_signals_among_a_run_are_decide_series_signals_and_leave_the_same_state(
    rule_index: int, runs: list[list[tuple[float, float, float, float]]], held: int
) -> None:
    rule = RULES[rule_index]
    held = held if rule.lines else -1
    stepped, skipping = SeriesDecision(held_level=held), SeriesDecision(held_level=held)
    start = 0.0
    for points in runs:
        ts, values, scores = split([p[:3] for p in points], start)
        baselines = np.array([p[3] for p in points])
        start = float(ts.max())
        expected = [(i, d) for i, d in enumerate(decide_series(stepped, rule, ts, values, scores, baselines))]
        got = signals_among(skipping, rule, ts, values, scores, baselines)
        assert repr(got) == repr([(i, d) for i, d in expected if d.signal])  # a NaN held score is equal
        assert skipping == stepped


def test_signals_among_a_long_quiet_run_with_one_loud_point_decides_that_point_alone() -> None:
    """The points either side of a score over the threshold move only the count and the clock."""
    rule, n = RULES[0], 200
    ts, values, scores = np.arange(n, dtype=float), np.zeros(n), np.full(n, 0.1)
    scores[150], values[150] = 0.95, 5.0
    state = SeriesDecision()
    signals = signals_among(state, rule, ts, values, scores, np.zeros(n))
    assert [i for i, _ in signals] == [150]
    assert state.seen == n and state.clock_s == n - 1 and state.last_anomaly == 150
