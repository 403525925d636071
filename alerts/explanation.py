"""Plain-language headlines and explanations an operator can read aloud, built from the evidence."""

from __future__ import annotations

from datetime import datetime

from alerts.certainty import Corroboration
from alerts.levels import Assessment, rank
from alerts.schemas import Evidence

SHOWN_SENSORS = 4
EXCERPT_CHARS = 60


def headline(*, level: str, hazard: str, area: str) -> str:
    return f"{level.capitalize()} {hazard.replace('_', ' ')} warning for {area}"


def explanation(
    *,
    level: str,
    hazard: str,
    area: str,
    evidence: list[Evidence],
    corroboration: Corroboration,
    assessment: Assessment,
    units: dict[str, str],
) -> str:
    """One paragraph an operator can read aloud: which sensors, which reports, why this colour, how sure."""
    parts = [_sensors_part(evidence, units), _reports_part(evidence)]
    said = "; ".join(p for p in parts if p)
    detectors = ""
    if corroboration.detectors > len(corroboration.sensors):
        detectors = f" ({corroboration.detectors} detectors agreeing)"
    return (
        f"{level.capitalize()} {hazard.replace('_', ' ')} risk in {area}: {said}. "
        f"{level_reason(level, assessment)} "
        f"Certainty {corroboration.certainty.lower()} ({corroboration.confidence:.0%}) from "
        f"{len(corroboration.sensors)} sensor(s){detectors} and {corroboration.reports} report(s)."
    )


def level_reason(level: str, a: Assessment) -> str:
    """Why the warning has its colour: the line crossed, or how strong and agreed its anomalies are."""
    if rank(level) > rank(a.level):
        return f"{level.capitalize()} is kept from earlier evidence (the recent evidence alone is {a.level})."
    if a.basis == "line":
        return f"{level.capitalize()} is the highest warning line crossed ({a.sensor_id})."
    if a.basis == "reports":
        return "Blue: from people's reports alone, with no sensor past a line or unusual."
    kind = a.kind.replace("_", " ")
    agree = f"{a.sensors} sensors agree (a colour per doubling)" if a.sensors > 1 else "1 sensor shows it"
    text = (
        f"{level.capitalize()} from anomalies alone: the strongest, at {a.sensor_id}, is "
        f"{a.times_needed:.1f}x the evidence a signal needs; {kind} is of {a.criticality} criticality "
        f"(a colour per {a.step_factor:g}x); {agree}."
    )
    if a.capped:
        text += " Anomalies of one sensor stay below red until a second sensor or reports corroborate them."
    return text


def _sensors_part(evidence: list[Evidence], units: dict[str, str]) -> str:
    def strength(e: Evidence) -> tuple[int, float, datetime]:
        return (rank(e.level) if e.level else -1, e.score, e.observed_at)

    strongest: dict[str, Evidence] = {}
    for e in evidence:
        if e.source != "sensor":
            continue
        best = strongest.get(e.sensor_id)
        if best is None or strength(e) > strength(best):
            strongest[e.sensor_id] = e
    ranked = sorted(strongest.values(), key=lambda e: (-strength(e)[0], -e.score, e.sensor_id))
    parts = []
    for e in ranked[:SHOWN_SENSORS]:
        unit = units.get(e.kind, "")
        what = f"{e.kind.replace('_', ' ')} at {e.sensor_id} read {e.value:g} {unit}".rstrip()
        line = e.details.get("warning_line")
        if e.level is not None and isinstance(line, int | float):
            what += f", past its {e.level} line of {line:g} {unit}".rstrip()
        elif isinstance(e.details.get("baseline"), int | float):
            what += f" against a usual {float(e.details['baseline']):.3g} (anomaly score {e.score:.2f})"
        parts.append(what)
    if len(ranked) > SHOWN_SENSORS:
        parts.append(f"and {len(ranked) - SHOWN_SENSORS} more sensor(s)")
    return "; ".join(parts)


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
