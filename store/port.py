"""The port every time-series store adapter implements, and passes one contract suite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from store.schemas import Point


class TimeSeriesStore(Protocol):
    def write(self, points: Sequence[Point]) -> None:
        """Durably store the batch; writing the same (series, ts) again overwrites it.

        Returns only when the store has accepted every point; raises
        ``StoreError`` otherwise, so the caller keeps the offsets uncommitted.
        """
        ...

    def read(self, sensor_id: str, start_ns: int, end_ns: int, *, limit: int = 10_000) -> list[Point]:
        """Points of one series with start_ns <= ts < end_ns, oldest first."""
        ...

    def read_kind(self, kind: str, start_ns: int, end_ns: int, *, limit: int = 1_000_000) -> list[Point]:
        """Points of every series of one kind, for training models from history."""
        ...

    def count(self, sensor_id: str | None = None) -> int:
        """How many points are stored, for one series or all."""
        ...

    def ping(self) -> bool:
        """True when the store answers now; for /readyz."""
        ...

    def close(self) -> None: ...
