"""Unit-free trailing-window features of one sensor series, for the per-kind multivariate model.

Every feature of point ``i`` is computed from point ``i`` and the ``window``
points before it only, so a point's features never change when later points
arrive (no look-ahead) and a model scored on a live stream sees what it was
trained on. Features are scaled by the series' own robust spread, which is
what lets one model serve every sensor of a kind whatever its level or unit.
Points with fewer than ``window`` predecessors get all-zero rows: zero means
"normal" for every feature, and no row is ever NaN.

To score new points of a stream, pass the last ``history_needed(window)``
stored points followed by the new ones and keep the last rows;
``stacked_window_features`` does that for many series in one go.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.protocol import FloatArray

DEFAULT_WINDOW = 12
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
REL_FLOOR = 1e-3  # spread floor relative to the level: a flat series must not give infinite deviations
ABS_FLOOR = 1e-9  # spread floor for series that sit at zero
FLAT_REL = 1e-6  # a window whose range is below this fraction of its level is a flatline
LOG_CLIP = 5.0  # bound for log-ratio features (std/spread, gap/median gap): e^5 is already extreme
FEATURE_CLIP = 50.0  # last-resort bound so overflowing inputs give large finite features, not inf

FEATURE_NAMES: tuple[str, ...] = (
    "deviation",  # (value - trailing median) / robust spread, signed log scale
    "step",  # (value - previous value) / robust spread, signed log scale
    "volatility",  # log(trailing std / robust spread): heavy tails or collapse of the noise
    "slope",  # least-squares rise over the window incl. the point, in spreads, signed log scale
    "flatline",  # 1.0 when the window incl. the point has (almost) no range: a stuck sensor
    "gap",  # log(time since previous point / trailing median gap): dropouts and bursts
)


def history_needed(window: int = DEFAULT_WINDOW) -> int:
    """How many points before the first new one give it full-history features."""
    return window


def _signed_log(x: FloatArray) -> FloatArray:
    """Compress magnitudes (sign kept) so a 100-sigma spike does not dwarf the rest of the range."""
    return np.sign(x) * np.log1p(np.abs(x))


def window_features(ts_s: FloatArray, values: FloatArray, *, window: int = DEFAULT_WINDOW) -> FloatArray:
    """Features of each point of one series in time order, shape ``(n, len(FEATURE_NAMES))``.

    ``ts_s`` are epoch seconds, ascending. Raises ``ValueError`` on non-finite
    input (upstream validation already refuses NaN and infinity), mismatched
    lengths or a window shorter than 3.
    """
    ts, x = _checked(ts_s, values, window)
    n = len(x)
    out = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float64)
    m = n - window  # rows with a full trailing window: i = window .. n-1
    if m <= 0:
        return out
    # hist[j] = x[j : j+window], the points before i = j+window; incl[j] ends at i itself
    spans = sliding_window_view(x, window + 1)
    gaps = sliding_window_view(np.diff(ts), window)  # gaps[k] = ts[k+1] - ts[k]
    out[window:] = _feature_rows(spans[:, :-1], spans[:, 1:], gaps, window)
    return out


def _checked(ts_s: FloatArray, values: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    ts = np.asarray(ts_s, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    if ts.ndim != 1 or x.ndim != 1 or ts.shape != x.shape:
        raise ValueError(f"ts_s and values must be 1-D of equal length, got {ts.shape} and {x.shape}")
    if window < 3:
        raise ValueError(f"window must be at least 3, got {window}")
    if not (np.isfinite(ts).all() and np.isfinite(x).all()):
        raise ValueError("ts_s and values must be finite")
    return ts, x


def _feature_rows(hist: FloatArray, incl: FloatArray, gaps: FloatArray, window: int) -> FloatArray:
    """Feature rows from each point's trailing windows, one row per window row.

    ``hist`` holds the ``window`` values before each point, ``incl`` the
    ``window`` values ending at it, ``gaps`` the ``window`` time gaps ending
    at it. Each is reduced along its rows only, so a row's features depend on
    its own windows and nothing else (``stacked_window_features`` relies on
    it: it passes only the rows it keeps).
    """
    cur = incl[:, -1]
    med = _row_medians(hist)
    mad = _row_medians(np.abs(hist - med[:, None]))
    spread = np.maximum(np.maximum(MAD_TO_SIGMA * mad, REL_FLOOR * np.abs(med)), ABS_FLOOR)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        deviation = _signed_log((cur - med) / spread)
        step = _signed_log((cur - hist[:, -1]) / spread)
        ratio = hist.std(axis=1) / spread
        volatility = np.log(np.clip(ratio, np.exp(-LOG_CLIP), np.exp(LOG_CLIP)))
        centred = np.arange(window, dtype=np.float64) - (window - 1) / 2.0
        slope = (incl * centred).sum(axis=1) / float((centred**2).sum())
        rise = _signed_log(slope * (window - 1) / spread)
        flat = (np.ptp(incl, axis=1) <= FLAT_REL * np.abs(med) + ABS_FLOOR).astype(np.float64)

        # gaps[:, :-1] are the gaps between the history points, gaps[:, -1] the one before the point
        gap_ratio = np.maximum(gaps[:, -1], 0.0) / np.maximum(_row_medians(gaps[:, :-1]), 1e-9)
        gap = np.log(np.clip(gap_ratio, np.exp(-LOG_CLIP), np.exp(LOG_CLIP)))

    rows = np.column_stack((deviation, step, volatility, rise, flat, gap))
    return np.clip(np.nan_to_num(rows, nan=0.0), -FEATURE_CLIP, FEATURE_CLIP)


def _row_medians(rows: FloatArray) -> FloatArray:
    """``np.median(rows, axis=1)``'s values for finite or infinite rows, about three times faster.

    np.median partitions each row around its middle and averages the middle two
    as ``(a + b) / 2``; on rows of a dozen values numpy's sort is quicker than its
    partition, and the same two values give the same sum. (A middle holding both
    0.0 and -0.0 may give either sign of zero, which compare equal.) Medians were
    nearly a third of the features' time, which a live batch pays for every new point.
    """
    ordered = np.sort(rows, axis=1)
    half = rows.shape[1] // 2
    if rows.shape[1] % 2:
        return ordered[:, half]
    return (ordered[:, half - 1] + ordered[:, half]) / 2.0


def stacked_window_features(
    segments: Sequence[tuple[FloatArray, FloatArray, int]], *, window: int = DEFAULT_WINDOW
) -> FloatArray:
    """Rows of ``window_features`` for many series, stacked, without each series' first ``context`` rows.

    Each segment is ``(ts_s, values, context)``. The series are laid end to
    end and only the rows kept are computed, each from its own point and the
    ``window`` before it (gathered into one array per window), so a thousand
    series cost a few numpy calls and a live batch of one new point per
    series does not pay for its context's rows. Kept rows with fewer than
    ``window`` predecessors in their series are warm-up rows: zero.
    """
    if not segments:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)
    ts, x = _checked(
        np.concatenate([ts for ts, _, _ in segments]), np.concatenate([v for _, v, _ in segments]), window
    )
    lengths = np.fromiter((len(ts) for ts, _, _ in segments), np.intp, len(segments))
    skip = np.clip(np.fromiter((context for _, _, context in segments), np.intp, len(segments)), 0, lengths)
    kept = lengths - skip
    starts = np.cumsum(lengths) - lengths
    # index (in the stacked arrays) of every kept row, and its index within its own series
    first_kept = np.cumsum(kept) - kept
    rows = np.arange(int(kept.sum()), dtype=np.intp) - np.repeat(first_kept - starts - skip, kept)
    local = rows - np.repeat(starts, kept)
    out = np.zeros((len(rows), len(FEATURE_NAMES)), dtype=np.float64)
    full = local >= window
    if full.any():
        at = rows[full][:, None] + np.arange(-window, 1)  # each point and the window before it
        spans = x[at]
        gaps = np.diff(ts[at], axis=1)
        out[full] = _feature_rows(spans[:, :-1], spans[:, 1:], gaps, window)
    return out
