"""Issue 8 item 6: anomaly-only warnings are ranked by strength and criticality; agreement raises certainty.

On the real state database (SQLite and PostgreSQL, through the ``service`` fixture). Strength is
stated relative to ``Settings().signal_threshold``, so these tests hold whatever threshold ships.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest

from alerts.levels import rank
from alerts.service import WarningService
from config.settings import Settings
from models.signals import Signal
from tests.factories import NOW, signal

THRESHOLD_RATIO = -math.log(1.0 - Settings().signal_threshold)  # evidence over record needed to signal


def anomaly(
    sensor_id: str,
    *,
    times_threshold: float,
    kind: str = "gas",
    hazard: str = "gas_leak",
    area: str = "g-oldtown-05",
    model: float | None = None,
    minutes: int = 0,
) -> Signal:
    """An anomaly signal (no line crossed) whose evidence is ``times_threshold`` x what signalling needs."""
    ratio = times_threshold * THRESHOLD_RATIO
    evidence: dict[str, float | str] = {"baseline": 1.0, "record_ratio": ratio}
    if model is not None:
        evidence |= {"multivariate": model, "multivariate_model": "test-v1"}
    base = signal(
        sensor_id=sensor_id,
        kind=kind,
        hazard=hazard,
        area=area,
        level=None,
        score=1.0 - math.exp(-ratio),
        value=9.0,
        ts=NOW + timedelta(minutes=minutes),
    )
    return replace(base, evidence=evidence)


def test_two_anomaly_only_warnings_of_clearly_different_strength_get_different_levels(
    service: WarningService,
) -> None:
    weak, strong = service.apply_signals(
        [
            anomaly("gas-a", times_threshold=1.05, area="g-oldtown-01"),
            anomaly("gas-b", times_threshold=6.0, area="g-riverside-08"),
        ],
        now=NOW,
        actor="detector",
    )
    w, s = service.get(weak), service.get(strong)
    assert w is not None and s is not None
    assert rank(s.level) > rank(w.level)
    assert s.level != "red", "one sensor's anomaly alone stays below red"
    assert "criticality" in s.explanation and "gas-b" in s.explanation
    [opened] = s.events
    assert opened.to_level == s.level, "the warning opens at the level its evidence gives"


def test_a_weak_single_sensor_anomaly_stays_blue_and_possible(service: WarningService) -> None:
    [wid] = service.apply_signals([anomaly("gas-a", times_threshold=1.1)], now=NOW, actor="detector")
    w = service.get(wid)
    assert w is not None and (w.level, w.certainty) == ("blue", "Possible")


def test_criticality_of_the_kind_ranks_equal_strength_differently(service: WarningService) -> None:
    gas, dust = service.apply_signals(
        [
            anomaly("gas-a", times_threshold=3.0, area="g-oldtown-01"),
            anomaly("pm-a", times_threshold=3.0, kind="pm25", hazard="public_health", area="g-riverside-08"),
        ],
        now=NOW,
        actor="detector",
    )
    g, d = service.get(gas), service.get(dust)
    assert g is not None and d is not None
    assert rank(g.level) > rank(d.level)


def test_several_agreeing_sensors_raise_certainty_and_level(service: WarningService) -> None:
    [alone] = service.apply_signals(
        [anomaly("gas-a", times_threshold=2.5, area="g-oldtown-01")], now=NOW, actor="detector"
    )
    [together] = service.apply_signals(
        [anomaly(f"gas-{n}", times_threshold=2.5, area="g-riverside-08") for n in "bcd"],
        now=NOW,
        actor="detector",
    )
    a, t = service.get(alone), service.get(together)
    assert a is not None and t is not None
    assert a.certainty == "Possible"
    assert t.certainty in ("Likely", "Observed") and t.confidence > a.confidence
    assert rank(t.level) > rank(a.level)
    assert "3 sensors" in t.explanation


def test_the_per_kind_model_agreeing_counts_as_a_second_witness(service: WarningService) -> None:
    series_only, with_model = service.apply_signals(
        [
            anomaly("gas-a", times_threshold=3.0, area="g-oldtown-01", model=0.5),
            anomaly("gas-b", times_threshold=3.0, area="g-riverside-08", model=0.9995),
        ],
        now=NOW,
        actor="detector",
    )
    s, m = service.get(series_only), service.get(with_model)
    assert s is not None and m is not None
    assert m.confidence > s.confidence
    assert (s.certainty, m.certainty) == ("Possible", "Likely")


def test_corroborated_anomalies_may_reach_red_and_single_ones_may_not(service: WarningService) -> None:
    single, pair = service.apply_signals(
        [
            anomaly("gas-a", times_threshold=40.0, area="g-oldtown-01"),
            anomaly("gas-b", times_threshold=40.0, area="g-riverside-08"),
            anomaly("gas-c", times_threshold=40.0, area="g-riverside-08"),
        ],
        now=NOW,
        actor="detector",
    )
    one, two = service.get(single), service.get(pair)
    assert one is not None and two is not None
    assert (one.level, two.level) == ("orange", "red")
    assert "below red" in one.explanation


@pytest.mark.parametrize("line", ["blue", "yellow"])
def test_a_line_crossing_still_sets_the_level(service: WarningService, line: str) -> None:
    strong = anomaly("gas-b", times_threshold=6.0)
    crossing = signal(sensor_id="gas-a", kind="gas", hazard="gas_leak", area="g-oldtown-05", level=line)
    [wid] = service.apply_signals([strong, crossing], now=NOW, actor="detector")
    w = service.get(wid)
    assert w is not None and w.level == line
    assert "warning line" in w.explanation


def test_a_stronger_anomaly_later_escalates_and_the_level_never_falls(service: WarningService) -> None:
    [wid] = service.apply_signals([anomaly("gas-a", times_threshold=1.1)], now=NOW, actor="a")
    service.apply_signals([anomaly("gas-a", times_threshold=6.0, minutes=10)], now=NOW, actor="b")
    w = service.get(wid)
    assert w is not None and w.level != "blue"
    raised = w.level
    service.apply_signals([anomaly("gas-a", times_threshold=1.1, minutes=20)], now=NOW, actor="c")
    w = service.get(wid)
    assert w is not None and w.level == raised
    assert [(e.action, e.to_level) for e in w.events if e.action != "certainty"] == [
        ("opened", "blue"),
        ("escalated", raised),
    ]
