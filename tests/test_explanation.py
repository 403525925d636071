"""Issue 10 item 6: explanations name places and sensors, and give each sensor's current value and trend."""

from __future__ import annotations

from datetime import timedelta

from alerts.certainty import corroborate
from alerts.explanation import Names, explanation, headline
from alerts.levels import LevelRule
from alerts.schemas import Evidence
from config.areas import load_areas
from tests.factories import CATALOG, NOW

AREAS = load_areas()
NAMES = Names(AREAS, CATALOG)
UNITS = {name: k.unit for name, k in CATALOG.kinds.items()}
RULE = LevelRule(signal_threshold=0.66, criticality={n: k.criticality for n, k in CATALOG.kinds.items()})


def reading(
    value: float,
    minutes: int,
    *,
    level: str | None = "orange",
    sensor_id: str = "wl-riverside-01",
    line: float | None = 25.2,
    kind: str = "water_level",
) -> Evidence:
    details: dict[str, object] = {"warning_line": line} if line is not None else {"baseline": 24.0}
    return Evidence(
        observed_at=NOW + timedelta(minutes=minutes),
        source="sensor",
        sensor_id=sensor_id,
        kind=kind,
        value=value,
        score=0.9,
        detector="threshold" if level else "ensemble",
        level=level,
        details=details,
        report_ids=[],
    )


def explain(evidence: list[Evidence], *, level: str = "orange", area: str = "g-riverside-01") -> str:
    return explanation(
        level=level,
        hazard="flood",
        area=area,
        evidence=evidence,
        corroboration=corroborate(evidence),
        assessment=RULE.assess(evidence),
        units=UNITS,
        names=NAMES,
    )


def test_a_rising_gauge_is_named_with_its_place_value_trend_and_line() -> None:
    rising = [reading(25.3, 0), reading(25.6, 20), reading(25.9, 40, level="red", line=25.9)]
    text = explain(rising, level="red")
    assert text.startswith("Red flood risk in Jiangtan North (g-riverside-01): ")
    assert (
        "Lan River gauge, Jiangtan North (upstream) (wl-riverside-01) 25.9 m, "
        "rising 0.6 m in the last 40 min, past the red line (25.9 m)"
    ) in text


def test_a_falling_gauge_gives_its_current_value_and_the_higher_line_it_was_past() -> None:
    text = explain([reading(26.0, 0, level="red", line=25.9), reading(25.3, 90, line=25.2)], level="red")
    assert "(wl-riverside-01) 25.3 m, falling 0.7 m in the last 90 min, past the orange line (25.2 m)" in text
    assert "at 08:00 UTC it read 26 m, past the red line (25.9 m)" in text


def test_a_change_below_the_kinds_least_departure_reads_steady_and_one_reading_has_no_trend() -> None:
    # water_level's min_deviation is 0.1 m.
    steady = explain([reading(25.30, 0), reading(25.35, 150)])
    assert "(wl-riverside-01) 25.35 m, steady in the last 2.5 h, past the orange line" in steady
    single = explain([reading(25.3, 0)])
    assert "(wl-riverside-01) 25.3 m, past the orange line (25.2 m)" in single


def test_an_anomaly_is_quoted_against_its_usual_value() -> None:
    text = explain([reading(24.5, 0, level=None, line=None)], level="blue")
    assert "(wl-riverside-01) 24.5 m, against a usual 24 m (anomaly score 0.90)" in text
    assert "at Lan River gauge, Jiangtan North (upstream) (wl-riverside-01), is" in text


def test_unknown_places_and_unnamed_sensors_fall_back_to_ids() -> None:
    text = explain([reading(5.0, 0, sensor_id="wl-new-9")], area="g-nowhere")
    assert text.startswith("Orange flood risk in g-nowhere: Water level sensor (wl-new-9) 5 m")
    assert headline(level="red", hazard="gas_leak", area="g-oldtown-05", names=NAMES) == (
        "Red gas leak warning for Hongqi (g-oldtown-05)"
    )


def test_certainty_sentence_counts_kinds_of_witness_and_says_what_observed_needs() -> None:
    one_kind = explain([reading(25.3, 0), reading(25.4, 0, sensor_id="wl-riverside-02")])
    assert one_kind.endswith(
        "Certainty likely (77%) from 2 sensor(s) and 0 report(s), 1 kind(s) of witness. "
        "Observed needs a second kind of witness: another kind of sensor, or callers."
    )
    rain = reading(75.0, 0, sensor_id="rf-riverside-01", kind="rainfall", level="red", line=70.0)
    two_kinds = explain([reading(25.3, 0), rain])
    assert two_kinds.endswith(
        "Certainty observed (91%) from 2 sensor(s) and 0 report(s), 2 kind(s) of witness."
    )
