"""citywarn's implementation of the Numenta Anomaly Benchmark (NAB) scoring rules.

Reference: A. Lavin and S. Ahmad, "Evaluating Real-time Anomaly Detection
Algorithms -- the Numenta Anomaly Benchmark", IEEE ICMLA 2015 (and S. Ahmad
et al., Neurocomputing 2017). The rules follow NAB v1.x (its threshold
sweeper), re-implemented here with numpy so a whole corpus is scored for every
candidate threshold with one sort instead of one pass per threshold:

* The first ``min(floor(0.15 n), 0.15 * 5000)`` rows of a file are a
  probationary period: detections there are ignored, and a window lying
  wholly inside it is not scored.
* Row ``i`` of a window spanning rows ``L..R`` (``W = R - L + 1`` rows) sits
  at relative position ``-(R - i + 1) / W``: ``-1`` at the window start and
  just below 0 at its end. A detection there earns
  ``tpWeight * sigma(pos) / sigma(-1)``, ``sigma`` being the scaled sigmoid
  ``2 / (1 + exp(5 x)) - 1`` (``-1`` for ``x >= 3``), so a detection at the
  window start earns exactly ``tpWeight``. Only the best (= earliest)
  detection of a window counts; a window without one costs ``-fnWeight``.
* A detection outside every window costs ``fpWeight * sigma(d)``, with
  ``d = (i - R) / (W - 1)`` measured from the end ``R`` of the closest
  preceding window (``W`` its length), so a detection just after a window is
  nearly free and one three window-lengths on costs the full ``-fpWeight``;
  before any window it costs ``-fpWeight``.
* A row is a detection when its anomaly score is ``>= threshold``. One
  threshold serves the whole corpus: the one maximising the summed raw score
  over all files (candidates: every distinct score, plus "never fire"), or
  one fixed in advance.
* Normalised score = ``100 (raw - null) / (perfect - null)``: ``null`` never
  fires (every window a miss), ``perfect`` detects each window at its start
  and nothing else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 5000  # the probationary period never exceeds 15 % of 5000 rows
NEVER_FIRE = math.inf  # the threshold that turns every score into "no detection"


@dataclass(frozen=True, slots=True)
class CostMatrix:
    """One application profile's weights for true positives, false positives and misses."""

    tp_weight: float
    fp_weight: float
    fn_weight: float

    @classmethod
    def from_nab(cls, cost: Mapping[str, float]) -> CostMatrix:
        """Read NAB's ``CostMatrix`` dictionary (``tpWeight``, ``fpWeight``, ``fnWeight``)."""
        return cls(float(cost["tpWeight"]), float(cost["fpWeight"]), float(cost["fnWeight"]))


STANDARD = CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
DEFAULT_PROFILES: dict[str, CostMatrix] = {
    "standard": STANDARD,
    "reward_low_FP_rate": CostMatrix(tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
    "reward_low_FN_rate": CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
}


@dataclass(frozen=True, slots=True)
class LabelledSeries:
    """One file's scores and its anomaly windows as inclusive row ranges ``(start, end)``."""

    name: str
    scores: FloatArray
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class CorpusFile:
    """A data file as read from disk: raw text columns kept so results echo the input exactly."""

    name: str  # "<category>/<file>.csv", the key used by the label files
    timestamp_text: tuple[str, ...]
    value_text: tuple[str, ...]
    ts_seconds: FloatArray
    values: FloatArray
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ProfileResult:
    """The best corpus-wide threshold for one profile and the scores it yields."""

    threshold: float
    raw: float
    null: float
    perfect: float
    score: float  # normalised: 0 = never fires, 100 = perfect


# --------------------------------------------------------------------------- loading


def load_profiles(path: str | Path | None = None) -> dict[str, CostMatrix]:
    """Profiles from a NAB ``profiles.json``; NAB's published weights when no file is given."""
    if path is None:
        return dict(DEFAULT_PROFILES)
    raw = json.loads(Path(path).read_text())
    return {name: CostMatrix.from_nab(body["CostMatrix"]) for name, body in raw.items()}


def load_window_labels(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """``combined_windows.json``: ``"<category>/<file>.csv" -> [[start, end], ...]`` timestamp strings."""
    raw = json.loads(Path(path).read_text())
    return {name: [(str(a), str(b)) for a, b in spans] for name, spans in raw.items()}


def parse_timestamps(text: Sequence[str]) -> npt.NDArray[np.datetime64]:
    """NAB timestamps ("2014-02-19 10:50:00[.000000]") as naive ``datetime64[ns]``."""
    return pd.to_datetime(pd.Series(list(text), dtype=str), format="ISO8601").to_numpy(dtype="datetime64[ns]")


def window_rows(
    timestamps: npt.NDArray[np.datetime64], spans: Iterable[tuple[str, str]]
) -> tuple[tuple[int, int], ...]:
    """Map timestamp windows to inclusive row ranges: rows with ``start <= t <= end``.

    NAB labels put window edges on data timestamps; comparing instead of
    matching exactly keeps an edge that falls between rows meaningful.
    """
    rows = []
    for start, end in spans:
        t0, t1 = parse_timestamps([start, end])
        lo = int(np.searchsorted(timestamps, t0, side="left"))
        hi = int(np.searchsorted(timestamps, t1, side="right")) - 1
        if hi >= lo:
            rows.append((lo, hi))
    return tuple(sorted(rows))


def read_data_file(path: Path, name: str, spans: Iterable[tuple[str, str]]) -> CorpusFile:
    """One ``timestamp,value`` CSV plus its label windows."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    ts_text = tuple(frame["timestamp"].tolist())
    val_text = tuple(frame["value"].tolist())
    stamps = parse_timestamps(ts_text)
    ts_seconds = stamps.astype(np.int64).astype(np.float64) / 1e9
    return CorpusFile(
        name=name,
        timestamp_text=ts_text,
        value_text=val_text,
        ts_seconds=ts_seconds,
        values=np.asarray(frame["value"].astype(np.float64).to_numpy(), dtype=np.float64),
        windows=window_rows(stamps, spans),
    )


def load_corpus(data_dir: str | Path, labels_path: str | Path) -> list[CorpusFile]:
    """Every ``<category>/<file>.csv`` under ``data_dir`` that the label file knows, sorted by name.

    Label entries without a data file are ignored, so a subset of the corpus
    can be evaluated; a data file missing from the labels is an error, since
    scoring it as "no anomalies" would silently misjudge the detector.
    """
    root = Path(data_dir)
    labels = load_window_labels(labels_path)
    files = []
    for path in sorted(root.glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        if name not in labels:
            raise KeyError(f"{name} has no entry in {labels_path}")
        files.append(read_data_file(path, name, labels[name]))
    if not files:
        raise FileNotFoundError(f"no <category>/<file>.csv files under {root}")
    return files


# --------------------------------------------------------------------------- per-row rules


def probation_length(n_rows: int, fraction: float = PROBATION_FRACTION) -> int:
    """Rows ``0 .. k-1`` are probationary: ``k = ceil(min(floor(f n), f * 5000))``.

    The ceiling turns NAB's possibly fractional bound (``i < 750.0``) into a row count.
    """
    return math.ceil(min(math.floor(fraction * n_rows), fraction * PROBATION_CAP_ROWS))


def scaled_sigmoid(position: FloatArray | float) -> FloatArray:
    """``2 / (1 + exp(5 x)) - 1``, clamped to ``-1`` from ``x >= 3`` (an FP far from any window)."""
    x = np.asarray(position, dtype=np.float64)
    with np.errstate(over="ignore"):
        y = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x >= 3.0, -1.0, y)


MAX_TP = float(scaled_sigmoid(-1.0))  # value at a window's first row; TP credit is divided by it


def window_ids(n_rows: int, windows: Sequence[tuple[int, int]]) -> IntArray:
    """Index of the window each row lies in, ``-1`` outside every window."""
    ids = np.full(n_rows, -1, dtype=np.int64)
    for k, (lo, hi) in enumerate(windows):
        ids[lo : hi + 1] = k
    return ids


def row_credit(n_rows: int, windows: Sequence[tuple[int, int]], cost: CostMatrix) -> FloatArray:
    """What a detection on each row is worth on its own: TP credit in a window, FP cost outside.

    Inside a window the first detection is what counts (``window_score``); this
    is the credit that detection would earn.
    """
    rows = np.arange(n_rows, dtype=np.float64)
    ids = window_ids(n_rows, windows)
    credit = np.full(n_rows, -cost.fp_weight)
    if not windows:
        return credit
    lo = np.array([w[0] for w in windows], dtype=np.float64)
    hi = np.array([w[1] for w in windows], dtype=np.float64)
    width = hi - lo + 1.0

    inside = ids >= 0
    k = ids[inside]
    credit[inside] = cost.tp_weight * scaled_sigmoid(-(hi[k] - rows[inside] + 1.0) / width[k]) / MAX_TP

    # Outside: measured from the end of the closest window that ended before the row.
    prev = np.searchsorted(hi, rows, side="left") - 1
    after = ~inside & (prev >= 0)
    p = prev[after]
    span = width[p] - 1.0
    distance = np.divide(
        rows[after] - hi[p], span, out=np.full(p.shape, np.inf), where=span > 0
    )  # a one-row window has no scale: any later FP is "far"
    credit[after] = cost.fp_weight * scaled_sigmoid(distance)
    return credit


def scored_windows(n_rows: int, windows: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Windows clipped to the scored rows; windows wholly inside probation are dropped."""
    start = probation_length(n_rows)
    return [(max(lo, start), hi) for lo, hi in windows if hi >= start]


# --------------------------------------------------------------------------- scoring


def raw_score(series: LabelledSeries, cost: CostMatrix, threshold: float) -> float:
    """One file's raw NAB score at a fixed threshold, straight from the rules (no sweep)."""
    n = len(series.scores)
    credit = row_credit(n, series.windows, cost)
    detected = np.asarray(series.scores >= threshold)
    detected[: probation_length(n)] = False
    ids = window_ids(n, series.windows)
    total = float(credit[detected & (ids < 0)].sum())
    for lo, hi in scored_windows(n, series.windows):
        hits = np.flatnonzero(detected[lo : hi + 1])
        total += float(credit[lo + hits[0]]) if hits.size else -cost.fn_weight
    return total


def null_score(files: Sequence[LabelledSeries], cost: CostMatrix) -> float:
    """A detector that never fires: every scored window is a miss."""
    return 0.0 - cost.fn_weight * sum(len(scored_windows(len(f.scores), f.windows)) for f in files)


def perfect_score(files: Sequence[LabelledSeries], cost: CostMatrix) -> float:
    """One detection on each window's first scored row, nothing else."""
    total = 0.0
    for f in files:
        credit = row_credit(len(f.scores), f.windows, cost)
        total += sum(float(credit[lo]) for lo, _ in scored_windows(len(f.scores), f.windows))
    return total


def normalised(raw: float, null: float, perfect: float) -> float:
    """``100 (raw - null) / (perfect - null)``: 0 for the null detector, 100 for the perfect one."""
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


def _detection_gains(series: LabelledSeries, cost: CostMatrix) -> tuple[FloatArray, FloatArray]:
    """Scored rows' anomaly scores and the raw-score change each adds when it becomes a detection.

    Lowering the threshold adds rows in descending score order. An outside row
    adds its FP cost. Inside a window the window's value is the best credit
    detected so far (starting at ``-fnWeight``), so a row adds the rise of that
    running maximum, taking rows of the window in descending score order. Ties
    in score get some order, but only sums over whole tie groups are used.
    """
    n = len(series.scores)
    start = probation_length(n)
    credit = row_credit(n, series.windows, cost)
    gains = credit.copy()
    for lo, hi in scored_windows(n, series.windows):
        rows = np.arange(lo, hi + 1)
        order = rows[np.argsort(-series.scores[lo : hi + 1], kind="stable")]
        best = np.maximum.accumulate(np.concatenate(([-cost.fn_weight], credit[order])))
        gains[order] = np.diff(best)
    return series.scores[start:], gains[start:]


def threshold_curve(files: Sequence[LabelledSeries], cost: CostMatrix) -> tuple[FloatArray, FloatArray]:
    """Corpus raw score at every candidate threshold, highest threshold first.

    The first candidate is ``NEVER_FIRE``; then each distinct score, meaning
    "detect every row scoring at least this". O(N log N) for N rows in all.
    """
    null = null_score(files, cost)
    parts = [_detection_gains(f, cost) for f in files]
    scores = np.concatenate([p[0] for p in parts] + [np.empty(0)])
    gains = np.concatenate([p[1] for p in parts] + [np.empty(0)])
    if np.isnan(scores).any():
        raise ValueError("anomaly scores contain NaN; a detector must score every row")
    if scores.size == 0:
        return np.array([NEVER_FIRE]), np.array([null])
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    totals = null + np.cumsum(gains[order])
    group_end = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    return np.concatenate(([NEVER_FIRE], ranked[group_end])), np.concatenate(([null], totals[group_end]))


def best_threshold(files: Sequence[LabelledSeries], cost: CostMatrix) -> tuple[float, float]:
    """``(threshold, raw score)`` maximising the corpus raw score; ties go to the higher threshold."""
    thresholds, raw = threshold_curve(files, cost)
    k = int(np.argmax(raw))
    return float(thresholds[k]), float(raw[k])


def score_profile(
    files: Sequence[LabelledSeries], cost: CostMatrix, threshold: float | None = None
) -> ProfileResult:
    """Normalised result for one profile: at ``threshold`` if given, else at NAB's optimised one.

    A fixed threshold is how an operating point chosen in advance (the service's settings)
    is scored; the optimised one is what NAB publishes.
    """
    if threshold is None:
        threshold, raw = best_threshold(files, cost)
    else:
        raw = sum(raw_score(f, cost, threshold) for f in files)
    null, perfect = null_score(files, cost), perfect_score(files, cost)
    return ProfileResult(threshold, raw, null, perfect, normalised(raw, null, perfect))


def score_all_profiles(
    files: Sequence[LabelledSeries],
    profiles: Mapping[str, CostMatrix] | None = None,
    *,
    threshold: float | None = None,
) -> dict[str, ProfileResult]:
    """NAB results for every profile (by default standard, reward_low_FP_rate, reward_low_FN_rate)."""
    chosen = DEFAULT_PROFILES if profiles is None else profiles
    return {name: score_profile(files, cost, threshold) for name, cost in chosen.items()}
