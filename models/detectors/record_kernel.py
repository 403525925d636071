"""The compiled per-point loop of ``recordensemble``: every structure is a numpy array.

Why compiled: the detector path must keep up with a city's sensors on one
core (100,000 points per second). The same loop in CPython, with sorted lists
and deques, managed about 40,000. Numba compiles this module once per machine
(``cache=True`` keeps the machine code beside the source).

Why arrays: the whole state is numbers in two arrays (see "Why two packed
arrays"), so a snapshot is those numbers as they are (``cut``) and a resumed
detector continues bit-for-bit. The structures:

* a *sorted window*: a ring buffer in arrival order plus the same values kept
  sorted (exact quantiles and counts by binary search, O(size) memmove per
  update);
* a *sliding maximum* per evidence channel: a monotone deque stored as a ring
  of (point number, value) pairs, with the length of the channel's current
  run of records and the record before that run;
* a *seasonal table*: for each of ``bins`` slots of the day, the mean value
  in that slot on each of the last ``days`` days, and the running sum and
  count of the current day's values in it (whatever the sampling rate, one
  number per slot and day).

Nothing here allocates per point except the tiny sorts of at most
``max(level_len, days)`` values.

Why buffers grow: a worker holds 100,000 series, most of them young or with
short record deques, so every buffer starts small and the Python side doubles
it, up to the size its parameter fixes, whenever ``score_points`` stops at a
point that would not fit (``_room_for_point``; it returns where it stopped):
Python picks the sizes, ``grow_into`` copies the state across.

Why a ring's size is still its array's length (``shape``), not its parameter:
the kernel stops *before* a point that would fill a ring smaller than its
parameter, so such a ring never takes the full, wrapping branch of
``_window_push``: its head stays 0 and it holds its values oldest first from
slot 0, exactly where a full-size ring holds them, and the modulus never
matters. A ring at its parameter's size is the code that ran before buffers
grew, unchanged, and that is the path a city runs most. The one read beyond
the values held (the level median of the first points when ``level_len``
exceeds ``warmup`` reads slots no value reached yet, zeros) gives zeros in
both layouts as long as the ring has ``level_len`` slots, which the Python
side keeps. Record deques wrap at their array's length at any size (entries
expire from the head), and are rotated to slot 0 when they grow; seasonal
rings wrap at ``days``, so below that they have not wrapped. A grown or
resumed detector thus scores bit for bit as one that held every buffer at
full size from its first point.

Why two packed arrays: a worker holds one detector per series, and a numpy
array costs about a hundred bytes of header and allocation before its first
value. Sixteen small arrays a series came to about 2 KiB of headers alone, a
third of a new series' state. So a detector's state is one int64 and one
float64 array (``unpack`` lays out the parts, the same code from Python and
from the kernel), and the kernel carves its views, which cost no Python
object. Buffers a young series cannot have touched yet (jumps before a
second value, records before ``warmup`` values, residuals and past days
before a slot's first day ends) start empty: ``_room_for_point`` asks for
room only for what the point will push, and says which (``C_NEED``), so the
Python side grows just those.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from models.protocol import FloatArray

# Evidence channels, in the order of the ``channel`` evidence index (-1: none).
CHANNELS = ("point", "level", "density", "level_rarity", "point_rarity", "seasonal", "jump")
N_CHANNELS = len(CHANNELS)

# Layout of the integer parameter array.
P_WINDOW, P_LEVEL_LEN, P_DENSITY_LEN, P_HISTORY, P_WARMUP, P_BINS, P_DAYS, P_RESIDUALS = range(8)
# Layout of the float parameter array.
P_Z_CAP, P_Z_FLOOR, P_BANDWIDTH, P_RARITY_FLOOR, P_CLIP, P_DAY_S = range(6)
# Layout of the integer counters array.
(
    C_SEEN,
    C_WIN_N,
    C_WIN_HEAD,
    C_JUMP_N,
    C_JUMP_HEAD,
    C_CAP_N,
    C_CAP_HEAD,
    C_RES_N,
    C_RES_HEAD,
    C_HAS_PREV,
    C_NEED,  # set when the kernel stops for room: the NEED_* bits of the buffers that must grow
) = range(11)
N_COUNTERS = 11
# Bits of ``C_NEED``.
NEED_WIN, NEED_JUMP, NEED_RES, NEED_REC, NEED_SEASON = 1, 2, 4, 8, 16
# The capacities of the growing buffers, stored after the counters in the int array.
S_WIN, S_JUMP, S_RES, S_REC, S_SEASON = range(N_COUNTERS, N_COUNTERS + 5)
N_HEAD = N_COUNTERS + 5
# Evidence rows written per point.
EVIDENCE = (
    "baseline",
    "spread",
    "deviation",
    "level",
    "density",
    "level_rarity",
    "point_rarity",
    "seasonal",
    "jump",
    "record_ratio",
    "channel",
    "expected",
)
E_RATIO, E_CHANNEL, E_EXPECTED = 9, 10, 11

_jit = numba.njit(cache=True, nogil=True)

# The version of the snapshot layout ``cut`` writes and ``uncut`` reads. Bump it whenever that
# layout, ``unpack``'s or the meaning of a counter changes: a snapshot of another layout is then
# refused, never read as this one.
LAYOUT = 1


def sizes(bins: int, density_len: int, caps: tuple[int, int, int, int, int]) -> tuple[int, int]:
    """Lengths of the int and float arrays of a state whose growing buffers have capacities ``caps``
    (window, jumps, residuals, record deques, days of the seasonal table)."""
    win, jump, res, rec, days = caps
    n_int = N_HEAD + 4 * N_CHANNELS + 3 * bins + N_CHANNELS * rec
    n_float = 1 + density_len + N_CHANNELS + 2 * bins + 2 * (win + jump + res)
    n_float += N_CHANNELS * rec + bins * days
    return n_int, n_float


def unpack(
    p_int: np.ndarray, state_i: np.ndarray, state_f: FloatArray
) -> tuple[
    np.ndarray,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    np.ndarray,
    np.ndarray,
    FloatArray,
    FloatArray,
    np.ndarray,
    FloatArray,
    FloatArray,
    FloatArray,
]:
    """Views of the parts of a packed state, in ``score_points``' order: counters, prev, window ring
    and sorted, jump ring and sorted, capped ring, record values, indices, meta and bases, seasonal
    table, meta and today's sums, residual ring and sorted. Compiled for the kernel (``_unpack``)
    and run as it is from Python, so both read one layout."""
    bins, density_len = p_int[P_BINS], p_int[P_DENSITY_LEN]
    win, jump, res, rec, days = (
        state_i[S_WIN],
        state_i[S_JUMP],
        state_i[S_RES],
        state_i[S_REC],
        state_i[S_SEASON],
    )
    counters = state_i[:N_COUNTERS]
    at = N_HEAD
    rec_meta = state_i[at : at + 4 * N_CHANNELS].reshape((N_CHANNELS, 4))  # head, length, count, run
    at += 4 * N_CHANNELS
    season_meta = state_i[at : at + 3 * bins].reshape((bins, 3))  # ring start, days kept, day
    at += 3 * bins
    rec_index = state_i[at : at + N_CHANNELS * rec].reshape((N_CHANNELS, rec))
    prev = state_f[:1]
    at = 1
    cap_ring = state_f[at : at + density_len]
    at += density_len
    rec_base = state_f[at : at + N_CHANNELS]  # each record before its current run
    at += N_CHANNELS
    season_acc = state_f[at : at + 2 * bins].reshape((bins, 2))  # the current day's sum and count
    at += 2 * bins
    win_ring = state_f[at : at + win]
    win_srt = state_f[at + win : at + 2 * win]
    at += 2 * win
    jump_ring = state_f[at : at + jump]
    jump_srt = state_f[at + jump : at + 2 * jump]
    at += 2 * jump
    res_ring = state_f[at : at + res]
    res_srt = state_f[at + res : at + 2 * res]
    at += 2 * res
    rec_values = state_f[at : at + N_CHANNELS * rec].reshape((N_CHANNELS, rec))
    at += N_CHANNELS * rec
    season = state_f[at : at + bins * days].reshape((bins, days))
    return (
        counters,
        prev,
        win_ring,
        win_srt,
        jump_ring,
        jump_srt,
        cap_ring,
        rec_values,
        rec_index,
        rec_meta,
        rec_base,
        season,
        season_meta,
        season_acc,
        res_ring,
        res_srt,
    )


_unpack = _jit(unpack)


@_jit
def _window_push(
    ring: FloatArray, srt: FloatArray, counters: np.ndarray, c_n: int, c_head: int, value: float
) -> None:
    """Append ``value`` to a sorted window, dropping its oldest value when full.

    When full, only the values between the old value's place and the new one's move.
    """
    size = ring.shape[0]
    n = counters[c_n]
    head = counters[c_head]
    new_at = np.searchsorted(srt[:n], value, side="right")
    if n < size:
        ring[(head + n) % size] = value
        for m in range(n, new_at, -1):
            srt[m] = srt[m - 1]
        srt[new_at] = value
        counters[c_n] = n + 1
        return
    old = ring[head]
    ring[head] = value
    counters[c_head] = (head + 1) % size
    # Equal values are interchangeable: take the copy of ``old`` and the place for ``value``
    # nearest each other, so a series of repeated values moves nothing.
    if value > old:
        old_at = np.searchsorted(srt[:n], old, side="right") - 1
        new_at = np.searchsorted(srt[:n], value)
        for m in range(old_at, new_at - 1):
            srt[m] = srt[m + 1]
        srt[new_at - 1] = value
    elif value < old:
        old_at = np.searchsorted(srt[:n], old)
        for m in range(old_at, new_at, -1):
            srt[m] = srt[m - 1]
        srt[new_at] = value


@_jit
def _quantile(srt: FloatArray, n: int, q: float) -> float:
    """Lower empirical quantile, no interpolation (exact to replay)."""
    return srt[min(n - 1, int(q * n))]


@_jit
def _count_between(srt: FloatArray, n: int, low: float, high: float) -> int:
    return int(np.searchsorted(srt[:n], high, side="right") - np.searchsorted(srt[:n], low))


@_jit
def _record(values: FloatArray, meta: np.ndarray, k: int) -> float:
    """Current maximum of channel ``k``'s sliding window (0 when empty)."""
    if meta[k, 1] == 0:
        return 0.0
    return values[k, meta[k, 0]]


@_jit
def _record_push(
    values: FloatArray, index: np.ndarray, meta: np.ndarray, k: int, history: int, x: float
) -> None:
    """Push onto channel ``k``'s monotone deque; ``meta[k]`` is (head, length, count)."""
    cap = values.shape[1]
    head, length, count = meta[k, 0], meta[k, 1], meta[k, 2]
    while length > 0 and values[k, (head + length - 1) % cap] <= x:
        length -= 1
    tail = (head + length) % cap
    values[k, tail] = x
    index[k, tail] = count
    length += 1
    count += 1
    if index[k, head] <= count - 1 - history:
        head = (head + 1) % cap
        length -= 1
    meta[k, 0], meta[k, 1], meta[k, 2] = head, length, count


@_jit
def _median_of(values: FloatArray) -> float:
    s = np.sort(values)
    return s[s.shape[0] // 2]


@_jit
def _room_for_point(
    counters: np.ndarray,
    p_int: np.ndarray,
    win_ring: FloatArray,
    jump_ring: FloatArray,
    res_ring: FloatArray,
    rec_values: FloatArray,
    rec_meta: np.ndarray,
    season: FloatArray,
    season_meta: np.ndarray,
    season_acc: FloatArray,
    slot: int,
    day: int,
) -> bool:
    """Whether one more point fits every buffer not yet at its full size; else ``C_NEED`` says which.

    A point adds at most one value to each sorted window, one entry to each
    record deque (which may hold one more before its oldest expires) and one
    day to its slot's seasonal ring, and only to those it will push to: a jump
    once there is a previous value, a residual once its slot has a day, a
    day when its slot's day ends, records once the window holds ``warmup``.
    """
    need = 0
    window = p_int[P_WINDOW]
    size = win_ring.shape[0]
    if size < window and counters[C_WIN_N] >= size:
        need |= NEED_WIN
    size = jump_ring.shape[0]
    if size < window and counters[C_HAS_PREV] == 1 and counters[C_JUMP_N] >= size:
        need |= NEED_JUMP
    day_ends = season_meta[slot, 2] != day and season_acc[slot, 1] > 0
    size = res_ring.shape[0]
    if size < p_int[P_RESIDUALS] and (season_meta[slot, 1] > 0 or day_ends) and counters[C_RES_N] >= size:
        need |= NEED_RES
    size = season.shape[1]
    if size < p_int[P_DAYS] and day_ends and season_meta[slot, 1] >= size:
        need |= NEED_SEASON
    size = rec_values.shape[1]
    if size < p_int[P_HISTORY] + 1 and counters[C_WIN_N] >= p_int[P_WARMUP]:
        for k in range(N_CHANNELS):
            if rec_meta[k, 1] >= size:
                need |= NEED_REC
    counters[C_NEED] = need
    return need == 0


@_jit
def score_points(
    start: int,
    ts: FloatArray,
    values: FloatArray,
    p_int: np.ndarray,
    p_float: FloatArray,
    state_i: np.ndarray,
    state_f: FloatArray,
    scores: FloatArray,
    evidence: FloatArray,
) -> int:
    """Score each point from ``start`` on against the past, then learn it (see ``recordensemble``).

    Returns the number of points done: all of them, or the first that does not
    fit a buffer still growing (nothing of it is learnt; grow, then call again from there).
    """
    (
        counters,
        prev,
        win_ring,
        win_srt,
        jump_ring,
        jump_srt,
        cap_ring,
        rec_values,
        rec_index,
        rec_meta,
        rec_base,
        season,
        season_meta,
        season_acc,
        res_ring,
        res_srt,
    ) = _unpack(p_int, state_i, state_f)
    level_len, density_len = p_int[P_LEVEL_LEN], p_int[P_DENSITY_LEN]
    history, warmup = p_int[P_HISTORY], p_int[P_WARMUP]
    bins, days = p_int[P_BINS], p_int[P_DAYS]
    z_cap, z_floor = p_float[P_Z_CAP], p_float[P_Z_FLOOR]
    bandwidth, rarity_floor = p_float[P_BANDWIDTH], p_float[P_RARITY_FLOOR]
    clip, day_s = p_float[P_CLIP], p_float[P_DAY_S]
    size = win_ring.shape[0]
    ev = np.zeros(N_CHANNELS)
    valid = np.ones(N_CHANNELS, dtype=np.bool_)
    recent = np.empty(level_len)
    for i in range(start, values.shape[0]):
        v = values[i]
        evidence[:, i] = 0.0
        evidence[E_CHANNEL, i] = -1.0
        scores[i] = 0.0
        if not math.isfinite(v):
            continue  # a missing reading carries no evidence and must not poison the baseline
        n = counters[C_WIN_N]
        # Same slot of the day: its median over the last ``days`` days, and how far v is from it.
        day = math.floor(ts[i] / day_s)
        phase = ts[i] - day * day_s
        slot = min(bins - 1, int(phase / day_s * bins))
        if not _room_for_point(
            counters,
            p_int,
            win_ring,
            jump_ring,
            res_ring,
            rec_values,
            rec_meta,
            season,
            season_meta,
            season_acc,
            slot,
            day,
        ):
            return i
        if season_meta[slot, 2] != day and season_acc[slot, 1] > 0:
            # The slot's last day is over: keep its mean, start the new day's.
            mean = season_acc[slot, 0] / season_acc[slot, 1]
            kept, start = season_meta[slot, 1], season_meta[slot, 0]
            if kept == days:
                season[slot, start] = mean
                season_meta[slot, 0] = (start + 1) % days
            else:
                season[slot, kept] = mean
                season_meta[slot, 1] = kept + 1
            season_acc[slot, 0] = 0.0
            season_acc[slot, 1] = 0.0
        season_meta[slot, 2] = day
        in_slot = season_meta[slot, 1]
        slot_median = _median_of(season[slot, :in_slot]) if in_slot > 0 else 0.0

        if n >= warmup:
            low, high = win_srt[0], win_srt[n - 1]
            baseline = _quantile(win_srt, n, 0.5)
            iqr_sd = (_quantile(win_srt, n, 0.75) - _quantile(win_srt, n, 0.25)) / 1.349
            # Floors keep z finite on flat or two-valued series without inflating real noise.
            floor = max(0.01 * (high - low), 1e-9, 1e-12 * abs(baseline))
            spread = max(iqr_sd, floor)
            deviation = (v - baseline) / spread
            head = counters[C_WIN_HEAD]
            # Until level_len - 1 values are held this also reads unwritten slots (zeros) at the ring end.
            for j in range(level_len - 1):
                recent[j] = win_ring[(head + n - (level_len - 1) + j) % size]
            recent[level_len - 1] = v
            recent_level = _median_of(recent)
            cap_n, cap_head = counters[C_CAP_N], counters[C_CAP_HEAD]
            capped = min(abs(deviation), z_cap)
            if cap_n == density_len:
                cap_ring[cap_head] = capped
                counters[C_CAP_HEAD] = (cap_head + 1) % density_len
            else:
                cap_ring[cap_n] = capped
                counters[C_CAP_N] = cap_n + 1
            density = cap_ring[: counters[C_CAP_N]].mean()
            h = bandwidth * spread
            log_n = math.log(n + 1)
            ev[0] = abs(deviation)
            ev[1] = abs(recent_level - baseline) / spread
            ev[2] = density
            ev[3] = log_n - math.log(_count_between(win_srt, n, recent_level - h, recent_level + h) + 1)
            ev[4] = log_n - math.log(_count_between(win_srt, n, v - h, v + h) + 1)
            res_n = counters[C_RES_N]
            ev[5] = 0.0
            valid[5] = in_slot > 0 and res_n >= warmup // 2
            if valid[5]:
                ev[5] = abs(v - slot_median) / max(_quantile(res_srt, res_n, 0.5), floor)
            jump_n = counters[C_JUMP_N]
            ev[6] = 0.0
            valid[6] = counters[C_HAS_PREV] == 1 and jump_n >= warmup // 2
            if valid[6]:
                ev[6] = abs(v - prev[0]) / max(_quantile(jump_srt, jump_n, 0.5), floor)
            ratio, channel = 0.0, -1
            for k in range(N_CHANNELS):
                if not valid[k]:
                    continue  # no evidence yet: its record waits for real evidence
                floor_k = rarity_floor if k == 3 or k == 4 else z_floor  # the rarities are log-odds
                record = max(_record(rec_values, rec_meta, k), floor_k)
                x = ev[k]
                # A channel scores once its record spans ``warmup`` points of its own evidence.
                if rec_meta[k, 2] >= warmup:
                    r = x / record
                    if r > ratio:
                        ratio, channel = r, k
                    # A run of record-setting points (an incident) raises the record by at most
                    # ``clip`` over what it was before the run, so the next incident still stands out;
                    # a run longer than ``level_len`` is a new regime, and may raise it again.
                    run = rec_meta[k, 3]
                    if r <= 1.0 or run % level_len == 0:
                        rec_base[k] = record
                    rec_meta[k, 3] = run + 1 if r > 1.0 else 0
                    x = min(x, clip * rec_base[k])
                _record_push(rec_values, rec_index, rec_meta, k, history, x)
            scores[i] = 1.0 - math.exp(-ratio) if in_slot > 0 else 0.0
            evidence[0, i] = baseline
            evidence[1, i] = spread
            evidence[2, i] = deviation
            evidence[3, i] = ev[1]
            evidence[4, i] = density
            evidence[5, i] = ev[3]
            evidence[6, i] = ev[4]
            evidence[7, i] = ev[5]
            evidence[8, i] = ev[6]
            evidence[E_RATIO, i] = ratio
            evidence[E_CHANNEL, i] = channel
            # What this reading was expected to be: the slot's usual value once a day is known.
            evidence[E_EXPECTED, i] = slot_median if in_slot > 0 else baseline
        # Learn: the seasonal residual, the slot's day, the jump, the value.
        if in_slot > 0:
            _window_push(res_ring, res_srt, counters, C_RES_N, C_RES_HEAD, abs(v - slot_median))
        season_acc[slot, 0] += v
        season_acc[slot, 1] += 1.0
        if counters[C_HAS_PREV] == 1:
            _window_push(jump_ring, jump_srt, counters, C_JUMP_N, C_JUMP_HEAD, abs(v - prev[0]))
        prev[0] = v
        counters[C_HAS_PREV] = 1
        _window_push(win_ring, win_srt, counters, C_WIN_N, C_WIN_HEAD, v)
        counters[C_SEEN] += 1
    return values.shape[0]


@_jit
def _move_window(
    ring: FloatArray,
    srt: FloatArray,
    new_ring: FloatArray,
    new_srt: FloatArray,
    counters: np.ndarray,
    c_n: int,
) -> None:
    """Copy a sorted window into its new buffers; into larger ones oldest first from slot 0 (head 0).

    ``counters`` are the new state's, already holding the old values; ``c_n + 1`` is the head.
    """
    size = ring.shape[0]
    if size == new_ring.shape[0]:
        new_ring[:] = ring
        new_srt[:] = srt
        return
    n, head = counters[c_n], counters[c_n + 1]
    new_ring[: size - head] = ring[head:]
    new_ring[size - head : size] = ring[:head]
    new_srt[:n] = srt[:n]
    counters[c_n + 1] = 0


@_jit
def grow_into(
    p_int: np.ndarray, state_i: np.ndarray, state_f: FloatArray, new_i: np.ndarray, new_f: FloatArray
) -> None:
    """Copy a state into a zero one with larger buffers (``_packed``), so it scores on as it would have.

    Compiled: in Python the same copies, part by part with a view of each, took 30 to 70 µs a
    growth, and a young series grows a few dozen times (bench.pipeline's series, 350 to 450
    points old, spent 5 % of a worker there). Windows and record deques come out oldest first
    from slot 0; seasonal rows below ``days`` have not wrapped, so they are copied as they are.
    """
    (
        counters,
        prev,
        win_ring,
        win_srt,
        jump_ring,
        jump_srt,
        cap_ring,
        rec_values,
        rec_index,
        rec_meta,
        rec_base,
        season,
        season_meta,
        season_acc,
        res_ring,
        res_srt,
    ) = _unpack(p_int, state_i, state_f)
    (
        n_counters,
        n_prev,
        n_win_ring,
        n_win_srt,
        n_jump_ring,
        n_jump_srt,
        n_cap_ring,
        n_rec_values,
        n_rec_index,
        n_rec_meta,
        n_rec_base,
        n_season,
        n_season_meta,
        n_season_acc,
        n_res_ring,
        n_res_srt,
    ) = _unpack(p_int, new_i, new_f)
    n_counters[:] = counters
    n_prev[:] = prev
    n_cap_ring[:] = cap_ring
    n_rec_meta[:, :] = rec_meta
    n_rec_base[:] = rec_base
    n_season_meta[:, :] = season_meta
    n_season_acc[:, :] = season_acc
    _move_window(win_ring, win_srt, n_win_ring, n_win_srt, n_counters, C_WIN_N)
    _move_window(jump_ring, jump_srt, n_jump_ring, n_jump_srt, n_counters, C_JUMP_N)
    _move_window(res_ring, res_srt, n_res_ring, n_res_srt, n_counters, C_RES_N)
    size = rec_values.shape[1]
    if size == n_rec_values.shape[1]:
        n_rec_values[:, :] = rec_values
        n_rec_index[:, :] = rec_index
    elif size:
        # A channel's deque wraps once its oldest entries expire: rotate each row to its head.
        for k in range(N_CHANNELS):
            head = rec_meta[k, 0]
            for j in range(size):
                n_rec_values[k, j] = rec_values[k, (head + j) % size]
                n_rec_index[k, j] = rec_index[k, (head + j) % size]
            n_rec_meta[k, 0] = 0
    n_season[:, : season.shape[1]] = season


# -- snapshots -------------------------------------------------------------------------------
# A snapshot holds what the state holds and nothing else: each window's values oldest first,
# without its sorted copy (sorted again on restore) or its empty room, and each record deque's
# entries, oldest first, laid end to end. The int array: the counters (ring heads 0), the
# capacities of the values held (window, jumps, residuals, the longest deque, days of the
# seasonal table), the deques' and seasonal slots' meta (deque heads 0), then the deques' point
# numbers. The float array: the previous value, the density ring, the record bases and today's
# seasonal sums (the float array's first parts, as they are), the three windows, the deques'
# values, then the seasonal table.


def _int_head(p_int: np.ndarray) -> int:
    """The length of the int array's first parts (counters, capacities, the deques' and seasonal
    slots' meta), which a snapshot keeps, deque heads aside."""
    return int(N_HEAD + 4 * N_CHANNELS + 3 * p_int[P_BINS])


def _float_head(p_int: np.ndarray) -> int:
    """The length of the float array's first parts, which a snapshot keeps as they are."""
    return int(1 + p_int[P_DENSITY_LEN] + N_CHANNELS + 2 * p_int[P_BINS])


_int_head_jit = _jit(_int_head)
_float_head_jit = _jit(_float_head)


@_jit
def _put_ring(ring: FloatArray, n: int, head: int, out: FloatArray, at: int) -> int:
    size = ring.shape[0]
    for j in range(n):
        out[at + j] = ring[(head + j) % size]
    return at + n


@_jit
def cut(p_int: np.ndarray, state_i: np.ndarray, state_f: FloatArray) -> tuple[np.ndarray, FloatArray]:
    """A state as a snapshot holds it (see above): new arrays, so the detector may score on."""
    (
        counters,
        _prev,
        win_ring,
        _win_srt,
        jump_ring,
        _jump_srt,
        _cap_ring,
        rec_values,
        rec_index,
        rec_meta,
        _rec_base,
        season,
        _season_meta,
        _season_acc,
        res_ring,
        _res_srt,
    ) = _unpack(p_int, state_i, state_f)
    meta = _int_head_jit(p_int)
    head_f = _float_head_jit(p_int)
    n_win, n_jump, n_res = counters[C_WIN_N], counters[C_JUMP_N], counters[C_RES_N]
    held = rec_meta[:, 1].sum()
    out_i = np.empty(meta + held, np.int64)
    out_f = np.empty(head_f + n_win + n_jump + n_res + held + season.size)
    out_i[:meta] = state_i[:meta]
    out_i[C_WIN_HEAD] = 0
    out_i[C_JUMP_HEAD] = 0
    out_i[C_RES_HEAD] = 0
    out_i[C_NEED] = 0
    out_i[S_WIN] = n_win
    out_i[S_JUMP] = n_jump
    out_i[S_RES] = n_res
    out_i[S_REC] = rec_meta[:, 1].max()
    out_f[:head_f] = state_f[:head_f]
    at = _put_ring(win_ring, n_win, counters[C_WIN_HEAD], out_f, head_f)
    at = _put_ring(jump_ring, n_jump, counters[C_JUMP_HEAD], out_f, at)
    at = _put_ring(res_ring, n_res, counters[C_RES_HEAD], out_f, at)
    at_i = meta
    size = rec_values.shape[1]
    for k in range(N_CHANNELS):
        head, length = rec_meta[k, 0], rec_meta[k, 1]
        out_i[N_HEAD + 4 * k] = 0
        for j in range(length):
            out_f[at + j] = rec_values[k, (head + j) % size]
            out_i[at_i + j] = rec_index[k, (head + j) % size]
        at += length
        at_i += length
    out_f[at:] = season.ravel()
    return out_i, out_f


def snapshot_problem(p_int: np.ndarray, ints: np.ndarray, floats: FloatArray) -> str | None:
    """Why a snapshot read back from storage must not be restored, or None if it may be.

    Compiled code checks no bounds: ``uncut`` and then the kernel index every buffer by the
    counts, heads and lengths the snapshot itself holds, so one past its buffer would read or
    write outside the arrays. Each bound they rely on is checked here first; what stays
    unchecked (the values) can make a score wrong but cannot reach outside the arrays.
    """
    if ints.dtype != np.int64 or floats.dtype != np.float64 or ints.ndim != 1 or floats.ndim != 1:
        return "a snapshot is one int64 and one float64 array"
    window, _, density_len, history, _, bins, days, residuals = p_int.tolist()
    meta = _int_head(p_int)
    if len(ints) < meta:
        return "the int array is shorter than its counters and meta"
    head = ints[:N_HEAD].tolist()
    n_win, n_jump, n_res, cap_n = head[C_WIN_N], head[C_JUMP_N], head[C_RES_N], head[C_CAP_N]
    if not (0 <= n_win <= window and 0 <= n_jump <= window and 0 <= n_res <= residuals):
        return f"windows of {n_win}, {n_jump} and {n_res} values"
    if head[C_WIN_HEAD] or head[C_JUMP_HEAD] or head[C_RES_HEAD]:
        return "a window not saved from slot 0"
    # The density ring holds its values from slot 0 until it is full; only a full one wraps.
    if not (
        0 <= cap_n <= density_len and (head[C_CAP_HEAD] == 0 or 0 < head[C_CAP_HEAD] < cap_n == density_len)
    ):
        return f"a density ring of {cap_n} values from slot {head[C_CAP_HEAD]}"
    if head[C_HAS_PREV] not in (0, 1) or head[C_SEEN] < 0:
        return "counters out of range"
    records = ints[N_HEAD : N_HEAD + 4 * N_CHANNELS].reshape((N_CHANNELS, 4))  # head, length, count, run
    lengths = records[:, 1]
    if records[:, 0].any() or records.min() < 0 or lengths.max() > history + 1:
        return "a record deque not saved from slot 0, or longer than its history"
    season_days = head[S_SEASON]
    slots = ints[N_HEAD + 4 * N_CHANNELS : meta].reshape((bins, 3))  # ring start, days kept, day
    if not 0 <= season_days <= days or slots[:, :2].min() < 0 or slots[:, 1].max() > season_days:
        return "a seasonal slot keeps more days than its table"
    if slots[:, 0].max() >= max(season_days, 1):
        return "a seasonal ring starts past its table"
    held = int(lengths.sum())
    if head[S_WIN:S_SEASON] != [n_win, n_jump, n_res, int(lengths.max())]:
        return "capacities other than the values held"
    size_f = _float_head(p_int) + n_win + n_jump + n_res + held + bins * season_days
    if (len(ints), len(floats)) != (meta + held, size_f):
        return "array lengths other than the values held"
    return None


@_jit
def _take_window(floats: FloatArray, at: int, n: int, ring: FloatArray, srt: FloatArray) -> int:
    ring[:n] = floats[at : at + n]
    srt[:n] = np.sort(ring[:n])
    return at + n


@_jit
def uncut(
    p_int: np.ndarray, ints: np.ndarray, floats: FloatArray, state_i: np.ndarray, state_f: FloatArray
) -> None:
    """Fill a zero state from ``cut``'s arrays (checked by ``snapshot_problem``), its buffers at
    least as large as the values held: rings and deques from slot 0, each window sorted again
    (equal values are interchangeable there, so it scores on bit for bit)."""
    (
        counters,
        _prev,
        win_ring,
        win_srt,
        jump_ring,
        jump_srt,
        _cap_ring,
        rec_values,
        rec_index,
        rec_meta,
        _rec_base,
        season,
        _season_meta,
        _season_acc,
        res_ring,
        res_srt,
    ) = _unpack(p_int, state_i, state_f)
    meta = _int_head_jit(p_int)
    head_f = _float_head_jit(p_int)
    state_i[:N_COUNTERS] = ints[:N_COUNTERS]
    state_i[N_HEAD:meta] = ints[N_HEAD:meta]
    state_f[:head_f] = floats[:head_f]
    at = _take_window(floats, head_f, counters[C_WIN_N], win_ring, win_srt)
    at = _take_window(floats, at, counters[C_JUMP_N], jump_ring, jump_srt)
    at = _take_window(floats, at, counters[C_RES_N], res_ring, res_srt)
    at_i = meta
    for k in range(N_CHANNELS):
        length = rec_meta[k, 1]
        rec_values[k, :length] = floats[at : at + length]
        rec_index[k, :length] = ints[at_i : at_i + length]
        at += length
        at_i += length
    days = ints[S_SEASON]
    season[:, :days] = floats[at:].reshape((season.shape[0], days))
