"""Small exact sliding-window statistics whose state is plain JSON data.

Streaming detectors need order statistics (median, quartiles) and running
maxima over a bounded history, updated in O(window) or better per point and
checkpointable so a restarted consumer resumes bit-for-bit.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any, Self


class SortedWindow:
    """The last ``size`` values, kept both in arrival order and sorted.

    A sorted list with ``bisect`` gives exact quantiles in O(1) and updates in
    O(size) memmove, which for a few hundred points is faster in CPython than
    any tree or heap structure.
    """

    __slots__ = ("_arrival", "_sorted", "size")

    def __init__(self, size: int, values: list[float] | None = None) -> None:
        self.size = int(size)
        self._arrival: deque[float] = deque(values or (), maxlen=None)
        self._sorted: list[float] = sorted(self._arrival)

    def __len__(self) -> int:
        return len(self._arrival)

    def push(self, value: float) -> None:
        self._arrival.append(value)
        bisect.insort(self._sorted, value)
        if len(self._arrival) > self.size:
            old = self._arrival.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def quantile(self, q: float) -> float:
        """Lower empirical quantile (no interpolation: cheap and exact to replay)."""
        s = self._sorted
        return s[min(len(s) - 1, int(q * len(s)))]

    def lowest(self) -> float:
        return self._sorted[0]

    def highest(self) -> float:
        return self._sorted[-1]

    def last(self, n: int) -> list[float]:
        """The ``n`` most recent values, oldest first."""
        a = self._arrival
        return [a[j] for j in range(max(0, len(a) - n), len(a))]

    def get_state(self) -> dict[str, Any]:
        return {"size": self.size, "values": list(self._arrival)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        return cls(state["size"], [float(v) for v in state["values"]])


class SlidingMax:
    """Maximum of the last ``size`` pushed values (monotone deque, amortised O(1))."""

    __slots__ = ("_count", "_queue", "size")

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._queue: deque[tuple[int, float]] = deque()
        self._count = 0

    def value(self, default: float = 0.0) -> float:
        return self._queue[0][1] if self._queue else default

    def push(self, value: float) -> None:
        q = self._queue
        while q and q[-1][1] <= value:
            q.pop()
        q.append((self._count, value))
        self._count += 1
        if q[0][0] <= self._count - 1 - self.size:
            q.popleft()

    def get_state(self) -> dict[str, Any]:
        return {"size": self.size, "count": self._count, "queue": [list(e) for e in self._queue]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        m = cls(state["size"])
        m._count = int(state["count"])
        m._queue = deque((int(i), float(v)) for i, v in state["queue"])
        return m
