"""Health taken many readings at once (a restore's replay, a live batch) ends as reading by reading would."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models.sensor_health import HealthRule, SeriesHealth

START_NS = 1_790_000_000_000_000_000
STEP_NS = 60_000_000_000

RULES = st.builds(
    HealthRule,
    valid_min=st.just(0.0),
    valid_max=st.just(10.0),
    stuck_after_s=st.sampled_from([None, 60.0, 300.0]),
    steady_at=st.sampled_from([(), (0.0,), (3.0,)]),
    out_of_range_run=st.integers(1, 3),
)
# Few distinct values, so runs of equal readings, steady values and out-of-range ones all occur.
VALUES = st.lists(st.sampled_from([0.0, 1.5, 3.0, 4.25, 7.0, 10.0, -1.0, 12.0, float("nan")]), max_size=40)
STATES = st.builds(
    SeriesHealth,
    fault=st.sampled_from([None, None, "flatline", "out_of_range"]),
    run_value=st.sampled_from([None, 1.5, 3.0]),
    run_start_ns=st.just(START_NS - 10 * STEP_NS),
    run_readings=st.integers(0, 4),
    bad_run=st.integers(0, 3),
    last_good_ns=st.sampled_from([None, START_NS - STEP_NS]),
    last_good_value=st.sampled_from([None, 1.5]),
)


@settings(max_examples=500, deadline=None)
@given(rule=RULES, values=VALUES, start=STATES, steps=st.lists(st.integers(1, 10), min_size=40, max_size=40))
def test_replayed_readings_leave_the_state_observing_them_one_by_one_does(
    rule: HealthRule, values: list[float], start: SeriesHealth, steps: list[int]
) -> None:
    ts_ns = START_NS + STEP_NS * np.cumsum(steps[: len(values)], dtype=np.int64)
    one_by_one, at_once = (SeriesHealth.from_state(start.get_state()) for _ in range(2))
    for t, v in zip(ts_ns.tolist(), values, strict=True):
        one_by_one.observe(rule, t, v)
    at_once.observe_replayed(rule, ts_ns, np.array(values, dtype=np.float64))
    assert at_once.get_state() == one_by_one.get_state()
    assert [type(x) for x in at_once.get_state().values()] == [
        type(x) for x in one_by_one.get_state().values()
    ]


def test_a_healthy_run_of_distinct_readings_ends_with_the_last_one_as_its_state() -> None:
    health = SeriesHealth()
    ts_ns = START_NS + STEP_NS * np.arange(3, dtype=np.int64)
    health.observe_replayed(
        HealthRule(valid_min=0.0, valid_max=10.0, stuck_after_s=60.0), ts_ns, np.array([1.0, 2.0, 3.0])
    )
    assert health == SeriesHealth(
        run_value=3.0,
        run_start_ns=int(ts_ns[-1]),
        run_readings=1,
        last_good_ns=int(ts_ns[-1]),
        last_good_value=3.0,
    )


def test_a_replayed_reading_equal_to_the_current_run_extends_it() -> None:
    rule = HealthRule(valid_min=0.0, valid_max=10.0, stuck_after_s=600.0)
    health = SeriesHealth(
        run_value=2.0, run_start_ns=START_NS, run_readings=2, last_good_ns=START_NS, last_good_value=2.0
    )
    health.observe_replayed(rule, np.array([START_NS + 20 * STEP_NS]), np.array([2.0]))
    assert (health.run_readings, health.run_start_ns, health.fault) == (3, START_NS, "flatline")


@given(rule=RULES, values=VALUES)
def test_the_range_check_of_many_values_is_the_check_of_each(rule: HealthRule, values: list[float]) -> None:
    assert rule.in_range_of(np.array(values, dtype=np.float64)).tolist() == [rule.in_range(v) for v in values]


@settings(max_examples=500, deadline=None)
@given(rule=RULES, values=VALUES, start=STATES, steps=st.lists(st.integers(1, 10), min_size=40, max_size=40))
def test_readings_taken_at_once_are_taken_only_where_one_by_one_tells_nothing_and_ends_the_same(
    rule: HealthRule, values: list[float], start: SeriesHealth, steps: list[int]
) -> None:
    """``take_distinct`` leaves the state ``observe`` would, having told nothing, or touches nothing."""
    ts_ns = (START_NS + STEP_NS * np.cumsum(steps[: len(values)], dtype=np.int64)).tolist()
    one_by_one, at_once = (SeriesHealth.from_state(start.get_state()) for _ in range(2))
    changes = [one_by_one.observe(rule, t, v) for t, v in zip(ts_ns, values, strict=True)]
    if at_once.take_distinct(rule, values, ts_ns[-1] if ts_ns else 0):
        assert changes == [None] * len(values)
        assert at_once.get_state() == one_by_one.get_state()
    else:
        assert at_once.get_state() == start.get_state()


def test_a_live_batch_of_distinct_healthy_readings_is_taken_at_once() -> None:
    """The usual batch does take the short way (else the property above would hold vacuously)."""
    rule = HealthRule(valid_min=0.0, valid_max=10.0, stuck_after_s=60.0)
    health = SeriesHealth(run_value=1.5, run_start_ns=START_NS, run_readings=1)
    assert health.take_distinct(rule, [2.0, 3.0, 2.0], START_NS + 3 * STEP_NS)
    assert (health.run_value, health.run_readings, health.last_good_ns) == (2.0, 1, START_NS + 3 * STEP_NS)
    for refused in ([1.5, 2.0], [2.0, 2.0], [2.0, 11.0], [float("nan")], []):
        assert not SeriesHealth(run_value=1.5).take_distinct(rule, refused, START_NS)
    assert not SeriesHealth(fault="flatline").take_distinct(rule, [2.0], START_NS)
