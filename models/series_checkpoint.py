"""What one series' checkpoint writes: a snapshot of its whole state, or the points learned since the last.

``models.engine`` decides which (see ``ScoringEngine.checkpoint``);
``alerts.checkpoints`` stores them. A delta is the raw points, not a diff of
the state: the state is a deterministic function of the points, and a point
is 24 bytes where the state a full window holds is tens of KiB.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from config.positions import Position
from models import state_codec
from models.protocol import FloatArray

INCREMENTAL_FORMAT = 4  # a binary snapshot plus the points learned since (format 3: one JSON state)
POINT_BYTES = 24  # ts_ns (int64), value and per-kind model score (float64 each)
_ONE_POINT = struct.Struct("<qdd")


class SeriesCheckpoint(NamedTuple):
    """One series' share of a checkpoint: exactly one of ``snapshot`` and ``delta`` is set.

    ``learned`` counts every point the series has taken, these included: it orders
    a series' deltas and tells which a snapshot made obsolete. ``health`` is the
    series' health now, readable without replaying anything (``app.silence``).
    A named tuple, not a frozen dataclass: a checkpoint makes one per series it saves, and a
    frozen dataclass sets each of its seven fields through ``object.__setattr__``.
    """

    sensor_id: str
    detector: str
    position: Position | None
    learned: int
    health: dict[str, Any]
    snapshot: bytes | None = None
    delta: bytes | None = None


@dataclass(frozen=True, slots=True)
class Learned:
    """Points a series took after its snapshot, as they were taken (NaN: no per-kind model score)."""

    ts_ns: np.ndarray
    values: FloatArray
    multivariate: FloatArray

    @property
    def nbytes(self) -> int:
        return len(self.values) * POINT_BYTES


def encode_points(points: list[tuple[int, float, float]]) -> bytes:
    """Three little-endian columns: all timestamps, then all values, then all model scores.

    ``struct``, not numpy: a series saves one or two points a checkpoint, and for one point three
    small arrays took 1.7 µs where one ``pack`` takes 0.14 (``timeit``), with the same bytes.
    """
    n = len(points)
    if n == 1:  # one point's three columns are the point itself
        return _ONE_POINT.pack(*points[0])
    if not n:
        return b""
    ts, values, mv = zip(*points, strict=True)
    return struct.pack(f"<{n}q{2 * n}d", *ts, *values, *mv)


def decode_points(blob: bytes) -> Learned:
    if len(blob) % POINT_BYTES:
        raise state_codec.StateDecodeError(f"a delta of {len(blob)} bytes is not whole points")
    n = len(blob) // POINT_BYTES
    return Learned(
        ts_ns=np.frombuffer(blob, dtype="<i8", count=n),
        values=np.frombuffer(blob, dtype="<f8", count=n, offset=8 * n),
        multivariate=np.frombuffer(blob, dtype="<f8", count=n, offset=16 * n),
    )


def decode_runs(blobs: Sequence[bytes]) -> Learned:
    """Several checkpoints' deltas as one run, in the order given, read as one array.

    A restored series replays tens of deltas; three ``frombuffer`` calls a delta and the joins
    after them were a tenth of a restore (``bench.restore``). Delta k, of n_k points after P_k
    points in the deltas before it, holds its timestamps at cells 3*P_k.., its values n_k cells
    on and its model scores 2*n_k on; so the g-th point of the run is at g + 2*P_k.
    """
    if len(blobs) == 1:
        return decode_points(blobs[0])
    sizes = np.fromiter(map(len, blobs), np.intp, len(blobs))
    if (sizes % POINT_BYTES).any():
        raise state_codec.StateDecodeError("a delta is not whole points")
    counts = sizes // POINT_BYTES
    cells = np.frombuffer(b"".join(blobs), dtype="<f8")
    at_ts = np.arange(int(counts.sum())) + np.repeat(2 * (np.cumsum(counts) - counts), counts)
    shift = np.repeat(counts, counts)
    return Learned(
        ts_ns=cells.view("<i8")[at_ts], values=cells[at_ts + shift], multivariate=cells[at_ts + 2 * shift]
    )


def encode_snapshot(state: dict[str, Any]) -> bytes:
    return state_codec.encode(state)


def decode_snapshot(blob: bytes) -> dict[str, Any]:
    state = state_codec.decode(blob)
    if not isinstance(state, dict):
        raise state_codec.StateDecodeError("a snapshot is a mapping")
    return state
