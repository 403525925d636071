"""One IsolationForest per sensor kind over trailing-window features, trained from history.

The streaming detectors watch one series at a time and one number at a time;
this model looks at the shape of the recent window (deviation, step,
volatility, slope, flatline, dropout) together, so it catches combinations
none of them flags alone. Features are unit-free (``models.features``), so
one model serves every sensor of a kind.

An IsolationForest cannot extrapolate: a window far beyond the training range
of one feature (a three-hour dropout, a flatline in a kind that never had one)
isolates no faster than the most extreme training window in that feature, so
its score saturates around the 90th percentile. A range guard adds to the raw
score how far a row lies outside the training range of its most out-of-range
feature. Training rows lie inside by construction, so the guard leaves the
calibration untouched and only lifts what no training window looked like.

Scores are calibrated against the training data: a score of 0.99 means "more
anomalous than 99 % of training windows", which reads the same for every kind
and every retrain. The forest is scored by ``models.forest_kernel`` (sklearn's
scores bit for bit, without its per-call cost of milliseconds), and still in
batches: features and calibration are numpy calls with a fixed cost each.

Pure: arrays in, scores out. Persisting the bytes is the model registry's job.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Self

import numpy as np
import sklearn
import skops.io
from sklearn.ensemble import IsolationForest
from skops.io.exceptions import UntrustedTypesFoundException

from models.features import DEFAULT_WINDOW, FEATURE_NAMES, stacked_window_features, window_features
from models.forest_kernel import FlatForest, flatten_forest
from models.protocol import FloatArray

MIN_SAMPLES = 200  # below this the forest's subsamples and the calibration CDF are mostly noise
CALIBRATION_POINTS = 2000  # enough resolution for a 0.999 score, small enough to store beside the model
DEFAULT_FLAG_AT = 0.99  # calibrated score at which the training metrics count a window as flagged
DEFAULT_RANGE_WEIGHT = 0.05  # raw score added per unit of range excess: ~ the training p50-to-p99 distance
MIN_RANGE_SCALE = 0.1  # excess unit floor: a feature constant in training must not make tiny changes infinite
_MAGIC = b"CWKM2\n"  # citywarn kind model, format 2: the estimator as a skops file
_PICKLED = b"CWKM1\n"  # format 1 held a pickle: refused, since loading one could run any code
# What an IsolationForest's skops file holds beyond the types skops trusts by itself; anything
# else in a file is refused before it is built.
_TRUSTED = ["sklearn.tree._tree.Tree"]
_HEADER = struct.Struct(">I")  # length of the JSON metadata that follows the magic


@dataclass(slots=True)
class KindModel:
    """A fitted IsolationForest for one sensor kind, with the metadata an operator needs to trust it.

    ``calibration`` holds sorted training anomaly scores (higher = more
    anomalous) at evenly spaced quantiles; ``score`` maps a raw score to its
    position in that distribution. ``feature_range`` is the training range of
    each feature as rows ``(low, high, unit)`` for the range guard.
    ``kernel`` is the estimator laid out for the compiled scorer; it is
    derived, never stored, and rebuilt whenever it does not belong to
    ``estimator`` (so passing ``None`` or another model's kernel is safe).
    """

    kind: str
    version: str
    trained_from: datetime
    trained_to: datetime
    n_samples: int
    params: dict[str, Any]
    metrics: dict[str, Any]
    estimator: IsolationForest = field(repr=False)
    calibration: FloatArray = field(repr=False)
    feature_range: FloatArray = field(repr=False)
    kernel: FlatForest | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kernel is None or self.kernel.source is not self.estimator:
            self.kernel = flatten_forest(self.estimator)

    def raw_scores(self, features: FloatArray) -> FloatArray:
        """Uncalibrated scores: negated ``score_samples`` (higher = more anomalous) plus the range guard."""
        x = _check_features(features)
        if len(x) == 0:
            return np.empty(0, dtype=np.float64)
        assert self.kernel is not None  # set by __post_init__
        forest = self.kernel.anomaly_scores(x)
        return forest + float(self.params["range_weight"]) * range_excess(x, self.feature_range)

    def score(self, features: FloatArray) -> FloatArray:
        """Calibrated scores in [0, 1] for a batch of feature rows (never call it row by row)."""
        raw = self.raw_scores(features)
        probs = np.linspace(0.0, 1.0, len(self.calibration))
        return np.asarray(np.interp(raw, self.calibration, probs, left=0.0, right=1.0), dtype=np.float64)

    def score_series(self, ts_s: FloatArray, values: FloatArray) -> FloatArray:
        """Build features with the window the model was trained with, then score every point.

        For a live stream, prepend the last ``history_needed(window)`` stored
        points of the series and keep the scores of the new ones.
        """
        return self.score(window_features(ts_s, values, window=int(self.params["window"])))

    def score_streams(self, segments: Sequence[tuple[FloatArray, FloatArray, int]]) -> list[FloatArray]:
        """Scores of many series of this kind in one forest call, identical to ``score_series`` on each.

        Each segment is ``(ts_s, values, context)``: the first ``context`` points
        only give the new ones their history and get no score. A forest call
        has a fixed cost of milliseconds, so a batch of a thousand sensors pays
        it once instead of a thousand times; every row is scored on its own,
        so stacking changes no score.
        """
        if not segments:
            return []
        scores = self.score(stacked_window_features(segments, window=int(self.params["window"])))
        # Slicing by hand: np.split's own loop cost ~4 ms for 5,000 segments, a fifth of the whole call.
        kept = [len(ts) - min(max(context, 0), len(ts)) for ts, _, context in segments]
        bounds = np.cumsum([0, *kept]).tolist()
        return [scores[start:end] for start, end in pairwise(bounds)]

    def describe(self) -> dict[str, Any]:
        """JSON-safe metadata without the estimator, for the API and the registry's listing."""
        return {
            "kind": self.kind,
            "version": self.version,
            "trained_from": self.trained_from.isoformat(),
            "trained_to": self.trained_to.isoformat(),
            "n_samples": self.n_samples,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "feature_names": list(FEATURE_NAMES),
            "calibration_points": len(self.calibration),
        }

    def to_bytes(self) -> bytes:
        """Magic, JSON metadata (with the calibration), then the estimator as a skops file."""
        payload = skops.io.dumps(self.estimator)
        meta = self.describe()
        meta["calibration"] = [float(v) for v in self.calibration]  # repr round-trips floats exactly
        meta["feature_range"] = self.feature_range.tolist()
        meta["sklearn_version"] = sklearn.__version__
        meta["estimator_sha256"] = hashlib.sha256(payload).hexdigest()
        header = json.dumps(meta, separators=(",", ":")).encode()
        return _MAGIC + _HEADER.pack(len(header)) + header + payload

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Rebuild a model written by ``to_bytes``.

        The estimator is a skops file, not a pickle: loading it builds only the
        types skops trusts and ``_TRUSTED``, so bytes from a database (or a copy
        of one) cannot run code when a worker starts. Format 1 models were
        pickles; they are refused and must be trained again.
        """
        if data.startswith(_PICKLED):
            raise ValueError(
                "a format 1 kind model (a pickle) is no longer loaded: run `citywarn train` again"
            )
        if not data.startswith(_MAGIC):
            raise ValueError("not a citywarn kind model (bad magic)")
        start = len(_MAGIC) + _HEADER.size
        (length,) = _HEADER.unpack_from(data, len(_MAGIC))
        meta = json.loads(data[start : start + length])
        payload = data[start + length :]
        if hashlib.sha256(payload).hexdigest() != meta["estimator_sha256"]:
            raise ValueError(f"model {meta.get('version')!r}: estimator bytes are corrupt (checksum)")
        if tuple(meta["feature_names"]) != FEATURE_NAMES:
            raise ValueError(
                f"model {meta['version']!r} was trained on features {meta['feature_names']}, "
                f"this code builds {list(FEATURE_NAMES)}: retrain it"
            )
        try:
            estimator = skops.io.loads(payload, trusted=_TRUSTED)
        except UntrustedTypesFoundException as exc:
            raise ValueError(f"model {meta['version']!r}: holds types not allowed: {exc}") from exc
        if not isinstance(estimator, IsolationForest):
            raise ValueError(f"model {meta['version']!r}: payload is {type(estimator).__name__}")
        return cls(
            kind=meta["kind"],
            version=meta["version"],
            trained_from=datetime.fromisoformat(meta["trained_from"]),
            trained_to=datetime.fromisoformat(meta["trained_to"]),
            n_samples=int(meta["n_samples"]),
            params=meta["params"],
            metrics=meta["metrics"],
            estimator=estimator,
            calibration=np.asarray(meta["calibration"], dtype=np.float64),
            feature_range=np.asarray(meta["feature_range"], dtype=np.float64),
        )


def fit_kind_model(
    kind: str,
    features: FloatArray,
    *,
    trained_from: datetime,
    trained_to: datetime,
    n_estimators: int = 100,
    max_samples: int = 256,
    random_state: int = 0,
    window: int = DEFAULT_WINDOW,
    flag_at: float = DEFAULT_FLAG_AT,
    range_weight: float = DEFAULT_RANGE_WEIGHT,
    version: str | None = None,
) -> KindModel:
    """Fit and calibrate the model of one kind on feature rows from ``window_features``.

    Rows are the stacked features of every sensor of the kind over
    ``trained_from`` .. ``trained_to`` (timezone-aware). ``window`` is the
    window the features were built with, kept so scoring builds the same ones.
    ``range_weight=0`` turns the range guard off (a plain IsolationForest).
    ``version`` defaults to ``"<kind>-<UTC yyyymmddHHMMSS>"``. Same data and
    ``random_state`` give the same scores.
    """
    x = _check_features(features)
    if len(x) < MIN_SAMPLES:
        raise ValueError(
            f"kind {kind!r}: {len(x)} feature rows is too little history to train on; "
            f"need at least {MIN_SAMPLES}"
        )
    for name, moment in (("trained_from", trained_from), ("trained_to", trained_to)):
        if moment.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
    if trained_to < trained_from:
        raise ValueError(f"trained_to {trained_to} is before trained_from {trained_from}")
    if not 0.0 < flag_at < 1.0:
        raise ValueError(f"flag_at must be in (0, 1), got {flag_at}")

    params: dict[str, Any] = {
        "n_estimators": n_estimators,
        "max_samples": min(max_samples, len(x)),
        "random_state": random_state,
        "window": window,
        "flag_at": flag_at,
        "range_weight": range_weight,
    }
    started = time.perf_counter()
    estimator = IsolationForest(
        n_estimators=n_estimators,
        max_samples=params["max_samples"],
        random_state=random_state,
    ).fit(x)
    fitted = time.perf_counter()
    low, high = x.min(axis=0), x.max(axis=0)
    q25, q75 = np.quantile(x, [0.25, 0.75], axis=0)
    feature_range = np.vstack((low, high, np.maximum(q75 - q25, MIN_RANGE_SCALE)))
    # Every training row lies inside the range, so its guard term is zero: no need to add it here.
    kernel = flatten_forest(estimator)
    raw = np.sort(kernel.anomaly_scores(x))
    positions = np.linspace(0, len(raw) - 1, min(CALIBRATION_POINTS, len(raw)))
    calibration = raw[np.round(positions).astype(np.intp)]
    calibrated = time.perf_counter()

    raw_threshold = float(np.quantile(raw, flag_at))
    quantiles = {f"p{q:g}": float(np.quantile(raw, q / 100)) for q in (1, 50, 90, 99, 99.9)}
    spread = high - low
    metrics: dict[str, Any] = {
        "raw_score_quantiles": quantiles | {"max": float(raw[-1])},
        "raw_threshold": raw_threshold,
        "fraction_flagged": float(np.mean(raw > raw_threshold)),
        # IsolationForest never splits on a feature that was constant in training:
        # only the range guard sees anomalies that show there.
        "constant_features": [name for name, s in zip(FEATURE_NAMES, spread, strict=True) if s == 0.0],
        "fit_seconds": round(fitted - started, 4),
        "calibration_seconds": round(calibrated - fitted, 4),
    }
    return KindModel(
        kind=kind,
        version=version or f"{kind}-{datetime.now(UTC):%Y%m%d%H%M%S}",
        trained_from=trained_from,
        trained_to=trained_to,
        n_samples=len(x),
        params=params,
        metrics=metrics,
        estimator=estimator,
        calibration=calibration,
        feature_range=feature_range,
        kernel=kernel,
    )


def range_excess(features: FloatArray, feature_range: FloatArray) -> FloatArray:
    """Per row, how far the most out-of-range feature lies outside the training range, in IQR units."""
    low, high, unit = feature_range
    beyond = np.maximum(np.maximum(features - high, low - features), 0.0) / unit
    return np.asarray(beyond.max(axis=1), dtype=np.float64)


def _check_features(features: FloatArray) -> FloatArray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise ValueError(
            f"features must have shape (n, {len(FEATURE_NAMES)}) as built by window_features, got {x.shape}"
        )
    if not np.isfinite(x).all():
        raise ValueError("features must be finite")
    return x
