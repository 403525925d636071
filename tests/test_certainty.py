"""Issue 10 item 7: certainty counts independent witnesses, and two kinds that agree make it "Observed"."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from alerts.certainty import OBSERVED, certainty_of, corroborate
from alerts.schemas import Evidence
from tests.factories import NOW

CERTAINTIES = ["Unlikely", "Possible", "Likely", "Observed"]


def line(sensor_id: str, kind: str = "rainfall", level: str = "orange", minutes: int = 0) -> Evidence:
    return Evidence(
        observed_at=NOW + timedelta(minutes=minutes),
        source="sensor",
        sensor_id=sensor_id,
        kind=kind,
        value=50.0,
        score=0.0,
        detector="threshold",
        level=level,
        details={},
        report_ids=[],
    )


def anomaly(sensor_id: str, score: float, kind: str = "gas", model: float | None = None) -> Evidence:
    details: dict[str, object] = {"baseline": 1.0}
    if model is not None:
        details["multivariate"] = model
    return Evidence(
        observed_at=NOW,
        source="sensor",
        sensor_id=sensor_id,
        kind=kind,
        value=9.0,
        score=score,
        detector="ensemble",
        level=None,
        details=details,
        report_ids=[],
    )


def burst(*report_ids: str, minutes: int = 0) -> Evidence:
    return Evidence(
        observed_at=NOW + timedelta(minutes=minutes),
        source="reports",
        sensor_id="",
        kind="report:gas",
        value=float(len(report_ids)),
        score=0.99,
        detector="reportburst",
        level=None,
        details={"sources": "hotline"},
        report_ids=list(report_ids),
    )


def test_a_red_gas_gauge_with_three_callers_is_observed_and_beats_two_rain_gauges() -> None:
    gas_and_callers = corroborate([line("g-oldtown-05", kind="gas", level="red"), burst("c1", "c2", "c3")])
    two_rain_gauges = corroborate([line("rg-1"), line("rg-2")])
    assert gas_and_callers.certainty == "Observed"
    assert two_rain_gauges.certainty == "Likely"
    assert gas_and_callers.confidence > two_rain_gauges.confidence


def test_one_gauge_past_its_line_is_likely_and_two_kinds_of_gauge_are_observed() -> None:
    assert corroborate([line("rg-1")]).certainty == "Likely"
    rain_and_river = corroborate([line("rg-1"), line("wl-1", kind="water_level")])
    assert (rain_and_river.certainty, rain_and_river.kinds) == ("Observed", 2)


def test_any_number_of_one_kind_stays_below_observed_and_callers_alone_below_likely() -> None:
    gauges = corroborate([line(f"rg-{n}") for n in range(40)])
    callers = corroborate([burst(*(f"c{n}" for n in range(200)))])
    assert gauges.certainty == "Likely" and gauges.confidence < OBSERVED
    assert callers.certainty == "Possible"


def test_one_detector_alone_is_possible_and_a_second_detector_makes_it_likely() -> None:
    assert corroborate([anomaly("gas-a", 0.999999)]).certainty == "Possible"
    both = corroborate([anomaly("gas-a", 0.95, model=0.9995)])
    assert (both.certainty, both.detectors) == ("Likely", 2)


def test_a_burst_citing_its_calls_again_adds_no_one() -> None:
    first = corroborate([line("g-1", kind="gas"), burst("c1", "c2", "c3")])
    cited_again = burst("c1", "c2", "c3", minutes=5)
    again = corroborate([line("g-1", kind="gas"), burst("c1", "c2", "c3"), cited_again])
    assert again == first and again.reports == 3


def test_no_witness_is_unlikely() -> None:
    assert corroborate([]).certainty == "Unlikely"
    assert certainty_of(0.05) == "Unlikely"


# ---- properties ------------------------------------------------------------------------------

KINDS = ["rainfall", "water_level", "gas"]
LEVELS = [None, "blue", "red"]


@st.composite
def sensor_evidence(draw: st.DrawFn, sensor_id: str) -> Evidence:
    kind = draw(st.sampled_from(KINDS))
    level = draw(st.sampled_from(LEVELS))
    if level is not None:
        return line(sensor_id, kind=kind, level=level)
    model = draw(st.one_of(st.none(), st.floats(0.0, 1.0)))
    return anomaly(sensor_id, draw(st.floats(0.0, 0.999999)), kind=kind, model=model)


@st.composite
def witnesses(draw: st.DrawFn) -> list[Evidence]:
    sensors = draw(st.integers(0, 6))
    rows = [draw(sensor_evidence(f"s{n}")) for n in range(sensors)]
    callers = draw(st.integers(0, 8))
    if callers:
        rows.append(burst(*(f"c{n}" for n in range(callers))))
    return rows


def rank(certainty: str) -> int:
    return CERTAINTIES.index(certainty)


@given(witnesses(), st.data())
def test_an_independent_witness_never_lowers_certainty(rows: list[Evidence], data: st.DataObject) -> None:
    before = corroborate(rows)
    newcomer = data.draw(st.one_of(sensor_evidence("new-sensor"), st.just(burst("new-caller"))))
    after = corroborate([*rows, newcomer])
    assert after.confidence >= before.confidence
    assert rank(after.certainty) >= rank(before.certainty)


@given(witnesses(), st.data())
def test_a_witness_seen_again_never_raises_certainty(rows: list[Evidence], data: st.DataObject) -> None:
    before = corroborate(rows)
    if not rows:
        return
    seen = data.draw(st.sampled_from(rows))
    cited = data.draw(st.lists(st.sampled_from(seen.report_ids), unique=True)) if seen.report_ids else []
    again = seen.model_copy(update={"observed_at": seen.observed_at + timedelta(minutes=3)})
    repeats = [again, burst(*cited, minutes=7)] if cited else [again]
    after = corroborate([*rows, *repeats])
    assert after.confidence <= before.confidence
    assert rank(after.certainty) <= rank(before.certainty)
