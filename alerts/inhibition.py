"""Inhibition: while a cause is open, the warnings it explains are muted. Pure: no I/O.

Each rule names the cause's hazard, how far its shadow reaches, and why. A muted warning's
``muted_by`` is ``inhibited:<cause warning id>``, so it says which warning to look at instead.
A warning backed by people's reports as well is not asked about here: ``sensors`` are the sensors
of its evidence, and a warning is inhibited only when every one of them lies in one cause's shadow (a
faulty sensor inhibits the warnings that stand on it alone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from config.catalog import SENSOR_FAULT

INHIBITED_PREFIX = "inhibited:"
POWER_OUTAGE = "power_outage"  # the power_load kind's hazard (config/city/sensors.yaml, taxonomy.yaml)


@dataclass(frozen=True, slots=True)
class Rule:
    cause: str  # the hazard of the cause warning
    reach: Literal["sensor", "area"]  # the cause's own sensor (its subject), or every sensor in its area
    reason: str


RULES: tuple[Rule, ...] = (
    Rule(
        SENSOR_FAULT,
        "sensor",
        "a silent, stuck or impossible sensor is no evidence of its hazard: the maintenance job is the "
        "warning to act on, not what the broken sensor seems to say",
    ),
    Rule(
        POWER_OUTAGE,
        "area",
        "sensors without mains power drop out or read what the outage does (pumps stopped, lights "
        "dark): while it lasts, the outage is the cause to act on in that area",
    ),
)


@dataclass(frozen=True, slots=True)
class Cause:
    """An open warning that may inhibit others."""

    warning_id: str
    hazard: str
    area: str
    subject: str | None  # the sensor of a sensor_fault warning


def inhibitor(
    causes: Iterable[Cause],
    *,
    hazard: str,
    sensors: Sequence[str],
    sensor_area: Mapping[str, str],
    within: Callable[[str, str], bool],
    rules: Sequence[Rule] = RULES,
) -> Cause | None:
    """The open cause that mutes a ``hazard`` warning standing on ``sensors``, or None.

    A cause never inhibits a warning of a hazard some rule treats as a cause (an outage does not
    hide a sensor fault, nor another outage). Of several, the one with the smallest id, so the
    answer does not depend on the order they were read in.
    """
    if not sensors or hazard in {r.cause for r in rules}:
        return None
    reach = {r.cause: r.reach for r in rules}
    found = [
        c
        for c in causes
        if c.hazard in reach and all(_shadows(c, reach[c.hazard], s, sensor_area, within) for s in sensors)
    ]
    return min(found, key=lambda c: c.warning_id, default=None)


def _shadows(
    cause: Cause, reach: str, sensor: str, sensor_area: Mapping[str, str], within: Callable[[str, str], bool]
) -> bool:
    if reach == "sensor":
        return cause.subject == sensor
    area = sensor_area.get(sensor)
    return area is not None and within(area, cause.area)


def inhibitor_id_of(muted_by: str | None) -> str | None:
    """The cause warning's id in a ``muted_by``, or None when not inhibited."""
    if muted_by is None or not muted_by.startswith(INHIBITED_PREFIX):
        return None
    return muted_by[len(INHIBITED_PREFIX) :]


def mute_tag(cause: Cause) -> str:
    return f"{INHIBITED_PREFIX}{cause.warning_id}"
