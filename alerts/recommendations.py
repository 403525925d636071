"""Recommendations: the city's playbook steps for a hazard at a level, made concrete for one warning.

Each says what to do, where (the area and the sensors behind the warning), who
does it, by when, and why (the warning's explanation), so the EOC can hand it
on as it stands.
"""

from __future__ import annotations

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
