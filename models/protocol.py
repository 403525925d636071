"""The contract every streaming detector keeps.

A detector scores one series. Its whole state is plain data (``get_state``
returns JSON-serialisable values), so a consumer can checkpoint it beside the
Kafka offsets it corresponds to and a restarted consumer resumes exactly where
the last one stopped. ``score_batch`` is the vectorised twin of calling
``score_one`` in a loop and must give identical scores: a point's score depends
only on the points before it (no look-ahead).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class EvidenceRows(Mapping[str, FloatArray]):
    """Named rows of one evidence matrix, a row made only when it is read.

    A batch of one point per series is the common case in a city (a batch holds about one
    reading of each sensor), and a dict of every row cost a view per name per series while
    the engine reads one or two rows, and those only when a point may be a signal.
    """

    __slots__ = ("_index", "_matrix")

    def __init__(self, index: Mapping[str, int], matrix: FloatArray) -> None:
        self._index = index  # name -> row, shared by every batch of a detector class
        self._matrix = matrix

    def __getitem__(self, name: str) -> FloatArray:
        return self._matrix[self._index[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@dataclass(frozen=True, slots=True)
class BatchScores:
    """Scores in [0, 1] for a batch, with per-point evidence arrays of the same length.

    Evidence keys are detector-specific (for example ``baseline``, ``spread``,
    ``deviation``); they let a warning say *why* a point scored high without
    re-running the detector.
    """

    scores: FloatArray
    evidence: Mapping[str, FloatArray] = field(default_factory=dict)

    def evidence_at(self, i: int) -> dict[str, float]:
        return {name: float(values[i]) for name, values in self.evidence.items()}


@runtime_checkable
class StreamingDetector(Protocol):
    """One series' online detector: learns as it scores, never looks ahead."""

    name: ClassVar[str]

    def score_one(self, ts: float, value: float) -> float:
        """Score the point (epoch seconds, value), then learn from it."""
        ...

    def score_batch(self, ts: FloatArray, values: FloatArray) -> BatchScores:
        """Score points in time order; equal to ``score_one`` applied in a loop."""
        ...

    def get_state(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-serialisable data."""
        ...

    @classmethod
    def from_state(cls, state: dict[str, Any], *, coming: int = 0) -> Self:
        """Rebuild a detector that scores the next point as the saved one would.

        ``coming``: how many points the caller will score next in one batch (a restore replays
        the points logged since the snapshot), so a detector with growing buffers can size them
        for those at once; it never changes a score.
        """
        ...
