"""Plain-language headlines, explanations and recommendations, built from the evidence."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from config.playbooks import Playbooks
from models.signals import Signal


def headline(*, level: str, hazard: str, area: str) -> str:
    return f"{level.capitalize()} {hazard.replace('_', ' ')} warning for {area}"


def explanation(*, level: str, hazard: str, area: str, signals: list[Signal], units: dict[str, str]) -> str:
    """One paragraph an operator can read aloud: which sensors, what values, which lines."""
    parts = []
    for s in sorted(signals, key=lambda s: (-(s.level is not None), -s.score))[:5]:
        unit = units.get(s.kind, "")
        what = f"{s.kind.replace('_', ' ')} at {s.sensor_id} read {s.value:g} {unit}".rstrip()
        if s.level is not None and "warning_line" in s.evidence:
            what += f", past its {s.level} line of {s.evidence['warning_line']:g} {unit}".rstrip()
        elif "baseline" in s.evidence:
            what += f" against a usual {float(s.evidence['baseline']):.3g}"
        what += f" (anomaly score {s.score:.2f})"
        parts.append(what)
    more = len(signals) - len(parts)
    tail = f"; and {more} more signal(s)" if more > 0 else ""
    return (
        f"{level.capitalize()} {hazard.replace('_', ' ')} risk in {area}: "
        + "; ".join(parts) + tail + "."
    )


def recommendations(
    *, playbooks: Playbooks, hazard: str, level: str, area: str, sensors: list[str],
    now: datetime, why: str,
) -> list[dict[str, Any]]:
    return [
        {
            "what": a.action,
            "where": {"area": area, "assets": sorted(sensors)},
            "who": a.who,
            "by": (now + timedelta(minutes=a.within_minutes)).isoformat(),
            "why": why,
        }
        for a in playbooks.actions_for(hazard, level)
    ]
