"""What the store holds: points of a series, and errors it raises."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Point:
    """One stored reading. A series is a ``sensor_id``; (series, ts_ns) is its identity."""

    sensor_id: str
    kind: str
    area: str
    ts_ns: int
    value: float


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """One accepted human report; ``report_id`` is its identity, so a resend is stored once."""

    report_id: str
    source: str
    category: str
    category_inferred: bool
    text: str
    ts_ns: int
    area: str
    lat: float | None = None
    lon: float | None = None
    outside_areas: bool = False
    media: tuple[str, ...] = ()
