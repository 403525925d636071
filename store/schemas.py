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


class StoreError(Exception):
    """The store refused or could not be reached; the caller must not commit offsets."""


class StoreUnavailable(StoreError):
    """A transient failure worth retrying (connection refused, timeout, 5xx)."""
