"""Hypothesis drives random signals, clock advances and operators' actions through the warning service
(real SQLite): whatever happens, the lifecycle's promises hold (issue 10)."""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts import db, lifecycle
from alerts.exceptions import InvalidTransition
from alerts.schemas import WarningDetail
from alerts.service import WarningService
from config.catalog import LEVELS
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal

AREA = "g-riverside-01"
HAZARDS = {"flood": "wl-riverside-01", "gas_leak": "gas-oldtown-01"}  # holds 15 and 0 min
OPERATIONS = ("acknowledge", "escalate", "deescalate", "resolve", "annotate", "assign")

SIGNAL = st.tuples(
    st.just("signal"),
    st.sampled_from(sorted(HAZARDS)),
    st.sampled_from([*LEVELS, None]),
    st.booleans(),  # a drill's signal
    st.integers(min_value=0, max_value=90),  # minutes after the previous step
)
ADVANCE = st.tuples(st.just("advance"), st.integers(min_value=1, max_value=120))
OPERATE = st.tuples(st.just("operate"), st.sampled_from(OPERATIONS), st.integers(min_value=0, max_value=9))
STEPS = st.lists(st.one_of(SIGNAL, SIGNAL, ADVANCE, OPERATE), min_size=1, max_size=25)


def check_history(w: WarningDetail, service: WarningService) -> None:
    hold = service.lifecycle_config.timing(w.hazard).hold_time
    events = [e for e in w.events if e.action != "certainty"]
    assert events[0].action == "opened" and events[0].from_status is None
    for before, after in itertools.pairwise(events):
        # Complete: every change starts where the one before it ended.
        assert (after.from_status, after.from_level) == (before.to_status, before.to_level), (before, after)
        # Nothing leaves resolved.
        if before.to_status == "resolved":
            assert after.to_status == "resolved" and after.action == "annotated"
    ordered = [e.event_time for e in events if e.event_time is not None]
    assert ordered == sorted(ordered)
    assert (events[-1].to_status, events[-1].to_level) == (w.status, w.level)
    for e in events:
        # No activation shorter than the hazard's hold, unless red.
        if e.to_status == "active" and e.from_status in (None, "pending") and e.event_time is not None:
            assert e.event_time - w.first_signal_at >= hold or e.to_level == "red", e


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_random_signals_clocks_and_operators_keep_the_lifecycles_promises(
    steps: list[tuple[object, ...]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.connect(f"sqlite:///{tmp}/state.sqlite3")
        try:
            service = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS)
            clock = NOW
            for step in steps:
                if step[0] == "signal":
                    _, hazard, level, exercise, gap = step
                    clock += timedelta(minutes=int(gap))  # type: ignore[call-overload]
                    s = signal(hazard=str(hazard), sensor_id=HAZARDS[str(hazard)], level=level, ts=clock)  # type: ignore[arg-type]
                    service.apply_signals([replace(s, exercise=bool(exercise))], now=NOW, actor="d")
                elif step[0] == "advance":
                    clock += timedelta(minutes=int(step[1]))  # type: ignore[call-overload]
                    service.advance({AREA: clock}, now=NOW)
                else:
                    _, action, pick = step
                    everyone = service.list(limit=100, exercise=None).items
                    if not everyone:
                        continue
                    target = everyone[int(pick) % len(everyone)]  # type: ignore[call-overload]
                    try:
                        if action == "assign":
                            service.assign(target.id, "crew 7", now=NOW, actor="li")
                        elif action == "annotate":
                            service.annotate(target.id, now=NOW, actor="li", note="seen")
                        else:
                            getattr(service, str(action))(target.id, now=NOW, actor="li")
                    except InvalidTransition:
                        pass  # refused by the table: fine, and nothing changed
            warnings = service.list(limit=500, exercise=None).items
            open_keys = [(w.hazard, w.area, w.exercise) for w in warnings if w.status in lifecycle.OPEN]
            assert len(open_keys) == len(set(open_keys)), "two open warnings for one hazard, area and kind"
            for w in warnings:
                detail = service.get(w.id)
                assert detail is not None
                check_history(detail, service)
        finally:
            engine.dispose()
