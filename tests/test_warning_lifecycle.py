"""The warning lifecycle against both state databases: SQLite and the real PostgreSQL."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts import lifecycle
from alerts.checkpoints import CheckpointRepository
from alerts.exceptions import InvalidTransition, WarningNotFound
from alerts.service import WarningService
from alerts.sinks import latest_per_area
from config.catalog import LEVELS
from config.lifecycle import HazardOverride, load_lifecycle
from config.settings import CITY_DIR, Settings
from config.timeutil import from_ns
from models.decision import DecisionRule, SeriesDecision
from models.signals import Signal
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal


def test_a_signal_opens_one_warning_with_evidence_and_history(service: WarningService) -> None:
    [wid] = service.apply_signals([signal(level="orange", value=3.6)], now=NOW, actor="detector:t")
    w = service.get(wid)
    assert w is not None
    # Flood holds 15 min of event time before anyone is told (config/city/lifecycle.yaml).
    assert (w.hazard, w.area, w.level, w.status) == ("flood", "g-riverside-01", "orange", "pending")
    # One sensor past its line, uncorroborated: likely, not yet observed.
    assert (w.severity, w.urgency, w.certainty) == ("Severe", "Immediate", "Likely")
    assert [e.sensor_id for e in w.evidence] == ["wl-riverside-01"]
    assert [(e.action, e.actor, e.to_level) for e in w.events] == [("opened", "detector:t", "orange")]
    assert "wl-riverside-01" in w.explanation
    # Orange carries the blue and yellow playbook steps too.
    assert len(w.recommendations) == len(PLAYBOOKS.actions_for("flood", "orange")) >= 3
    assert w.recommendations[0]["where"]["area"] == "g-riverside-01"


def test_more_signals_update_the_open_warning_instead_of_duplicating(service: WarningService) -> None:
    first = service.apply_signals([signal()], now=NOW, actor="a")
    later = NOW + timedelta(minutes=5)
    second = service.apply_signals([signal(sensor_id="wl-riverside-02", ts=later)], now=later, actor="a")
    assert first == second
    page = service.list()
    assert page.total == 1
    assert page.items[0].signal_count == 2
    assert page.items[0].last_signal_at == later


def test_a_higher_level_escalates_and_is_recorded(service: WarningService) -> None:
    [wid] = service.apply_signals([signal(level="yellow")], now=NOW, actor="a")
    service.apply_signals([signal(level="red", ts=NOW + timedelta(minutes=1))], now=NOW, actor="b")
    service.apply_signals([signal(level="blue", ts=NOW + timedelta(minutes=2))], now=NOW, actor="c")
    w = service.get(wid)
    assert w is not None and w.level == "red" and w.severity == "Extreme"
    # Red is active at once: a pending flood warning that reaches red is told without its hold.
    assert [(e.action, e.from_level, e.to_level, e.actor) for e in w.events] == [
        ("opened", None, "yellow", "a"),
        ("escalated", "yellow", "red", "b"),
        ("activated", "red", "red", "citywarn"),
    ]


def test_statistical_signal_alone_is_a_blue_possibility(service: WarningService) -> None:
    # A bare signal: scored just at the threshold (stronger anomalies rank higher: test_anomaly_levels).
    [wid] = service.apply_signals([signal(level=None, score=Settings().signal_threshold)], now=NOW, actor="a")
    w = service.get(wid)
    assert w is not None and (w.level, w.certainty) == ("blue", "Possible")


def test_replayed_signal_adds_no_duplicate_evidence(service: WarningService) -> None:
    [wid] = service.apply_signals([signal()], now=NOW, actor="a")
    service.apply_signals([signal()], now=NOW, actor="a")
    w = service.get(wid)
    assert w is not None and w.signal_count == 1 and len(w.evidence) == 1


def test_different_hazards_or_areas_get_their_own_warnings(service: WarningService) -> None:
    ids = service.apply_signals(
        [
            signal(),
            signal(area="g-riverside-03", sensor_id="wl-riverside-02"),
            signal(hazard="gas_leak", kind="gas", sensor_id="gas-oldtown-01", area="g-riverside-01"),
        ],
        now=NOW,
        actor="a",
    )
    assert len(set(ids)) == 3
    assert service.list(area="g-riverside-01").total == 2
    assert service.list(hazard="gas_leak").total == 1


def test_acknowledge_then_resolve_records_who_and_frees_the_slot(service: WarningService) -> None:
    [wid] = service.apply_signals([signal()], now=NOW, actor="detector")
    service.acknowledge(wid, now=NOW, actor="operator li", note="crew sent")
    resolved = service.resolve(wid, now=NOW + timedelta(hours=1), actor="operator li")
    assert resolved.status == "resolved" and resolved.resolved_at is not None
    assert [(e.action, e.actor) for e in resolved.events][1:] == [
        ("acknowledged", "operator li"),
        ("resolved", "operator li"),
    ]
    with pytest.raises(InvalidTransition):
        service.acknowledge(wid, now=NOW, actor="x")
    # The (hazard, area) slot is free again: a new signal opens a new warning.
    [new] = service.apply_signals([signal(ts=NOW + timedelta(hours=2))], now=NOW, actor="d")
    assert new != wid
    assert service.list(status="pending").total == 1  # a new flood warning waits for its hold


def test_unknown_warning_is_reported(service: WarningService) -> None:
    with pytest.raises(WarningNotFound):
        service.resolve("nope", now=NOW, actor="x")
    assert service.get("nope") is None


def test_list_filters_and_paginates(service: WarningService) -> None:
    for i in range(7):
        service.apply_signals(
            [signal(area=f"g-riverside-0{i + 1}", level="yellow" if i % 2 else "red")],
            now=NOW + timedelta(minutes=i),
            actor="a",
        )
    page = service.list(limit=3, offset=0)
    assert page.total == 7 and len(page.items) == 3
    assert [w.area for w in page.items] == ["g-riverside-07", "g-riverside-06", "g-riverside-05"]
    assert len(service.list(limit=3, offset=6).items) == 1
    assert service.list(level="red").total == 4
    assert service.list(since=NOW + timedelta(minutes=5)).total == 2
    assert service.list(until=NOW + timedelta(minutes=1)).total == 1


def test_checkpoints_round_trip_and_overwrite(engine: sa.Engine) -> None:
    repo = CheckpointRepository(engine)
    repo.save(
        {
            "s1": {"detector": "d", "state": {"x": [1.5, 2.0]}, "position": (2, 41), "log": "c/t1"},
            "s2": {"detector": "d", "state": {}, "position": None},
        },
        now=NOW,
    )
    repo.save({"s1": {"detector": "d", "state": {"x": [3.0]}, "position": (2, 99), "log": "c/t2"}}, now=NOW)
    got = repo.load(["s1", "s2", "s3"])
    assert got == {
        "s1": {"detector": "d", "state": {"x": [3.0]}, "position": (2, 99), "log": "c/t2"},
        "s2": {"detector": "d", "state": {}, "position": None, "log": None},
    }


def test_explanation_quotes_each_sensors_value_trend_and_highest_line(service: WarningService) -> None:
    [wid] = service.apply_signals([signal(level="red", value=4.2, ts=NOW)], now=NOW, actor="a")
    later = NOW + timedelta(minutes=5)
    service.apply_signals([signal(level="yellow", value=3.1, ts=later)], now=later, actor="a")
    w = service.get(wid)
    assert w is not None
    assert "(wl-riverside-01) 3.1 m, falling 1.1 m in the last 5 min, past the yellow line" in w.explanation
    assert "at 08:00 UTC it read 4.2 m, past the red line" in w.explanation


# ---- the lifecycle in event time (alerts.lifecycle; timings: config/city/lifecycle.yaml) ----------

MIN = timedelta(minutes=1)
RIVER = "g-riverside-01"


def at(minutes: float) -> datetime:
    return NOW + minutes * MIN


def flood(level: str | None, minutes: float, *, sensor: str = "wl-riverside-01") -> Signal:
    return signal(level=level, ts=at(minutes), sensor_id=sensor)


def gas(level: str, minutes: float) -> Signal:
    return signal(
        sensor_id="gas-oldtown-01", kind="gas", hazard="gas_leak", level=level, value=55.0, ts=at(minutes)
    )


def history(service: WarningService, wid: str) -> list[tuple[object, ...]]:
    """(action, from status, to status, from level, to level, minutes of event time, actor)."""
    w = service.get(wid)
    assert w is not None
    return [
        (
            e.action,
            e.from_status,
            e.to_status,
            e.from_level,
            e.to_level,
            None if e.event_time is None else (e.event_time - NOW) / MIN,
            e.actor,
        )
        for e in w.events
        if e.action != "certainty"
    ]


def test_every_trigger_has_its_row_and_nothing_leaves_resolved() -> None:
    assert lifecycle.next_status("w", "pending", "hold_elapsed") == "active"
    assert lifecycle.next_status("w", "pending", "condition_gone") == "resolved"
    assert lifecycle.next_status("w", "acknowledged", "escalate") == "active"
    assert lifecycle.next_status("w", "acknowledged", "deescalate") == "acknowledged"
    assert lifecycle.next_status("w", "active", "released") == "resolved"
    with pytest.raises(InvalidTransition):
        lifecycle.next_status("w", "active", "hold_elapsed")
    with pytest.raises(InvalidTransition):
        lifecycle.next_status("w", "acknowledged", "hand_up")  # someone is on it already
    triggers = {t for _, t in lifecycle.TRANSITIONS}
    for trigger in triggers:
        target = lifecycle.TRANSITIONS.get(("resolved", trigger))
        assert target in (None, "resolved"), trigger
    assert {t for s, t in lifecycle.TRANSITIONS if s == "resolved"} == {"annotate"}


def test_a_pending_warning_becomes_active_only_after_its_hold(service: WarningService) -> None:
    # Flood holds 15 min: evidence 15 min or more after the first (the line's reminder) confirms it.
    [wid] = service.apply_signals([flood("yellow", 0), flood("yellow", 10)], now=NOW, actor="d")
    service.apply_signals([flood("yellow", 14)], now=NOW, actor="d")
    service.advance({RIVER: at(20)}, now=NOW)
    w = service.get(wid)
    assert w is not None and (w.status, w.activated_at, w.responder) == ("pending", None, None)
    service.apply_signals([flood("yellow", 25)], now=NOW, actor="d")
    w = service.get(wid)
    assert w is not None and (w.status, w.activated_at, w.responder) == (
        "active",
        at(25),
        "grid duty officer",
    )
    assert history(service, wid)[-1] == ("activated", "pending", "active", "yellow", "yellow", 25, "citywarn")
    assert "held 15 min" in w.events[-1].note


def test_a_pending_warning_whose_condition_goes_resolves_having_told_nobody(service: WarningService) -> None:
    [wid] = service.apply_signals([flood("yellow", 0)], now=NOW, actor="d")
    service.advance({RIVER: at(60)}, now=NOW)
    w = service.get(wid)
    assert w is not None and w.status == "resolved" and w.activated_at is None and w.responder is None
    assert [h[:3] for h in history(service, wid)] == [
        ("opened", None, "pending"),
        ("resolved", "pending", "resolved"),
    ]
    assert history(service, wid)[-1][5:] == (45, "citywarn")  # the release window (45 min) emptied
    assert w.events[-1].note.startswith("did not hold")


def test_a_red_gas_warning_is_active_at_once_and_resolves_after_its_release(service: WarningService) -> None:
    [wid] = service.apply_signals([gas("red", 0), gas("red", 15), gas("red", 30)], now=NOW, actor="d")
    w = service.get(wid)
    assert w is not None and (w.status, w.activated_at) == ("active", at(0))
    service.advance({RIVER: at(59)}, now=NOW)  # gas releases 30 min after the last reminder
    assert service.get(wid).status == "active"  # type: ignore[union-attr]
    service.advance({RIVER: at(61)}, now=NOW)
    assert history(service, wid) == [
        ("opened", None, "active", None, "red", 0, "d"),
        ("resolved", "active", "resolved", "red", "red", 60, "citywarn"),
    ]


def test_the_level_steps_down_one_colour_per_release_then_resolves(service: WarningService) -> None:
    # Red once, then the river holds only the yellow line, re-signalled every 15 min until 180.
    readings = [flood("red", 0)] + [flood("yellow", m) for m in range(15, 181, 15)]
    [wid] = service.apply_signals(readings, now=NOW, actor="d")
    service.advance({RIVER: at(300)}, now=NOW)
    assert history(service, wid) == [
        ("opened", None, "active", None, "red", 0, "d"),
        ("deescalated", "active", "active", "red", "orange", 45, "citywarn"),
        ("deescalated", "active", "active", "orange", "yellow", 90, "citywarn"),
        ("resolved", "active", "resolved", "yellow", "yellow", 225, "citywarn"),
    ]
    w = service.get(wid)
    assert w is not None and w.recommendations  # re-issued for each level on the way down


def test_a_new_incident_after_a_resolved_one_opens_a_new_warning(service: WarningService) -> None:
    [old] = service.apply_signals([gas("red", 0)], now=NOW, actor="d")
    service.advance({RIVER: at(40)}, now=NOW)
    [new] = service.apply_signals([gas("orange", 120)], now=NOW, actor="d")
    assert new != old
    assert service.get(old).status == "resolved"  # type: ignore[union-attr]
    assert service.get(new).status == "active"  # type: ignore[union-attr]
    # The same in one batch, without the clock in between: the first resolves at its release.
    first, second = service.apply_signals([gas("red", 1000), gas("orange", 1120)], now=NOW, actor="d")
    assert first != second and history(service, first)[-1][0] == "resolved"


def test_an_acknowledged_warning_that_escalates_is_active_again(service: WarningService) -> None:
    [wid] = service.apply_signals([gas("yellow", 0)], now=NOW, actor="d")
    service.acknowledge(wid, now=NOW, actor="operator li")
    service.apply_signals([gas("orange", 5)], now=NOW, actor="d")
    w = service.get(wid)
    assert w is not None and (w.status, w.level) == ("active", "orange")
    assert history(service, wid)[-1] == ("escalated", "acknowledged", "active", "yellow", "orange", 5, "d")


def flapping_river(cycles: int) -> list[Signal]:
    """A gauge rising past its orange line for 10 min every hour, and yellow the rest: the decision
    step's own signals (rising at once, reminders every 15 min, hysteresis) for readings every 5 min."""
    rule = DecisionRule(threshold=1.1, lines=(2.0, 3.0, 4.0, 5.0), repeat_s=900.0)
    state = SeriesDecision()
    out = []
    for k in range(cycles * 12):
        value = 4.5 if k % 12 < 2 else 3.5
        d = state.decide(rule, at(5 * k).timestamp(), value, 0.0, math.nan)
        if d.signal:
            out.append(replace(flood(LEVELS[d.level], 5 * k), value=value))
    return out


def test_a_signal_flapping_around_a_line_gives_one_warning_held_at_its_higher_level(
    engine: sa.Engine,
) -> None:
    timings = load_lifecycle(CITY_DIR / "lifecycle.yaml")
    flappy = timings.model_copy(
        update={"hazards": {"flood": HazardOverride(hold=15, release=45, flap_window=120, flap_changes=4)}}
    )
    service = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS, lifecycle_config=flappy)
    signals = flapping_river(6)
    ids = set(service.apply_signals(signals, now=NOW, actor="d"))
    assert len(ids) == 1
    [wid] = ids
    actions = [h[0] for h in history(service, wid)]
    assert "flapping" in actions
    marked = actions.index("flapping")
    cleared = actions.index("steady", marked) if "steady" in actions[marked:] else len(actions)
    assert "deescalated" not in actions[marked:cleared]  # held at orange while it flaps
    assert history(service, wid)[marked][4] == "orange"


def test_one_batch_or_many_make_the_same_history(service: WarningService) -> None:
    """A replay at any speed: the sink's calls (signals, then the batch's latest reading time) for the
    same readings in one batch and in batches of three readings give the same transitions."""
    signals = [*flapping_river(3), flood("red", 200, sensor="wl-riverside-02")]
    signals.sort(key=lambda s: s.ts_ns)
    readings = [at(5 * k) for k in range(80)]

    def replay(area: str, size: int) -> str:
        mine = [replace(s, area=area) for s in signals]
        ids: set[str] = set()
        for i in range(0, len(readings), size):
            batch = readings[i : i + size]
            ids |= set(
                service.apply_signals(
                    [s for s in mine if batch[0] <= from_ns(s.ts_ns) <= batch[-1]], now=NOW, actor="d"
                )
            )
            service.advance({area: batch[-1]}, now=NOW)
        [wid] = ids
        return wid

    whole, split = replay("g-a", len(readings)), replay("g-b", 3)
    assert history(service, whole) == history(service, split)
    assert {h[0] for h in history(service, whole)} >= {"opened", "deescalated", "escalated", "resolved"}


_replays = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(st.booleans(), min_size=27, max_size=27))
def test_moving_the_clock_now_and_then_makes_the_history_of_moving_it_after_every_batch(
    service: WarningService, moves: list[bool]
) -> None:
    """The readings sink moves warnings on at most once a second and before each checkpoint
    (``alerts.sinks.ADVANCE_EVERY_S``): the batches in between give their signals to warnings whose
    clock is behind, and the clock catches up later. ``moves[n]``: whether batch n ends with a move.
    The river flaps, goes red, falls quiet past its release, and rises again: two warnings."""
    signals = [*flapping_river(3), flood("red", 200, sensor="wl-riverside-02"), flood("yellow", 300)]
    signals += [flood("orange", 310), flood("orange", 325)]
    signals.sort(key=lambda s: s.ts_ns)
    readings = [at(5 * k) for k in range(81)]  # 27 batches of three
    run = next(_replays)  # each example has areas of its own on the shared database

    def replay(area: str, move_after: Callable[[int], bool]) -> list[list[tuple[object, ...]]]:
        mine = [replace(s, area=area) for s in signals]
        ids: set[str] = set()
        clock: datetime | None = None
        for n, i in enumerate(range(0, len(readings), 3)):
            batch = readings[i : i + 3]
            ids |= set(
                service.apply_signals(
                    [s for s in mine if batch[0] <= from_ns(s.ts_ns) <= batch[-1]], now=NOW, actor="d"
                )
            )
            clock = batch[-1]
            if move_after(n):
                service.advance({area: clock}, now=NOW)
                clock = None
        if clock is not None:  # the checkpoint's move
            service.advance({area: clock}, now=NOW)
        return sorted(history(service, wid) for wid in ids)

    every = replay(f"g-{run}-every", lambda _n: True)
    assert len(every) == 2 and all(h[-1][2] == "resolved" for h in every)
    assert replay(f"g-{run}-some", moves.__getitem__) == every


def test_the_sink_clock_is_each_areas_latest_reading() -> None:
    ns = int(NOW.timestamp()) * 1_000_000_000
    assert latest_per_area([("a", ns), ("b", ns + 5), ("a", ns + 9), ("", ns + 99)]) == {
        "a": from_ns(ns + 9),
        "b": from_ns(ns + 5),
    }


def test_a_late_reading_from_before_the_clock_does_not_end_a_warning_whose_line_still_holds(
    service: WarningService,
) -> None:
    """A restarted replay or a slow sensor delivers a reading older than the warning's clock: the
    condition at the clock is judged on all the evidence up to the clock, the late reading included,
    not on the evidence up to the late reading's time (which once released a flood still past its line)."""
    [wid] = service.apply_signals([flood("yellow", m) for m in range(0, 61, 15)], now=NOW, actor="d")
    service.advance({RIVER: at(61)}, now=NOW)
    assert service.get(wid).status == "active"  # type: ignore[union-attr]
    assert service.apply_signals([flood("yellow", -30)], now=NOW, actor="d") == [wid]
    w = service.get(wid)
    assert w is not None and w.status == "active", [(e.action, e.note) for e in w.events]
    assert "resolved" not in [e.to_status for e in w.events]


def test_each_clock_moves_only_its_own_warnings_real_or_a_drills(service: WarningService) -> None:
    """The city's readings never end a drill's warning, and a drill's replayed day never ends a real one."""
    [real] = service.apply_signals([gas("red", 0)], now=NOW, actor="d")
    [drill] = service.apply_signals([replace(gas("red", 0), exercise=True, drill_id="x")], now=NOW, actor="d")
    assert real != drill
    service.advance({RIVER: at(120)}, now=NOW)
    assert (service.get(real).status, service.get(drill).status) == ("resolved", "active")  # type: ignore[union-attr]
    service.advance({RIVER: at(120)}, now=NOW, exercise=True)
    assert service.get(drill).status == "resolved"  # type: ignore[union-attr]
