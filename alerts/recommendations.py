"""Recommendations: the city's playbook steps for a hazard at a level, made concrete for one warning.

Each says what to do, where (the area, its population where the areas file has it, the sensors
behind the warning and the register's real assets the action is about), who does it, by when, and
why (what triggered the level), so the EOC can hand it on as it stands.

Ranked most urgent first: shortest deadline, then the playbook's order, so a red gas warning puts
"evacuate" (10 minutes) before "dispatch an inspector" (60). Deadlines count from the observation
that triggered the level, not from when the service processed it: a replay of a leak that ended
hours ago gives the same deadlines as the live day. Each has a ``rid`` that depends only on the
hazard, the playbook level and the action, so the same action keeps its id when the warning's
level changes and an operator's accept or done still applies to it.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alerts.levels import Assessment, LevelRule, rank
from alerts.schemas import Evidence
from alerts.witnesses import report_ids
from config.areas import AreaIndex
from config.assets import Asset, AssetRegister, great_circle_m
from config.catalog import LEVELS
from config.playbooks import Playbooks
from config.timeutil import from_ns
from models.signals import Signal

WINDOW_EVIDENCE = 500  # the most recent rows of a window assessed, as the warning service does


@dataclass(frozen=True, slots=True)
class Trigger:
    """The observation that earned a warning its level, and a one-line reason naming it."""

    at: datetime
    why: str


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
    assets: AssetRegister | None = None,
    areas: AreaIndex | None = None,
) -> list[dict[str, Any]]:
    """``now``: the time deadlines count from (the triggering observation's); ``why``: the short reason.

    ``facts`` fill the playbook's named fields (a sensor fault's sensor, place and last good
    reading); ``location`` pins the one thing a warning is about (name, lat, lon); ``assets`` and
    ``areas`` let an action that names an asset kind name the real ones.
    """
    place = areas.area(area) if areas is not None else None
    base: dict[str, Any] = {"area": area, "sensors": sorted(sensors)}
    if place is not None:
        base["area_name"] = place.name
        if place.population is not None:
            base["population"] = place.population
    if location is not None:
        base["location"] = dict(location)
    ranked = []
    for order, (action_level, index, a) in enumerate(_cumulative(playbooks, hazard, level)):
        where = dict(base)
        if a.asset is not None:
            where["assets"] = named_assets(assets, areas, area, a.asset) if assets and areas else []
        item = {
            "rid": rid(hazard, action_level, index, a.action),
            "level": action_level,
            "what": a.action.format_map(facts) if facts is not None else a.action,
            "where": where,
            "who": a.who,
            "within_minutes": a.within_minutes,
            "by": (now + timedelta(minutes=a.within_minutes)).isoformat(),
            "why": why,
        }
        ranked.append((a.within_minutes, order, item))
    ranked.sort(key=lambda t: (t[0], t[1]))
    return [{"rank": i, **item} for i, (_, _, item) in enumerate(ranked, 1)]


def _cumulative(playbooks: Playbooks, hazard: str, level: str) -> list[tuple[str, int, Any]]:
    """(the action's own level, its index there, the action): the playbook's order, blue upward."""
    by_level = playbooks.hazards.get(hazard, {})
    return [
        (lvl, i, a)
        for lvl in LEVELS[: LEVELS.index(level) + 1]  # type: ignore[arg-type]
        for i, a in enumerate(by_level.get(lvl, []))
    ]


def rid(hazard: str, level: str, index: int, action: str) -> str:
    """Stable across re-issues and restarts; changes if the city rewrites the action itself."""
    digest = hashlib.sha256(f"{hazard}\n{level}\n{index}\n{action}".encode()).hexdigest()
    return f"{level}-{index + 1}-{digest[:8]}"


def named_assets(register: AssetRegister, areas: AreaIndex, area_id: str, kind: str) -> list[dict[str, Any]]:
    """The assets of this kind inside the area (a district's: inside any of its grids), nearest its
    centre first; if none, the single nearest one; none at all for an area not on the map."""
    area = areas.area(area_id)
    if area is None:
        return []
    centre = area.geometry.centroid
    candidates = register.of_kind(kind)
    inside = [a for a in candidates if a.area == area_id or areas.parent_of(a.area) == area_id]

    def distance(a: Asset) -> float:
        return great_circle_m(centre.y, centre.x, a.lat, a.lon)

    chosen = sorted(inside, key=lambda a: (distance(a), a.id))
    if not chosen and candidates:
        chosen = [min(candidates, key=lambda a: (distance(a), a.id))]
    return [
        {
            "id": a.id,
            "kind": a.kind,
            "name": a.name,
            "lat": a.lat,
            "lon": a.lon,
            "distance_m": round(distance(a)),
            "inside": a in inside,
            "owner": a.owner,
            **({"capacity": a.capacity} if a.capacity is not None else {}),
        }
        for a in chosen
    ]


def trigger(
    rule: LevelRule,
    evidence: Sequence[Evidence],
    run: Sequence[Signal],
    *,
    level: str,
    window: timedelta,
    units: Mapping[str, str],
) -> Trigger | None:
    """The first new signal (in time) whose window of evidence earns ``level`` or more, with the reason
    its assessment gives; None if no new signal's window does (the level was already held)."""
    ordered = sorted(evidence, key=lambda e: e.observed_at)
    times = [e.observed_at for e in ordered]
    for at in sorted({from_ns(s.ts_ns) for s in run}):
        hi = bisect_right(times, at)
        lo = max(bisect_left(times, at - window), hi - WINDOW_EVIDENCE)
        seen = ordered[lo:hi]
        assessed = rule.assess(seen)
        if rank(assessed.level) >= rank(level):
            return Trigger(at, reason(assessed, seen, units))
    return None


def reason(assessed: Assessment, evidence: Sequence[Evidence], units: Mapping[str, str]) -> str:
    """What set the level, in one line: the line a sensor crossed with its value, the anomaly, or the
    number of reports; the full story stays in the warning's explanation."""
    reports = len(report_ids(evidence))
    calls = f"; {reports} report(s)" if reports else ""
    if assessed.basis == "line":
        crossed = [e for e in evidence if e.sensor_id == assessed.sensor_id and e.level == assessed.level]
        top = max(crossed, key=lambda e: e.value) if crossed else None
        unit = units.get(assessed.kind, "")
        value = f" read {top.value:g}{' ' + unit if unit else ''}" if top is not None else ""
        return f"{assessed.sensor_id}{value}, past the {assessed.level} line{calls}"
    if assessed.basis == "anomaly":
        others = f", {assessed.sensors} sensors agree" if assessed.sensors > 1 else ""
        return (
            f"{assessed.sensor_id} ({assessed.kind}) anomaly {assessed.times_needed:.1f}x "
            f"what signalling needs{others}{calls}"
        )
    return f"{reports} report(s) in the area" if reports else "signals in the area"
