"""Plain-language headlines and explanations an operator can read aloud, built from the evidence.

Places and sensors are named as the city names them (the areas file, the
catalog), with their ids in brackets for operators who look them up. Each
sensor is given with its current value (its latest evidence) and its trend
over the evidence the warning holds, so "past the orange line" also says
whether the water is still rising.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.certainty import Corroboration
from alerts.levels import Assessment, rank
from alerts.schemas import Evidence
from config.areas import AreaIndex
from config.catalog import Catalog

SHOWN_SENSORS = 4
EXCERPT_CHARS = 60


@dataclass(frozen=True, slots=True)
class Names:
    """Names people know for the ids in evidence; either source may be missing (ids are shown then)."""

    areas: AreaIndex | None = None
    catalog: Catalog | None = None

    def place(self, area_id: str) -> str:
        found = self.areas.area(area_id) if self.areas is not None else None
        return f"{found.name} ({area_id})" if found is not None else area_id

    def sensor(self, sensor_id: str, kind: str) -> str:
        found = self.catalog.current().sensor(sensor_id) if self.catalog is not None else None
        name = found.name if found is not None and found.name else f"{kind.replace('_', ' ')} sensor"
        return f"{name[:1].upper()}{name[1:]} ({sensor_id})"

    def steady_within(self, kind: str) -> float:
        """A change below the kind's ``min_deviation`` (the least departure worth a warning) is steady."""
        found = self.catalog.current().kinds.get(kind) if self.catalog is not None else None
        return found.min_deviation if found is not None else 0.0


def headline(*, level: str, hazard: str, area: str, names: Names | None = None) -> str:
    return headline_for(level=level, hazard=hazard, place=(names or Names()).place(area))


def headline_for(*, level: str, hazard: str, place: str) -> str:
    """The headline for a place already named (a roll-up names the whole city, which has no area)."""
    return f"{level.capitalize()} {hazard.replace('_', ' ')} warning for {place}"


def explanation(
    *,
    level: str,
    hazard: str,
    area: str,
    evidence: list[Evidence],
    corroboration: Corroboration,
    assessment: Assessment,
    units: dict[str, str],
    names: Names | None = None,
) -> str:
    """One paragraph an operator can read aloud: which sensors, which reports, why this colour, how sure."""
    names = names or Names()
    parts = [_sensors_part(evidence, units, names), _reports_part(evidence)]
    said = "; ".join(p for p in parts if p)
    detectors = ""
    if corroboration.detectors > len(corroboration.sensors):
        detectors = f" ({corroboration.detectors} detectors agreeing)"
    text = (
        f"{level.capitalize()} {hazard.replace('_', ' ')} risk in {names.place(area)}: {said}. "
        f"{level_reason(level, assessment, names)} "
        f"Certainty {corroboration.certainty.lower()} ({corroboration.confidence:.0%}) from "
        f"{len(corroboration.sensors)} sensor(s){detectors} and {corroboration.reports} report(s), "
        f"{corroboration.kinds} kind(s) of witness."
    )
    if corroboration.certainty == "Likely" and corroboration.kinds == 1:
        # Witnesses of one kind never reach "Observed" (alerts.certainty): say what would.
        text += " Observed needs a second kind of witness: another kind of sensor, or callers."
    return text


def level_reason(level: str, a: Assessment, names: Names | None = None) -> str:
    """Why the warning has its colour: the line crossed, or how strong and agreed its anomalies are."""
    names = names or Names()
    if rank(level) > rank(a.level):
        return f"{level.capitalize()} is kept from earlier evidence (the recent evidence alone is {a.level})."
    if a.basis == "line":
        crossed_by = names.sensor(a.sensor_id, a.kind)
        return f"{level.capitalize()} is the highest warning line crossed ({crossed_by})."
    if a.basis == "reports":
        return "Blue: from people's reports alone, with no sensor past a line or unusual."
    kind = a.kind.replace("_", " ")
    agree = f"{a.sensors} sensors agree (a colour per doubling)" if a.sensors > 1 else "1 sensor shows it"
    text = (
        f"{level.capitalize()} from anomalies alone: the strongest, at {names.sensor(a.sensor_id, a.kind)}, "
        f"is {a.times_needed:.1f}x the evidence a signal needs; {kind} is of {a.criticality} criticality "
        f"(a colour per {a.step_factor:g}x); {agree}."
    )
    if a.capped:
        text += " Anomalies of one sensor stay below red until a second sensor or reports corroborate them."
    return text


def _strength(e: Evidence) -> tuple[int, float, datetime]:
    return (rank(e.level) if e.level else -1, e.score, e.observed_at)


def _sensors_part(evidence: list[Evidence], units: dict[str, str], names: Names) -> str:
    series: dict[str, list[Evidence]] = {}
    for e in evidence:
        if e.source != "reports":
            series.setdefault(e.sensor_id, []).append(e)
    for rows in series.values():
        rows.sort(key=lambda e: e.observed_at)
    strongest = {sid: max(rows, key=_strength) for sid, rows in series.items()}
    ranked = sorted(strongest, key=lambda sid: (-_strength(strongest[sid])[0], -strongest[sid].score, sid))
    parts = [_sensor_text(series[sid], strongest[sid], units, names) for sid in ranked[:SHOWN_SENSORS]]
    if len(ranked) > SHOWN_SENSORS:
        parts.append(f"and {len(ranked) - SHOWN_SENSORS} more sensor(s)")
    return "; ".join(parts)


def _sensor_text(rows: list[Evidence], peak: Evidence, units: dict[str, str], names: Names) -> str:
    """One sensor: its name, current value, trend, the line it is past, and its peak if that was higher."""
    now = rows[-1]
    unit = units.get(now.kind, "")
    text = f"{names.sensor(now.sensor_id, now.kind)} {_amount(now.value, unit)}"
    trend = _trend(rows, unit, names.steady_within(now.kind))
    if trend:
        text += f", {trend}"
    text += _why_unusual(now, unit)
    if peak is not now and _strength(peak)[0] > _strength(now)[0]:
        then = f"at {peak.observed_at:%H:%M} UTC it read {_amount(peak.value, unit)}"
        text += f"; {then}{_why_unusual(peak, unit)}"
    return text


def _why_unusual(e: Evidence, unit: str) -> str:
    if e.level is not None:
        line = e.details.get("warning_line")
        value = f" ({_amount(float(line), unit)})" if isinstance(line, int | float) else ""
        return f", past the {e.level} line{value}"
    baseline = e.details.get("baseline")
    if isinstance(baseline, int | float):
        return f", against a usual {_amount(float(baseline), unit)} (anomaly score {e.score:.2f})"
    return ""


def _trend(rows: list[Evidence], unit: str, steady_within: float) -> str:
    """Rising, falling or steady from the sensor's first evidence to its latest; empty for one reading."""
    first, last = rows[0], rows[-1]
    span = last.observed_at - first.observed_at
    if span <= timedelta(0):
        return ""
    change = last.value - first.value
    over = f"in the last {_duration(span)}"
    if abs(change) < steady_within or change == 0:
        return f"steady {over}"
    return f"{'rising' if change > 0 else 'falling'} {_amount(abs(change), unit)} {over}"


def _amount(value: float, unit: str) -> str:
    """Centimetres on a river gauge, never an exponent (a strain of 1250 reads 1250), no trailing zeros."""
    decimals = 0 if abs(value) >= 1000 else 2 if abs(value) >= 1 else 3
    number = f"{value:.{decimals}f}"
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return f"{'0' if number == '-0' else number} {unit}".rstrip()


def _duration(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    if minutes < 1:
        return f"{span.total_seconds():.0f} s"
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _reports_part(evidence: list[Evidence]) -> str:
    bursts = [e for e in evidence if e.source == "reports"]
    if not bursts:
        return ""
    ids = {r for e in bursts for r in e.report_ids}
    latest = max(bursts, key=lambda e: e.observed_at)
    category = latest.kind.removeprefix("report:").replace("_", " ")
    sources = sorted({str(s) for e in bursts for s in str(e.details.get("sources", "")).split(",") if s})
    text = f"{len(ids)} {category} report(s) from the public"
    if sources:
        text += f" ({', '.join(sources)})"
    excerpt = latest.details.get("excerpt")
    if isinstance(excerpt, str) and excerpt:
        text += f', latest: "{excerpt[:EXCERPT_CHARS]}"'
    return text
