"""Warnings end with their incident, and neither that nor their level depends on batching.

On the real state database (SQLite and PostgreSQL, through this module's ``service`` fixture: the
default 6 h fusion window, and a lifecycle with no hold and a release longer than that window, so the
fusion window is what ends an incident here; tests/test_warning_lifecycle.py and
tests/test_escalation_chain.py cover the release). Times are event times: ``now`` is the same throughout.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.service import WarningService
from config.areas import load_areas
from config.lifecycle import HazardTiming, LifecycleConfig
from config.settings import Settings
from models.signals import Signal
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal

WINDOW = timedelta(hours=6)
RELEASE_PAST_THE_WINDOW = LifecycleConfig(
    defaults=HazardTiming(hold=0, release=8 * 60, flap_window=60, flap_changes=4),
    chain=["grid duty officer"],
    ack_within={"red": None, "orange": None, "yellow": None, "blue": None},
    stale_after=30,
)


@pytest.fixture
def service(engine: sa.Engine) -> WarningService:
    return WarningService(
        engine, catalog=CATALOG, playbooks=PLAYBOOKS, lifecycle_config=RELEASE_PAST_THE_WINDOW
    )


THRESHOLD_RATIO = -math.log(1.0 - Settings().signal_threshold)


def gas(area: str, *, at: timedelta, times: float, sensor: str = "gas-a") -> Signal:
    """A gas anomaly (no line crossed) ``times`` as strong as signalling needs, ``at`` after NOW."""
    ratio = times * THRESHOLD_RATIO
    base = signal(
        sensor_id=sensor,
        kind="gas",
        hazard="gas_leak",
        area=area,
        level=None,
        score=1.0 - math.exp(-ratio),
        value=9.0,
        ts=NOW + at,
    )
    return replace(base, evidence={"baseline": 1.0, "record_ratio": ratio})


def test_evidence_after_more_than_the_window_of_quiet_resolves_the_warning_and_opens_a_new_one(
    service: WarningService,
) -> None:
    [old] = service.apply_signals([signal(ts=NOW)], now=NOW, actor="detector:t")
    later = NOW + WINDOW + timedelta(seconds=1)
    [new] = service.apply_signals([signal(ts=later)], now=NOW, actor="detector:t")
    assert new != old
    ended, opened = service.get(old), service.get(new)
    assert ended is not None and opened is not None
    assert (ended.status, ended.resolved_at, ended.signal_count) == ("resolved", NOW, 1)
    last = ended.events[-1]
    assert (last.action, last.actor, last.from_status, last.to_status) == (
        "resolved",
        "citywarn",
        "active",
        "resolved",
    )
    assert "quiet for longer than the fusion window (6 h)" in last.note
    assert f"opened warning {new}" in last.note
    assert (opened.status, opened.first_signal_at, opened.signal_count) == ("active", later, 1)
    assert [e.action for e in opened.events] == ["opened"]


def test_evidence_within_the_window_joins_even_an_acknowledged_warning(service: WarningService) -> None:
    [wid] = service.apply_signals([signal(ts=NOW)], now=NOW, actor="a")
    service.acknowledge(wid, now=NOW, actor="operator")
    # Exactly the window after the last signal still joins; each signal moves the last one on.
    assert service.apply_signals([signal(ts=NOW + WINDOW)], now=NOW, actor="a") == [wid]
    assert service.apply_signals([signal(ts=NOW + 2 * WINDOW)], now=NOW, actor="a") == [wid]
    w = service.get(wid)
    assert w is not None and (w.status, w.signal_count, w.last_signal_at) == (
        "acknowledged",
        3,
        NOW + 2 * WINDOW,
    )


def test_an_acknowledged_warning_ends_the_same_way(service: WarningService) -> None:
    [wid] = service.apply_signals([signal(ts=NOW)], now=NOW, actor="a")
    service.acknowledge(wid, now=NOW, actor="operator")
    [new] = service.apply_signals([signal(ts=NOW + timedelta(hours=7))], now=NOW, actor="a")
    w = service.get(wid)
    assert w is not None and w.status == "resolved" and new != wid
    assert (w.events[-1].actor, w.events[-1].from_status) == ("citywarn", "acknowledged")


def test_one_batch_spanning_a_long_quiet_gives_two_warnings(service: WarningService) -> None:
    # Given out of time order: they are handled in time order all the same. 7 h: past the fusion
    # window, within this module's release (past it, the release ends the first: test_warning_lifecycle).
    late, early = signal(ts=NOW + timedelta(hours=7)), signal(ts=NOW)
    first, second = service.apply_signals([late, early], now=NOW, actor="a")
    a, b = service.get(first), service.get(second)
    assert a is not None and b is not None
    assert (a.status, a.last_signal_at) == ("resolved", NOW)
    assert (b.status, b.first_signal_at) == ("active", NOW + timedelta(hours=7))
    assert f"opened warning {second}" in a.events[-1].note


def test_a_strong_signal_keeps_its_level_when_weaker_ones_follow_in_the_same_batch(
    service: WarningService,
) -> None:
    # A weak signal opens the warning; then a strong one and two weak ones, 5 h apart (one incident).
    opening = gas("g-one", at=-timedelta(hours=1), times=1.05)
    strong = gas("g-one", at=timedelta(0), times=6.0)
    weak = [gas("g-one", at=timedelta(hours=h), times=1.05) for h in (5, 10)]
    [wid] = service.apply_signals([opening], now=NOW, actor="a")
    service.apply_signals([strong], now=NOW, actor="a")
    service.apply_signals(weak, now=NOW, actor="a")
    split = service.get(wid)
    [whole] = service.apply_signals([replace(opening, area="g-two")], now=NOW, actor="a")
    service.apply_signals([replace(s, area="g-two") for s in [strong, *weak]], now=NOW, actor="a")
    together = service.get(whole)
    assert split is not None and together is not None
    assert split.level == together.level != "blue"
    # The latest window alone is blue, and the explanation says the colour is kept.
    assert "kept from earlier evidence" in together.explanation


STRENGTHS = st.sampled_from([1.05, 2.5, 6.0, 30.0])
GAPS_MIN = st.one_of(
    st.sampled_from([0, 60, 359, 360, 361, 420, 780]),  # around the 6 h window, in minutes
    st.integers(min_value=0, max_value=900),
)
STEP = st.tuples(st.integers(min_value=0, max_value=1), GAPS_MIN, STRENGTHS, st.booleans())
_runs = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=10), cuts=st.lists(st.booleans(), min_size=10, max_size=10))
def test_any_batching_of_the_same_signals_gives_the_same_warnings(
    service: WarningService, steps: list[tuple[int, int, float, bool]], cuts: list[bool]
) -> None:
    run = next(_runs)  # each example has areas of its own on the shared database
    at = timedelta(0)
    sequence: list[tuple[int, timedelta, float, str]] = []
    for key, gap, times, second_sensor in steps:
        at += timedelta(minutes=gap)
        sequence.append((key, at, times, "gas-b" if second_sensor else "gas-a"))

    def signals(how: str) -> list[Signal]:
        return [gas(f"g-{run}-{how}-{k}", at=t, times=x, sensor=s) for k, t, x, s in sequence]

    service.apply_signals(signals("whole"), now=NOW, actor="a")
    batch: list[Signal] = []
    for s, cut in zip(signals("split"), cuts, strict=False):
        batch.append(s)
        if cut:
            service.apply_signals(batch, now=NOW, actor="a")
            batch = []
    service.apply_signals(batch, now=NOW, actor="a")

    def outcome(how: str) -> list[list[tuple[object, ...]]]:
        per_key = []
        for k in (0, 1):
            page = service.list(area=f"g-{run}-{how}-{k}", limit=100)
            rows = sorted((w.first_signal_at, w.last_signal_at, w.status, w.level) for w in page.items)
            per_key.append(rows)
        return per_key

    assert outcome("split") == outcome("whole")


def test_a_neighbours_warning_is_listed_and_counted_under_every_grid_it_covers(engine: sa.Engine) -> None:
    """Neighbour fusion keeps one warning under the grid where it began; the list by area and the
    area's recent signals find it under the neighbour grid its evidence also came from."""
    service = WarningService(
        engine,
        catalog=CATALOG,
        playbooks=PLAYBOOKS,
        areas=load_areas(Settings().areas_path),
        lifecycle_config=RELEASE_PAST_THE_WINDOW,
    )
    first = signal(sensor_id="wl-riverside-04", area="g-riverside-05", ts=NOW)
    joined = signal(sensor_id="wl-riverside-03", area="g-riverside-07", ts=NOW + timedelta(minutes=1))
    [a] = service.apply_signals([first], now=NOW, actor="detector:t")
    [b] = service.apply_signals([joined], now=NOW, actor="detector:t")
    assert a == b
    for area in ("g-riverside-05", "g-riverside-07"):
        assert [w.id for w in service.list(area=area, scope="grid").items] == [a]
        assert [w.id for w in service.list(areas=[area], open_only=True, scope="grid").items] == [a]
    assert service.list(area="g-riverside-0", scope="grid").items == []  # ids match whole, not by prefix
    assert service.list(area="g_riverside-07", scope="grid").items == []  # '_' is no LIKE wildcard
