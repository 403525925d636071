"""The decision step: hold-off, threshold, minimum deviation, warning lines with hysteresis, reminders."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models.decision import NO_LINE, DecisionRule, SeriesDecision, decide_series

NAN = math.nan
GAS = DecisionRule(min_deviation=5.0, lines=(10.0, 20.0, 35.0, 50.0), repeat_s=900.0)


def run(rule: DecisionRule, points: list[tuple[float, float, float, float]]) -> list[tuple[float, bool, int]]:
    """(ts, value, score, baseline) rows through a fresh series: (held score, signal, level) rows."""
    state = SeriesDecision()
    return [(d.held_score, d.signal, d.level) for d in (state.decide(rule, *p) for p in points)]


def test_an_alarm_holds_the_next_scores_at_zero_for_the_hold_off() -> None:
    rule = DecisionRule(hold_points=3, threshold=0.9)
    out = run(rule, [(float(t), 1.0, s, NAN) for t, s in enumerate([0.95, 0.99, 0.97, 0.96, 0.95])])
    # Three points counting the signal: two held (0.99 is not twice as strong as 0.95); the fourth
    # signals again.
    assert [held for held, _, _ in out] == [0.95, 0.0, 0.0, 0.96, 0.0]
    assert [signal for _, signal, _ in out] == [True, False, False, True, False]


def test_a_score_below_the_threshold_holds_nothing() -> None:
    out = run(
        DecisionRule(hold_points=60, threshold=0.9),
        [(0.0, 1.0, 0.85, NAN), (1.0, 1.0, 0.95, NAN), (2.0, 1.0, 0.99, NAN)],
    )
    assert [signal for _, signal, _ in out] == [False, True, False]


def test_a_wobble_too_small_to_matter_does_not_hide_the_gas_anomaly_after_it() -> None:
    """The review's case: a 2.6 %LEL wobble scored high but is below the 5 %LEL minimum deviation;
    a 9 %LEL anomaly ten points later must still be signalled."""
    rule = DecisionRule(threshold=0.66, min_deviation=5.0, hold_points=60)
    points = [(60.0 * i, 1.0, 0.05, 1.0) for i in range(20)]
    points[5] = (300.0, 3.6, 0.97, 1.0)
    points[15] = (900.0, 10.0, 0.8, 1.0)
    out = run(rule, points)
    assert [i for i, (_, signal, _) in enumerate(out) if signal] == [15]


@settings(max_examples=300, deadline=None)
@given(
    scores=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=80),
    threshold=st.floats(0.05, 0.99),
    hold=st.integers(1, 100),
)
def test_a_sub_threshold_score_never_hides_a_later_anomaly(
    scores: list[float], threshold: float, hold: int
) -> None:
    """Whatever scored below the threshold before it, the first score at or above it is a signal."""
    rule = DecisionRule(threshold=threshold, hold_points=hold)
    below = [min(s, threshold * 0.999) for s in scores]
    out = run(rule, [(float(i), 1.0, s, NAN) for i, s in enumerate([*below, max(threshold, 0.999)])])
    assert [i for i, (_, signal, _) in enumerate(out) if signal] == [len(below)]


def test_a_much_stronger_anomaly_breaks_through_the_hold_off() -> None:
    # Strengths -log(1 - s): 0.7 -> 1.20; 0.75 -> 1.39 (held); 0.95 -> 3.00 >= 2 x 1.20: a new signal,
    # which now holds the next: 0.96 -> 3.22 < 6.0.
    rule = DecisionRule(threshold=0.66, hold_points=60)
    out = run(rule, [(float(i), 1.0, s, NAN) for i, s in enumerate([0.7, 0.75, 0.95, 0.96])])
    assert [signal for _, signal, _ in out] == [True, False, True, False]


def test_an_anomaly_smaller_than_the_minimum_deviation_is_not_a_signal() -> None:
    rule = DecisionRule(min_deviation=5.0, hold_points=0)
    out = run(rule, [(0.0, 5.0, 0.99, 1.5), (1.0, 7.0, 0.99, 1.5)])
    assert [signal for _, signal, _ in out] == [False, True]


def test_entering_and_rising_are_signals_falling_is_not() -> None:
    values = [5.0, 12.0, 22.0, 55.0, 30.0, 5.0]
    out = run(GAS, [(60.0 * i, v, 0.0, NAN) for i, v in enumerate(values)])
    assert [level for _, _, level in out] == [NO_LINE, 0, 1, 3, 1, NO_LINE]
    assert [signal for _, signal, _ in out] == [False, True, True, True, False, False]


def test_a_value_hovering_on_a_line_enters_it_once() -> None:
    # Hysteresis: a tenth of the 10 %LEL gap to yellow; 19.5 stays inside the band of the 20 line.
    values = [21.0, 19.5, 20.5, 19.2, 20.4, 17.0, 20.1]
    out = run(GAS, [(60.0 * i, v, 0.0, NAN) for i, v in enumerate(values)])
    assert [signal for _, signal, _ in out] == [True, False, False, False, False, False, True]


def test_staying_past_a_line_reminds_once_per_interval_of_event_time() -> None:
    out = run(GAS, [(300.0 * i, 25.0, 0.0, NAN) for i in range(13)])  # an hour at 5-minute steps
    assert [i for i, (_, signal, _) in enumerate(out) if signal] == [0, 3, 6, 9, 12]


def test_a_late_point_does_not_turn_the_clock_back() -> None:
    state = SeriesDecision()
    assert state.decide(GAS, 1000.0, 25.0, 0.0, NAN).signal
    assert not state.decide(GAS, 100.0, 25.0, 0.0, NAN).signal
    assert state.clock_s == 1000.0
    assert state.decide(GAS, 1900.0, 25.0, 0.0, NAN).signal


def test_state_round_trips_through_json_and_resumes_identically() -> None:
    rng = np.random.default_rng(4)
    ts = 300.0 * np.arange(400)
    values = 15.0 + 10.0 * rng.standard_normal(400)
    scores = rng.random(400)
    baselines = np.full(400, 15.0)
    whole = decide_series(SeriesDecision(), GAS, ts, values, scores, baselines)
    first = SeriesDecision()
    head = decide_series(first, GAS, ts[:150], values[:150], scores[:150], baselines[:150])
    resumed = SeriesDecision.from_state(json.loads(json.dumps(first.get_state())))
    tail = decide_series(resumed, GAS, ts[150:], values[150:], scores[150:], baselines[150:])
    assert head + tail == whole
    assert json.dumps(SeriesDecision().get_state())  # a fresh state is valid JSON too
