"""The port every time-series store adapter implements, and passes one contract suite.

Adapters tell the ingest loop what kind of failure a write met, because the
loop answers each differently (``ingest.errors`` classifies them once):

- ``StoreUnavailable``: the store could not answer (connection refused,
  timeout, 5xx, 429, a locked file). Retried with backoff; the data is fine.
- ``StoreRefused``: the store answered and refused the data itself (InfluxDB
  400, a constraint). Retrying cannot help; the batch is split until the
  refused points are found, and only those are dead-lettered.
- any other ``StoreError``: the store refuses us, not the data (bad
  credentials, a missing database). Neither retrying nor dead-lettering helps:
  the worker stops and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from store.schemas import Point


class StoreError(Exception):
    """The store failed a call; the caller must not commit offsets."""


class StoreUnavailable(StoreError):
    """A transient failure worth retrying (connection refused, timeout, 5xx)."""


class StoreRefused(StoreError):
    """The store refused the points of this write; the message says which rule they broke."""


class TimeSeriesStore(Protocol):
    def write(self, points: Sequence[Point]) -> None:
        """Durably store the batch; writing the same (series, ts) again overwrites it.

        Returns only when the store has accepted every point; raises a
        ``StoreError`` (see the module docstring for which) otherwise, so the
        caller keeps the offsets uncommitted.
        """
        ...

    def read(self, sensor_id: str, start_ns: int, end_ns: int, *, limit: int = 10_000) -> list[Point]:
        """Points of one series with start_ns <= ts < end_ns, oldest first."""
        ...

    def read_kind(self, kind: str, start_ns: int, end_ns: int, *, limit: int = 1_000_000) -> list[Point]:
        """Points of every series of one kind, for training models from history."""
        ...

    def count(self, sensor_id: str | None = None, *, since_ns: int | None = None) -> int:
        """How many points are stored, for one series or all; with ``since_ns``, only those at or after it."""
        ...

    def ping(self) -> bool:
        """True when the store answers now; for /readyz."""
        ...

    def close(self) -> None: ...
