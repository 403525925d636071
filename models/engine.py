"""Scores a batch of observations series by series, keeping one detector per series.

Pure: observations in, signals out; the caller persists ``dirty_states()``
beside the Kafka offsets they correspond to. Each series remembers the
(partition, offset) of the last point it learned from, so when a crash makes
Kafka deliver a batch again, points already learned are not learned twice and
a replay scores exactly as the uninterrupted stream did.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from config.catalog import LEVELS, Catalog, SensorKind
from models.features import history_needed
from models.limits import levels_crossed
from models.multivariate import KindModel
from models.protocol import FloatArray, StreamingDetector
from models.registry import detector_class
from models.signals import Observation, Signal

Position = tuple[int, int]  # (partition, offset)


class ScoringEngine:
    def __init__(
        self,
        catalog: Catalog,
        *,
        detector: str,
        signal_threshold: float,
        make_detector: Callable[[], StreamingDetector] | None = None,
        multivariate_threshold: float = 0.999,
    ) -> None:
        self.catalog = catalog
        self.detector_name = detector
        self.signal_threshold = signal_threshold
        self._make = make_detector or detector_class(detector)
        self._detectors: dict[str, StreamingDetector] = {}
        self._positions: dict[str, Position] = {}
        self._dirty: set[str] = set()
        # The multivariate model needs each series' last few points before a batch.
        self.multivariate_threshold = multivariate_threshold
        self._kind_models: dict[str, KindModel] = {}
        self._context: dict[str, deque[tuple[float, float]]] = {}

    def set_kind_models(self, models: dict[str, KindModel]) -> None:
        """Swap in freshly trained per-kind models; series keep their context."""
        self._kind_models = dict(models)

    def known(self, sensor_id: str) -> bool:
        return sensor_id in self._detectors

    def restore(self, states: dict[str, dict[str, Any]]) -> None:
        """Load checkpoints written by ``dirty_states`` (other detectors' states are ignored)."""
        cls = detector_class(self.detector_name)
        for sensor_id, saved in states.items():
            if saved.get("detector") != self.detector_name:
                continue
            self._detectors[sensor_id] = cls.from_state(saved["state"])
            self._context[sensor_id] = deque(
                (tuple(p) for p in saved.get("context", [])),  # type: ignore[misc]
                maxlen=history_needed(),
            )
            if saved.get("position") is not None:
                self._positions[sensor_id] = tuple(saved["position"])  # type: ignore[assignment]

    def forget_all(self) -> None:
        self._detectors.clear()
        self._positions.clear()
        self._context.clear()
        self._dirty.clear()

    def dirty_states(self) -> dict[str, dict[str, Any]]:
        """States changed since the last call, ready to checkpoint.

        Call it only when the states are saved right after: the dirty set is cleared.
        """
        out = {
            sid: {
                "detector": self.detector_name,
                "state": self._detectors[sid].get_state(),
                "position": self._positions.get(sid),
                "context": [list(p) for p in self._context.get(sid, ())],
            }
            for sid in self._dirty
        }
        self._dirty.clear()
        return out

    def score(
        self,
        observations: Sequence[Observation],
        positions: Sequence[Position] | None = None,
    ) -> list[Signal]:
        """Score a batch; at most one signal per series: its most severe point in the batch."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, obs in enumerate(observations):
            groups[obs.sensor_id].append(i)
        signals = []
        for sensor_id, idx in groups.items():
            if positions is not None:
                idx = self._unlearned(sensor_id, idx, positions)
                if not idx:
                    continue
            idx.sort(key=lambda i: observations[i].ts_ns)
            signal = self._score_series(sensor_id, [observations[i] for i in idx])
            if positions is not None:
                self._positions[sensor_id] = positions[idx[-1]]
            self._dirty.add(sensor_id)
            if signal is not None:
                signals.append(signal)
        return signals

    def _meaningful(
        self, score: float, value: float, evidence: dict[str, float], kind: SensorKind | None
    ) -> bool:
        """A statistical anomaly counts when it is both unusual and big enough to matter."""
        if score < self.signal_threshold:
            return False
        baseline = evidence.get("baseline", float("nan"))
        if kind is None or not np.isfinite(baseline):
            return True
        return abs(value - baseline) >= kind.min_deviation

    def _multivariate(
        self, sensor_id: str, kind: str, ts: FloatArray, values: FloatArray
    ) -> FloatArray | None:
        """Per-kind model scores for the batch, computed with the series' preceding points."""
        context = self._context.setdefault(sensor_id, deque(maxlen=history_needed()))
        model = self._kind_models.get(kind)
        scores = None
        if model is not None:
            past = len(context)
            all_ts = np.concatenate([np.fromiter((p[0] for p in context), np.float64, past), ts])
            all_values = np.concatenate([np.fromiter((p[1] for p in context), np.float64, past), values])
            scores = model.score_series(all_ts, all_values)[past:]
        context.extend(zip(ts.tolist(), values.tolist(), strict=True))
        return scores

    def _unlearned(self, sensor_id: str, idx: list[int], positions: Sequence[Position]) -> list[int]:
        last = self._positions.get(sensor_id)
        if last is None:
            return idx
        return [i for i in idx if positions[i][0] != last[0] or positions[i][1] > last[1]]

    def _score_series(self, sensor_id: str, obs: list[Observation]) -> Signal | None:
        detector = self._detectors.get(sensor_id)
        if detector is None:
            detector = self._detectors[sensor_id] = self._make()
        ts = np.fromiter((o.ts_ns for o in obs), dtype=np.float64, count=len(obs)) / 1e9
        values = np.fromiter((o.value for o in obs), dtype=np.float64, count=len(obs))
        result = detector.score_batch(ts, values)
        kind = obs[0].kind
        multivariate = self._multivariate(sensor_id, kind, ts, values)
        scores = result.scores
        if multivariate is not None:
            # The per-kind model speaks only when it is sure: it has no per-series memory.
            scores = np.maximum(
                scores, np.where(multivariate >= self.multivariate_threshold, multivariate, 0.0)
            )
        thresholds = self.catalog.thresholds_for(sensor_id, kind)
        levels = levels_crossed(thresholds, values)
        # Most severe first: the highest line crossed, then the highest score, then the latest.
        severity = levels.astype(np.float64) * 2.0 + scores
        best = int(len(severity) - 1 - np.argmax(severity[::-1]))
        score = float(scores[best])
        level = LEVELS[levels[best]] if levels[best] >= 0 else None
        kind_info = self.catalog.kinds.get(kind)
        o = obs[best]
        if level is None and not self._meaningful(score, o.value, result.evidence_at(best), kind_info):
            return None
        evidence: dict[str, float | str] = {
            k: v for k, v in result.evidence_at(best).items() if np.isfinite(v)
        }
        if level is not None and thresholds is not None:
            evidence["warning_line"] = float(getattr(thresholds, level))
        if multivariate is not None:
            evidence["multivariate"] = float(multivariate[best])
            evidence["multivariate_model"] = self._kind_models[kind].version
        return Signal(
            sensor_id=sensor_id,
            kind=kind,
            area=o.area,
            hazard=kind_info.hazard if kind_info else "other",
            ts_ns=o.ts_ns,
            value=float(o.value),
            score=score,
            detector=self.detector_name,
            level=level,
            evidence=evidence,
        )
