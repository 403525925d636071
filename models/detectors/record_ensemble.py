"""``recordensemble``: seven complementary views of a series, each scored against its own record.

The service's default detector. Each point yields seven kinds of evidence, all
unit-free, and each is calibrated the same way: as a ratio to the largest
evidence of that kind in the last ``history`` points. The score is
``1 - exp(-largest ratio)``, so 0.63 means "equal to the recent record" on every
series, whatever its unit, noise or rhythm: one threshold fits a rain gauge
and a gas detector alike. The evidence, and what each one sees that the
others miss:

* ``point``: robust z-score against the median and IQR of the last ``window``
  points (a spike).
* ``level``: the same for the median of the last ``level_len`` points (a level
  shift, a stuck value away from normal).
* ``density``: mean capped |z| of the last ``density_len`` points (a burst of
  moderate deviations none of which is a record alone).
* ``level_rarity`` and ``point_rarity``: how seldom the recent level, or the
  value, occurs in the window at all, as log-odds (a value *between* the usual
  states of a two-state series is close to the median yet never seen).
* ``seasonal``: distance from the median, over the last ``days`` days, of
  each day's mean in the same slot of the day (``bins`` slots), over the
  median such distance (a rush hour without traffic, a night with a daytime
  load), from the first completed day on.
* ``jump``: the step from the previous value over the median step (an abrupt
  change that stays inside the usual range, such as a machine cooling fast).

A series raises nothing until each time of day has been seen on an earlier
day (its slot holds a completed day): before that a daily peak cannot be
told from an anomaly, and on the demo city's normal data those first-day
peaks were nearly every false signal. The ``expected`` evidence is the
slot's usual value once known (else the window median): the decision step
measures a kind's minimum deviation from it, so an ordinary evening peak is
no deviation at all, and a night at evening load is.

The channels are an ensemble: any one that sets a clear record signals,
because the kinds of anomaly they see are different. Requiring two to agree
was measured and cost more detections than false alarms it saved.

Records do not fade after an anomaly: a run of record-setting points (an
incident) raises its channel's record by at most ``clip`` times the record
before the run, so the second fault of a pumping station stands out as the
first did, while a run longer than ``level_len`` points counts as a new
regime and may raise it again, so a lasting change becomes the new normal
within a few dozen points.

Constants and why: ``window`` 4000 and ``history`` 3000 points are about two
weeks and ten days at five-minute sampling, long enough that "record" means
rare (a chance record of one channel is a 1-in-3000 event); ``level_len`` 10
and ``density_len`` 12 are about an hour, the shortest change an EOC acts on;
``warmup`` 100 points before any evidence and twice that before any score;
floors of 1 robust sd (and 6 log-odds, a 1-in-400 value, for rarity) keep a
very quiet history from turning noise into records; ``bins`` 48 (half hours)
and ``days`` 7 make the seasonal median a week of the same half hour (days
in UTC: a city's own offset only moves which slot is which).
``clip`` 2 was chosen by the leave-one-category-out cross-validation mean on
NAB among 1.2, 1.5, 2 and 3 (``bench.nab --cv``; README, Detection).

Memory follows what a series has seen, since a worker holds one detector per
series: every buffer starts at a few values and doubles when the kernel finds
it full, up to the size its parameter fixes (``record_kernel``, "Why buffers
grow"), and a buffer a young series cannot have used yet starts empty. The
state is two arrays, not sixteen ("Why two packed arrays"). A new series
(two readings) holds about 3 KiB (6 KiB as sixteen arrays), one a day old
(288 points) about 35 KiB, one with a full window about 190 KiB (every
buffer at full size, as before, was 490 KiB from the first reading); scores
and checkpoints are bit for bit those of full-size buffers.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np

from models.detectors import record_kernel as k
from models.protocol import BatchScores, EvidenceRows, FloatArray
from models.registry import register
from models.state_codec import StateDecodeError

DAY_S = 86400.0
WARM_UP_POINTS = 300  # past the warm-up, so every branch of the kernel runs
# A new series' sorted windows and record deques hold this many values before they first double.
FIRST_CAPACITY = 8
_FLOAT64 = np.dtype(np.float64)
_EVIDENCE_ROWS = {name: j for j, name in enumerate(k.EVIDENCE)}


def _kernel_input(array: FloatArray) -> FloatArray:
    """``array`` as the kernel's one array type (float64, C order, writeable), copied only if need be.

    Checked by hand: the engine's arrays already are, and ``np.require`` cost about 2 µs a call,
    twice a series a batch.
    """
    if isinstance(array, np.ndarray) and array.dtype is _FLOAT64:
        flags = array.flags
        if flags.c_contiguous and flags.writeable:
            return array
    return np.require(array, np.float64, ["C", "W"])


@register
class RecordEnsembleDetector:
    """Point, level, density, rarity, seasonal and jump evidence, each calibrated to its own record."""

    name: ClassVar[str] = "recordensemble"
    evidence_names: ClassVar[tuple[str, ...]] = k.EVIDENCE
    # A worker holds one per series: no per-instance ``__dict__``, and the state in two arrays
    # (``record_kernel``, "Why two packed arrays").
    __slots__ = ("_f", "_i", "_p_float", "_p_int", "params")

    def __init__(
        self,
        window: int = 4000,
        level_len: int = 10,
        density_len: int = 12,
        history: int = 3000,
        warmup: int = 100,
        bins: int = 48,
        days: int = 7,
        residuals: int = 2000,
        z_cap: float = 6.0,
        z_floor: float = 1.0,
        bandwidth: float = 0.05,
        rarity_floor: float = 6.0,
        clip: float = 2.0,
    ) -> None:
        if not window >= level_len >= 1 or density_len < 1 or warmup < 4 or history < 1:
            raise ValueError("need window >= level_len >= 1, density_len >= 1, warmup >= 4, history >= 1")
        if bins < 1 or days < 1 or residuals < 1:
            raise ValueError("bins, days and residuals must be at least 1")
        if min(z_cap, z_floor, bandwidth, rarity_floor) <= 0 or clip < 1:
            raise ValueError("z_cap, z_floor, bandwidth and rarity_floor must be positive, clip at least 1")
        # Shared by every detector with the same parameters (a city has a handful of sets): read only.
        ints = (window, level_len, density_len, history, warmup, bins, days, residuals)
        floats = (z_cap, z_floor, bandwidth, rarity_floor, clip)
        self.params, self._p_int, self._p_float = _parameters(
            tuple(int(x) for x in ints), tuple(float(x) for x in floats)
        )
        # The growing buffers at their first sizes (see ``_allocate``).
        self._allocate(window=0, jumps=0, residuals=0, records=0, season_days=0)

    def _allocate(self, *, window: int, jumps: int, residuals: int, records: int, season_days: int) -> None:
        """A zero state whose buffers hold the given numbers of values (the next point then makes them grow).

        The sizes are the parameters' at most: each buffer doubles on demand (``_grow``), so a
        series' memory follows what it has seen, not the window it may one day fill. A buffer
        that holds nothing yet has no room at all, except the window's.
        """
        p = self.params
        # At least level_len slots: the first level medians read slots past the values held, which
        # must be unwritten zeros as they are in a full-size ring (record_kernel, "Why buffers grow").
        caps = (
            min(p["window"], max(window, FIRST_CAPACITY, p["level_len"])),
            _capacity(jumps, p["window"]),
            _capacity(residuals, p["residuals"]),
            _capacity(records, p["history"] + 1),
            _capacity(season_days, p["days"], 1),
        )
        self._i, self._f = _packed(p, caps)

    def _parts(self) -> _Parts:
        """Views of the state's parts, for the Python side (checkpoints, growth); the kernel has its own."""
        return _Parts(*k.unpack(self._p_int, self._i, self._f))

    # Views of the growing buffers, to inspect their sizes.
    _win_ring = property(lambda self: self._parts().win_ring)
    _jump_ring = property(lambda self: self._parts().jump_ring)
    _res_ring = property(lambda self: self._parts().res_ring)
    _rec_values = property(lambda self: self._parts().rec_values)
    _season = property(lambda self: self._parts().season)

    @classmethod
    def warm_up(cls) -> None:
        """Compile the kernel (or load it from numba's cache) now, not inside the first batch.

        Compiling takes seconds once per machine; a consumer should pay it before it reports ready.
        Restoring is part of a worker's first batch too (the series it brings), so a snapshot is
        taken and read back here: left to that batch, compiling ``uncut`` took 3.5 s of it on a
        machine with no cache yet (bench.pipeline's one-worker phase, py-spy, 2026-12-05).
        """
        ts = np.arange(WARM_UP_POINTS, dtype=np.float64) * 300.0
        det = cls()
        det.score_batch(ts, np.sin(ts / 3600.0))
        again = cls.from_state(det.get_packed_state(), coming=1)
        again.score_batch(ts[-1:] + 300.0, np.zeros(1))

    # -- scoring -----------------------------------------------------------------

    def score_batch(self, ts: FloatArray, values: FloatArray) -> BatchScores:
        # One array type for the kernel: a read-only input would be a second compilation.
        ts_arr, vals = _kernel_input(ts), _kernel_input(values)
        if ts_arr.shape != vals.shape or vals.ndim != 1:
            raise ValueError("ts and values must be 1-d arrays of the same length")
        scores = np.empty(len(vals))
        evidence = np.empty((len(k.EVIDENCE), len(vals)))
        done = 0
        while True:
            done = k.score_points(
                done, ts_arr, vals, self._p_int, self._p_float, self._i, self._f, scores, evidence
            )
            if done == len(vals):
                break
            if not self._grow(len(vals) - done):
                raise RuntimeError("recordensemble: the kernel stopped at a point every buffer had room for")
        return BatchScores(scores, EvidenceRows(_EVIDENCE_ROWS, evidence))

    def _grow(self, coming: int) -> bool:
        """Grow the buffers the kernel found full (``C_NEED``), and with them any other that soon will be.

        Growing every buffer at least three quarters full at once (the window and the jumps
        fill a point apart) halves the calls. A buffer doubles, or from empty takes its first
        size. The sorted windows take at most one value a point, so one that grows doubles as
        often as the ``coming`` points of the batch need at once: a restore replays up to
        ``models.engine.MAX_LOGGED_POINTS`` in one batch, and doubling alone reallocated
        four times or so in a replay of a hundred points, a quarter of the restore. A live batch
        brings a point or two and doubles once, as before. The record deques and the seasonal
        days gain far less than a value a point, so they double only. Values move oldest first
        to slot 0. Returns whether any buffer grew (the kernel stops only when one must).
        """
        p, state_i = self.params, self._i
        head = state_i[: k.N_HEAD].tolist()  # counters, then capacities: plain ints, read once
        need, caps = head[k.C_NEED], tuple(head[k.S_WIN : k.N_HEAD])
        win, jumps, res, rec, days = caps
        # The deques' and seasonal slots' lengths, read from the int array where ``unpack`` puts them.
        records_at, season_at = k.N_HEAD, k.N_HEAD + 4 * k.N_CHANNELS
        records_held = int(state_i[records_at + 1 : season_at : 4].max())
        days_held = int(state_i[season_at + 1 : season_at + 3 * p["bins"] : 3].max())
        grown = (
            _next_size(win, p["window"], need & k.NEED_WIN, head[k.C_WIN_N], fit=coming),
            _next_size(jumps, p["window"], need & k.NEED_JUMP, head[k.C_JUMP_N], fit=coming),
            _next_size(res, p["residuals"], need & k.NEED_RES, head[k.C_RES_N], fit=coming),
            _next_size(rec, p["history"] + 1, need & k.NEED_REC, records_held),
            _next_size(days, p["days"], need & k.NEED_SEASON, days_held, first=1),
        )
        if grown == caps:
            return False
        new_i, new_f = _packed(p, grown)
        k.grow_into(self._p_int, state_i, self._f, new_i, new_f)
        self._i, self._f = new_i, new_f
        return True

    def score_one(self, ts: float, value: float) -> float:
        return float(self.score_batch(np.array([ts], dtype=np.float64), np.array([value])).scores[0])

    # -- checkpointing ---------------------------------------------------------------
    # Rings are saved oldest first and restored with their head at 0, so a state
    # holds each value once and a restored detector is equal in every score it gives.

    def get_state(self) -> dict[str, Any]:
        s = self._parts()
        c = s.counters
        return {
            "params": dict(self.params),
            "counters": {
                "seen": int(c[k.C_SEEN]),
                "has_prev": int(c[k.C_HAS_PREV]),
                "cap_head": int(c[k.C_CAP_HEAD]),
            },
            "prev": float(s.prev[0]),
            "window": _ring(s.win_ring, c[k.C_WIN_N], c[k.C_WIN_HEAD]),
            "jumps": _ring(s.jump_ring, c[k.C_JUMP_N], c[k.C_JUMP_HEAD]),
            "residuals": _ring(s.res_ring, c[k.C_RES_N], c[k.C_RES_HEAD]),
            "capped": s.cap_ring[: c[k.C_CAP_N]].tolist(),
            "records": _record_states(s),
            "season": _rows_oldest_first(s.season, s.season_meta[:, 0], s.season_meta[:, 1]),
            "season_day": s.season_meta[:, 2].tolist(),
            "season_today": s.season_acc.tolist(),
        }

    def get_packed_state(self) -> dict[str, Any]:
        """The state as a snapshot holds it (``record_kernel.cut``), for the engine's checkpoints.

        ``get_state``'s nested lists took 120 to 250 µs a series to build and encode, and about as
        much to parse back and rebuild: most of a restore besides its replay. Here the numbers
        the arrays hold go as they are, without the windows' sorted copies or empty room (a
        young series' doubled buffers are up to half empty), so a snapshot is no larger than the
        lists made. ``from_state`` checks one read back before the kernel touches it.
        """
        ints, floats = k.cut(self._p_int, self._i, self._f)
        return {"layout": k.LAYOUT, "params": dict(self.params), "ints": ints, "floats": floats}

    def _take_packed(self, state: dict[str, Any], coming: int) -> None:
        """Take ``get_packed_state``'s snapshot, once ``record_kernel.snapshot_problem`` finds it safe."""
        if state["layout"] != k.LAYOUT:
            raise StateDecodeError(f"recordensemble: a snapshot of layout {state['layout']}, not {k.LAYOUT}")
        ints, floats = state.get("ints"), state.get("floats")
        if not (isinstance(ints, np.ndarray) and isinstance(floats, np.ndarray)):
            raise StateDecodeError("recordensemble: a packed snapshot holds two arrays")
        problem = k.snapshot_problem(self._p_int, ints, floats)
        if problem is not None:
            raise StateDecodeError(f"recordensemble: a snapshot the kernel cannot score safely: {problem}")
        held = ints[: k.N_HEAD].tolist()
        self._allocate_restored(
            *(held[c] for c in (k.C_WIN_N, k.C_JUMP_N, k.C_RES_N, k.S_REC)),
            season_days=held[k.S_SEASON],
            coming=coming,
        )
        k.uncut(self._p_int, np.ascontiguousarray(ints), np.ascontiguousarray(floats), self._i, self._f)

    def _allocate_restored(
        self, window: int, jumps: int, residuals: int, records: int, *, season_days: int, coming: int
    ) -> None:
        """Zero buffers for a restored state holding these numbers of values (``records``: the
        longest deque), with ``season_days`` days of seasonal table, and room to score on.

        Room as growing buffers have it: sized to what they held, the buffers were full, and the
        first point scored after a restore reallocated them. The value window and, once it holds
        any, the jump window take exactly one value a point, so they are sized for the ``coming``
        points too: in one allocation, the size ``_grow`` would have doubled them to as the points
        came, or less. The residuals take one only where a slot has a day, and a series' first
        buffers, the record deques and the seasonal days grow during the replay as they did live.
        """
        extra = max(coming, 1) - 1
        self._allocate(
            window=_room(window + extra, max(FIRST_CAPACITY, self.params["level_len"])),
            jumps=_room(jumps and jumps + extra),
            residuals=_room(residuals),
            records=_room(records),
            season_days=season_days,
        )

    @classmethod
    def from_state(cls, state: dict[str, Any], *, coming: int = 0) -> Self:
        try:
            det = cls(**state["params"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateDecodeError(f"recordensemble: a state without usable parameters: {exc}") from exc
        if "layout" in state:  # get_packed_state's
            det._take_packed(state, coming)
            return det
        det._allocate_restored(
            len(state["window"]),
            len(state["jumps"]),
            len(state["residuals"]),
            max(len(rec["values"]) for rec in state["records"]),
            season_days=_room(max((len(slot) for slot in state["season"]), default=0), first=1),
            coming=coming,
        )
        s = det._parts()
        c = s.counters
        saved = state["counters"]
        c[k.C_SEEN], c[k.C_HAS_PREV], c[k.C_CAP_HEAD] = saved["seen"], saved["has_prev"], saved["cap_head"]
        s.prev[0] = float(state["prev"])
        _restore(s.win_ring, s.win_srt, state["window"], c, k.C_WIN_N)
        _restore(s.jump_ring, s.jump_srt, state["jumps"], c, k.C_JUMP_N)
        _restore(s.res_ring, s.res_srt, state["residuals"], c, k.C_RES_N)
        capped = state["capped"]
        s.cap_ring[: len(capped)] = capped
        c[k.C_CAP_N] = len(capped)
        records = state["records"]
        lengths = [len(rec["values"]) for rec in records]
        filled = _leading(lengths, s.rec_values.shape[1])
        s.rec_values[filled] = [x for rec in records for x in rec["values"]]
        s.rec_index[filled] = [x for rec in records for x in rec["index"]]
        s.rec_meta[:] = [(0, n, rec["count"], rec["run"]) for n, rec in zip(lengths, records, strict=True)]
        s.rec_base[:] = [rec["base"] for rec in records]
        season = state["season"]
        if isinstance(season, np.ndarray):  # slots that all keep as many days come back as one table
            days_kept = [season.shape[1]] * len(season)
            s.season[:, : season.shape[1]] = season
        else:
            days_kept = [len(slot) for slot in season]
            s.season[_leading(days_kept, s.season.shape[1])] = [x for slot in season for x in slot]
        s.season_meta[:, 1] = days_kept
        s.season_meta[:, 2] = state["season_day"]
        s.season_acc[:] = state["season_today"]
        return det


class _Parts(NamedTuple):
    """The parts of a detector's state, as views of its two arrays (``record_kernel.unpack``'s order)."""

    counters: np.ndarray
    prev: FloatArray
    win_ring: FloatArray
    win_srt: FloatArray
    jump_ring: FloatArray
    jump_srt: FloatArray
    cap_ring: FloatArray
    rec_values: FloatArray
    rec_index: np.ndarray
    rec_meta: np.ndarray
    rec_base: FloatArray
    season: FloatArray
    season_meta: np.ndarray
    season_acc: FloatArray
    res_ring: FloatArray
    res_srt: FloatArray


_INT_PARAMS = ("window", "level_len", "density_len", "history", "warmup", "bins", "days", "residuals")
_FLOAT_PARAMS = ("z_cap", "z_floor", "bandwidth", "rarity_floor", "clip")


@functools.lru_cache(maxsize=64)
def _parameters(
    ints: tuple[int, ...], floats: tuple[float, ...]
) -> tuple[dict[str, Any], np.ndarray, FloatArray]:
    """The ``params`` dict and the kernel's two parameter arrays, built once per parameter set."""
    params: dict[str, Any] = dict(zip(_INT_PARAMS + _FLOAT_PARAMS, ints + floats, strict=True))
    p_int = np.array(ints, dtype=np.int64)  # in the kernel's P_* order
    p_float = np.array([*floats, DAY_S], dtype=np.float64)
    return params, p_int, p_float


def _packed(p: dict[str, Any], caps: tuple[int, ...]) -> tuple[np.ndarray, FloatArray]:
    """A zero state (int and float arrays) whose growing buffers have capacities ``caps``."""
    win, jumps, res, rec, days = caps
    n_int, n_float = k.sizes(p["bins"], p["density_len"], (win, jumps, res, rec, days))
    state_i = np.zeros(n_int, dtype=np.int64)
    state_i[k.S_WIN : k.N_HEAD] = caps
    return state_i, np.zeros(n_float)


def _due(held: int, size: int) -> bool:
    """Whether a buffer below its full size grows now: it is at least three quarters full."""
    return 4 * held >= 3 * size


def _next_size(
    size: int, limit: int, needed: int, held: int, first: int = FIRST_CAPACITY, fit: int = 1
) -> int:
    """A buffer's size after growing: doubled (from empty, ``first``) if the kernel needs it or it is
    due, and doubled again until ``fit`` more values fit, at most ``limit``; else unchanged. An
    empty buffer grows only when needed."""
    if size >= limit or not (needed or (size and _due(held, size))):
        return size
    grown = max(first, 2 * size)
    while grown < held + fit and grown < limit:
        grown *= 2
    return min(limit, grown)


def _room(held: int, first: int = FIRST_CAPACITY) -> int:
    """The least size a buffer doubling from ``first`` reaches with room beyond ``held`` values.

    No more than a growing series holds once it takes its next point (a full buffer doubles then).
    """
    if not held:
        return 0
    size = first
    while size <= held:
        size *= 2
    return size


def _capacity(held: int, limit: int, first: int = FIRST_CAPACITY) -> int:
    """A buffer's size for ``held`` values: none for none, else at least ``first``, at most ``limit``."""
    return min(limit, max(held, first)) if held else 0


def _leading(held: list[int], size: int) -> np.ndarray:
    """A mask of each row's first ``held[row]`` slots, row after row: rows of a state refilled in one
    assignment from their values laid end to end. A slice a row was 48 seasonal slots and 14 record
    rows of Python assignments; without them a rebuild took about a sixth less (70 against 85 µs)."""
    return np.arange(size) < np.array(held, dtype=np.int64)[:, None]


def _record_states(s: _Parts) -> list[dict[str, Any]]:
    heads, lengths = s.rec_meta[:, 0], s.rec_meta[:, 1]
    return [
        {"count": count, "run": run, "base": base, "index": index, "values": values}
        for count, run, base, index, values in zip(
            s.rec_meta[:, 2].tolist(),
            s.rec_meta[:, 3].tolist(),
            s.rec_base.tolist(),
            _rows_oldest_first(s.rec_index, heads, lengths),
            _rows_oldest_first(s.rec_values, heads, lengths),
            strict=True,
        )
    ]


def _rows_oldest_first(rings: np.ndarray, heads: np.ndarray, lengths: np.ndarray) -> list[list[Any]]:
    """Each row's ring of values, oldest first, as lists: one gather for every row.

    A snapshot holds 48 seasonal slots and 7 record deques; a row at a time, each cost an index
    array, a gather and a list of its own.
    """
    size = rings.shape[1]
    if not size:  # a ring with no room holds nothing
        return [[] for _ in range(rings.shape[0])]
    slots = (heads[:, None] + np.arange(size)) % size
    ordered: list[list[Any]] = np.take_along_axis(rings, slots, axis=1).tolist()
    return [row[:n] for row, n in zip(ordered, lengths.tolist(), strict=True)]


def _oldest_first(size: int, n: int, head: int) -> np.ndarray:
    """The slots of a ring of ``size`` holding ``n`` values from ``head``, oldest first.

    Gathered by numpy and turned into Python numbers by ``tolist``: element by element in
    Python, gathering a young series' state took 0.22 ms (0.16 ms this way), nearly half of
    taking its snapshot.
    """
    return (np.arange(int(n)) + int(head)) % size  # a ring with no room holds nothing: an empty result


def _ring(ring: FloatArray, n: int, head: int) -> list[float]:
    """A ring buffer's values, oldest first."""
    values: list[float] = ring[_oldest_first(ring.shape[0], n, head)].tolist()
    return values


def _restore(ring: FloatArray, srt: FloatArray, values: list[float], counters: np.ndarray, c_n: int) -> None:
    """Refill a sorted window from its values, oldest first (head 0; the head counter follows c_n)."""
    n = len(values)
    ring[:n] = values
    srt[:n] = np.sort(np.asarray(values, dtype=np.float64))
    counters[c_n] = n
    counters[c_n + 1] = 0
