"""A compact binary form for scoring state: JSON for its shape, raw little-endian arrays for its numbers.

Why not JSON alone: a detector's state is mostly long runs of floats (windows
of thousands of values), and turning each into text and back was half of an
ingest worker's time in ``bench.pipeline``'s profile. Here every list of at
least ``MIN_ARRAY`` numbers of one type, and every list of equal rows holding
as many, becomes a reference into a byte block that numpy reads and writes as
it is (and comes back as an array). Floats keep every bit, so a restored
detector scores exactly as the one saved. Why not pickle: these bytes are read
back from a database, and unpickling what a database holds would run whatever
it says.

Layout: ``MAGIC``, the JSON header's length (4 bytes), the header, then the
arrays, each at an offset the header names.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

MAGIC = b"CWS1"
MIN_ARRAY = 8  # shorter lists stay in the JSON: a reference would be longer than the numbers
_ARRAY_KEY = "$a"
_DTYPES = {"f8": np.dtype("<f8"), "i8": np.dtype("<i8")}
_NUMBERS = frozenset((float, int))  # exact types: a bool is no number here, nor a numpy scalar
_SCALARS = frozenset((float, int, bool, str, type(None)))
_LIST = frozenset((list,))


class StateDecodeError(ValueError):
    """The bytes are not a state this codec wrote."""


def encode(state: Any) -> bytes:
    blocks: list[bytes] = []
    size = 0

    def pack(value: Any) -> Any:
        nonlocal size
        if isinstance(value, np.ndarray):
            array = value
        elif isinstance(value, dict):
            if set(map(type, value.values())) <= _SCALARS:  # parameters, counters: nothing to pack
                return value
            return {key: pack(item) for key, item in value.items()}
        elif isinstance(value, list | tuple):
            # Every item's exact type, looked at in C: a run of numbers of one type becomes an
            # array, a list of plain scalars stays as it is, anything else is packed item by item.
            # (A state holds dozens of short lists of numbers; asking each item whether it was a
            # container was an eighth of encoding snapshots under cProfile, in bench.scoring.)
            types = set(map(type, value))
            if len(value) >= MIN_ARRAY and len(types) == 1 and types <= _NUMBERS:
                array = np.asarray(value)
            elif types <= _SCALARS:
                return value
            elif types == _LIST and _is_table(value):
                array = np.asarray(value)
            elif types == _LIST and _short_rows_of_scalars(value):  # a seasonal table still filling
                return value
            else:
                return [pack(item) for item in value]
        else:
            return value
        code = "f8" if array.dtype.kind == "f" else "i8"
        data = np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
        ref = {_ARRAY_KEY: [code, size, array.size, list(array.shape)]}
        blocks.append(data)
        size += len(data)
        return ref

    header = json.dumps(pack(state), separators=(",", ":"), allow_nan=True).encode()
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *blocks])


def _is_table(rows: Sequence[list[Any]]) -> bool:
    """Whether rows of numbers are one 2-D array: one length, ``MIN_ARRAY`` numbers at least, one type.

    A seasonal table (48 slots of a week of daily means), today's sums and a series' recent points
    are lists of short rows, each too short to be an array on its own: as text in the JSON, they
    were about two fifths of a gas series' header at history 350 (3,378 bytes, 2,000 without).
    """
    widths = set(map(len, rows))
    if len(widths) != 1 or len(rows) * widths.pop() < MIN_ARRAY:
        return False
    cells = set(map(type, itertools.chain.from_iterable(rows)))
    return len(cells) == 1 and cells <= _NUMBERS


def _short_rows_of_scalars(rows: Sequence[list[Any]]) -> bool:
    """Whether no row would be an array or hold anything to pack: the rows stay as they are, looked
    at once. With a call a row (and one a scalar of a flat dict), encoding a snapshot at history
    350 made 136 calls; 59 now (cProfile)."""
    return max(map(len, rows)) < MIN_ARRAY and set(map(type, itertools.chain.from_iterable(rows))) <= _SCALARS


def decode(blob: bytes) -> Any:
    """The state ``encode`` was given; its arrays come back as writable numpy arrays."""
    if blob[:4] != MAGIC or len(blob) < 8:
        raise StateDecodeError("not a citywarn state")
    (length,) = struct.unpack_from("<I", blob, 4)
    start = 8 + length
    view = memoryview(blob)

    def unpack(obj: dict[str, Any]) -> Any:
        ref = obj.get(_ARRAY_KEY)
        if ref is None or len(obj) != 1:
            return obj
        code, offset, count, shape = ref
        dtype = _DTYPES[code]
        end = start + offset + count * dtype.itemsize
        if end > len(blob):
            raise StateDecodeError("array reference past the end of the state")
        return np.frombuffer(view[start + offset : end], dtype=dtype).reshape(shape).copy()

    try:
        return json.loads(bytes(view[8:start]), object_hook=unpack)
    except (ValueError, KeyError, TypeError) as exc:
        raise StateDecodeError(f"unreadable state: {exc}") from exc
