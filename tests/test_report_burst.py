"""Report-burst detection: rare clusters stand out, ordinary busy-hour traffic does not."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime

import pytest

from config.areas import load_areas
from config.taxonomy import load_taxonomy
from models.report_burst import BurstSignal, ReportBurstDetector, hour_segments, poisson_tail

TAXONOMY = load_taxonomy()
GRIDS = [g.id for g in load_areas().grids()]
MIN = 60.0
HOUR = 3600.0
DAY = 86400.0
# 08:20 local (UTC+8) on a Monday: morning rush hour.
RUSH = datetime(2024, 7, 15, 0, 20, tzinfo=UTC).timestamp()

Report = tuple[str, str, float, str]


def detector(**kw: float) -> ReportBurstDetector:
    return ReportBurstDetector(TAXONOMY, **kw)  # type: ignore[arg-type]


def reports(area: str, category: str, start: float, n: int, every_s: float, tag: str) -> list[Report]:
    return [(area, category, start + i * every_s, f"{tag}-{i}") for i in range(n)]


def test_three_gas_reports_in_one_grid_within_ten_minutes_stand_out() -> None:
    d = detector()
    assert d.observe_batch(reports("g-oldtown-05", "gas_leak", RUSH, 2, 4 * MIN, "gas")) == []
    [signal] = d.observe_batch([("g-oldtown-05", "gas_leak", RUSH + 9 * MIN, "gas-2")])
    assert (signal.area, signal.category, signal.hazard, signal.count) == (
        "g-oldtown-05", "gas_leak", "gas_leak", 3)  # fmt: skip
    assert signal.ts == RUSH + 9 * MIN
    assert signal.report_ids == ("gas-0", "gas-1", "gas-2")
    assert signal.expected < 0.01
    assert signal.tail_probability < 1e-6
    assert signal.score == pytest.approx(1 - signal.tail_probability) and 0 <= signal.score <= 1


def test_three_gas_reports_spread_over_more_than_the_window_do_not() -> None:
    d = detector()
    assert d.observe_batch(reports("g-oldtown-05", "gas_leak", RUSH, 3, 6 * MIN, "gas")) == []


def test_thirty_rush_hour_traffic_reports_spread_over_the_city_do_not_stand_out() -> None:
    assert len(GRIDS) == 27
    spread = [(GRIDS[i % len(GRIDS)], "traffic_accident", RUSH + i * 20.0, f"t-{i}") for i in range(30)]
    assert detector().observe_batch(spread) == []
    # The same thirty in one grid would.
    one_grid = [(GRIDS[0], cat, ts, rid) for _, cat, ts, rid in spread]
    [signal] = detector().observe_batch(one_grid)
    assert signal.count == 30


def test_five_rush_hour_traffic_reports_are_ordinary_in_a_busy_grid_but_not_in_a_quiet_one() -> None:
    """A grid by an expressway interchange gets about 18 traffic reports (several callers per
    crash, app reports of blocked lanes) between 08:00 and 09:00 every day; the prior alone
    (about 0.56 per grid at 08:00) would call five in ten minutes a burst."""
    busy, quiet = "g-northport-02", "g-lakeside-03"
    d = detector()
    eight = RUSH - 20 * MIN - 10 * DAY
    history = [
        d.observe_batch(reports(busy, "traffic_accident", eight + day * DAY, 18, 200.0, f"d{day}"))
        for day in range(10)
    ]
    assert history[0] and not any(history[3:])  # the new grid learns its mornings within days
    today = eight + 10 * DAY
    usual = reports(busy, "traffic_accident", today, 9, 200.0, "today")  # 08:00 .. 08:26:40
    five = reports(busy, "traffic_accident", today + 30 * MIN, 5, 2 * MIN, "five")  # 08:30 .. 08:38
    assert d.observe_batch(usual + five) == []
    expected = d.expected_count(busy, "traffic_accident", today + 38 * MIN)
    assert 1.5 < expected < 3.5
    assert poisson_tail(5, expected) > 0.01
    [signal] = d.observe_batch([(quiet, c, ts, f"q-{rid}") for _, c, ts, rid in five])
    assert signal.area == quiet and signal.count == 5 and signal.expected < 0.2


def test_duplicated_report_ids_count_once() -> None:
    d = detector()
    gas = reports("g1", "gas_leak", RUSH, 2, MIN, "gas")
    assert d.observe_batch(gas + gas + [gas[0]]) == []
    assert d.observe_batch(gas) == []  # again in a later batch
    assert d.observe_batch([("g1", "gas_leak", RUSH + 3 * MIN, "gas-0")]) == []  # same id, other ts
    [signal] = d.observe_batch([("g1", "gas_leak", RUSH + 4 * MIN, "gas-9")])
    assert signal.count == 3 and signal.report_ids == ("gas-0", "gas-1", "gas-9")


def test_one_signal_per_burst_and_again_only_when_it_grows() -> None:
    d = detector()
    first = d.observe_batch(reports("g1", "fire", RUSH, 3, MIN, "a"))
    assert [s.count for s in first] == [3]
    assert d.observe_batch([("g1", "fire", RUSH + 2 * MIN, "a-2")]) == []  # a duplicate
    assert [s.count for s in d.observe_batch([("g1", "fire", RUSH + 4 * MIN, "a-3")])] == [4]
    # Three minutes later the window still holds the burst at a smaller size: no new signal.
    assert d.observe_batch([("g1", "fire", RUSH + 12.5 * MIN, "a-4")]) == []
    # Quiet for an hour, then a new burst: a new signal from count 3.
    later = RUSH + HOUR
    assert [s.count for s in d.observe_batch(reports("g1", "fire", later, 3, MIN, "b"))] == [3]


def test_one_batch_with_two_separate_bursts_returns_both() -> None:
    d = detector()
    batch = reports("g1", "gas_leak", RUSH, 4, MIN, "a") + reports("g1", "gas_leak", RUSH + HOUR, 3, MIN, "b")
    signals = d.observe_batch(batch)
    assert [(s.count, s.report_ids[0]) for s in signals] == [(4, "a-0"), (3, "b-0")]


def test_order_within_a_batch_does_not_matter() -> None:
    batch = (
        reports("g1", "gas_leak", RUSH, 5, 90.0, "gas")
        + reports("g2", "traffic_accident", RUSH, 12, 50.0, "traffic")
        + reports("g3", "waterlogging", RUSH + 30 * MIN, 4, 2 * MIN, "water")
    )
    expected = detector().observe_batch(batch)
    assert {s.area for s in expected} == {"g1", "g2", "g3"}
    rng = random.Random(1)
    for _ in range(5):
        shuffled = batch[:]
        rng.shuffle(shuffled)
        assert detector().observe_batch(shuffled) == expected


def test_a_late_report_within_the_window_counts_and_an_older_one_does_not() -> None:
    d = detector()
    pair = [("g1", "gas_leak", RUSH + 9 * MIN, "b"), ("g1", "gas_leak", RUSH + 8 * MIN, "a")]
    assert d.observe_batch(pair) == []
    assert d.observe_batch([("g1", "gas_leak", RUSH - 5 * MIN, "too-old")]) == []  # 14 min before "b"
    [signal] = d.observe_batch([("g1", "gas_leak", RUSH + 1 * MIN, "late")])
    assert signal.report_ids == ("late", "a", "b") and signal.ts == RUSH + 9 * MIN


def test_state_round_trip_through_json_gives_identical_later_signals() -> None:
    rng = random.Random(7)
    stream: list[Report] = []
    for day in range(4):
        for i in range(300):
            cat = rng.choice(["traffic_accident", "traffic_accident", "other", "gas_leak", "waterlogging"])
            stream.append((rng.choice(GRIDS[:6]), cat, RUSH + day * DAY + rng.uniform(0, DAY), f"r{day}-{i}"))
        for j in range(4):  # one burst a day
            stream.append(("g-oldtown-05", "gas_leak", RUSH + day * DAY + 5 * HOUR + j * MIN, f"b{day}-{j}"))
    stream.sort(key=lambda r: r[2])
    batches = [stream[i : i + 37] for i in range(0, len(stream), 37)]

    original = detector(window_s=900)
    for batch in batches[:20]:
        original.observe_batch(batch)
    state = json.loads(json.dumps(original.get_state()))
    restored = ReportBurstDetector.from_state(state, taxonomy=TAXONOMY)
    assert restored.get_state() == original.get_state()
    rest_a: list[BurstSignal] = []
    rest_b: list[BurstSignal] = []
    for batch in batches[20:]:
        rest_a += original.observe_batch(batch)
        rest_b += restored.observe_batch(batch)
    assert rest_a == rest_b
    assert any(s.category == "gas_leak" for s in rest_a)
    assert restored.get_state() == original.get_state()


def test_hour_of_day_learning_makes_a_regular_daily_burst_unsurprising() -> None:
    """Three traffic reports at 08:30 every school day, at a crossing by a primary school."""
    d = detector()
    tails: list[float] = []
    signalled: list[bool] = []
    for day in range(8):
        start = RUSH + 10 * MIN + day * DAY
        batch = reports("g-oldtown-02", "traffic_accident", start, 3, 3 * MIN, f"school{day}")
        signalled.append(bool(d.observe_batch(batch)))
        tails.append(poisson_tail(3, d.expected_count("g-oldtown-02", "traffic_accident", start + 6 * MIN)))
    assert signalled[0]
    assert all(a < b for a, b in itertools.pairwise(tails))
    assert tails[-1] > 10 * tails[0] and tails[-1] > d.alpha
    assert not any(signalled[5:])
    # The learning is per hour of day: the same three reports at 15:30 still stand out.
    afternoon = RUSH + 7 * HOUR + 10 * MIN + 8 * DAY
    assert d.observe_batch(reports("g-oldtown-02", "traffic_accident", afternoon, 3, 3 * MIN, "pm"))
    # And per grid: a new grid starts from the prior.
    assert d.observe_batch(reports("g-oldtown-03", "traffic_accident", RUSH + 10 * MIN + 8 * DAY, 3,
                                   3 * MIN, "other-grid"))  # fmt: skip


def test_memory_stays_bounded() -> None:
    d = detector(dedup_capacity=100)
    for day in range(3):
        d.observe_batch(reports("g1", "other", RUSH + day * DAY, 500, 120.0, f"d{day}"))
    state = d.get_state()
    [key] = state["keys"]
    assert len(key["window"]) <= 5  # reports within ten minutes at one every two minutes
    assert len(key["counts"]) == 24 and len(state["exposure"]) == 24
    assert len(state["seen"]) == 100


def test_a_fresh_detector_expects_the_prior() -> None:
    d = detector()
    eight_fifty = RUSH + 30 * MIN  # the window 08:40 .. 08:50 local
    prior = TAXONOMY.expected_rate("traffic_accident", 8) * 10 / 60
    assert d.expected_count("g1", "traffic_accident", eight_fifty) == pytest.approx(prior)
    d.observe_batch([("g2", "other", eight_fifty, "x")])
    assert d.expected_count("g1", "traffic_accident", eight_fifty) == pytest.approx(prior)


def test_an_unknown_category_falls_back_to_the_other_prior() -> None:
    d = detector()
    [signal] = d.observe_batch(reports("g1", "volcano", RUSH, 6, MIN, "v"))
    assert signal.category == "volcano" and signal.hazard == "other"
    assert d.expected_count("g9", "volcano", RUSH) == d.expected_count("g9", "other", RUSH)


def test_poisson_tail_is_accurate_far_into_the_tail() -> None:
    assert poisson_tail(0, 2.0) == 1.0
    assert poisson_tail(1, 0.0) == 0.0
    assert poisson_tail(1, 2.0) == pytest.approx(1 - 2.718281828459045**-2.0)
    assert poisson_tail(3, 1e-4) == pytest.approx(1e-12 / 6, rel=1e-3)
    assert poisson_tail(30, 0.1) > 0.0


def test_hour_segments_split_a_window_at_local_hour_boundaries() -> None:
    start = datetime(2024, 7, 15, 0, 55, tzinfo=UTC).timestamp()  # 08:55 local
    assert [(h, round(x, 6)) for h, x in hour_segments(start, start + 10 * MIN, 8 * HOUR)] == [
        (8, round(5 / 60, 6)), (9, round(5 / 60, 6))]  # fmt: skip


@pytest.mark.parametrize(
    "kw", [{"window_s": 0}, {"min_count": 0}, {"alpha": 1.0}, {"half_life_days": -1}, {"dedup_capacity": 0}]
)
def test_bad_parameters_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        detector(**kw)
