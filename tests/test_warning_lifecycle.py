"""The warning lifecycle against both state databases: SQLite and the real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from alerts.checkpoints import CheckpointRepository
from alerts.exceptions import InvalidTransition, WarningNotFound
from alerts.service import WarningService
from config.settings import Settings
from tests.factories import NOW, PLAYBOOKS, signal


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
