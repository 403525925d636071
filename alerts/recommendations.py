"""Recommendations: the city's playbook steps for a hazard at a level, made concrete for one warning.

Each says what to do, where (the area and the sensors behind the warning), who
does it, by when, and why (the warning's explanation), so the EOC can hand it
on as it stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from config.playbooks import Playbooks


def recommend(
    *,
    playbooks: Playbooks,
    hazard: str,
    level: str,
    area: str,
    sensors: list[str],
    now: datetime,
    why: str,
    facts: Mapping[str, str] | None = None,
    location: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """``facts`` fill the playbook's named fields (a sensor fault's sensor, place and last good
    reading); ``location`` pins the one asset a warning is about (name, lat, lon)."""
    where: dict[str, Any] = {"area": area, "assets": sorted(sensors)}
    if location is not None:
        where["location"] = dict(location)
    return [
        {
            "what": a.action.format_map(facts) if facts is not None else a.action,
            "where": where,
            "who": a.who,
            "by": (now + timedelta(minutes=a.within_minutes)).isoformat(),
            "why": why,
        }
        for a in playbooks.actions_for(hazard, level)
    ]
