"""Scores observations series by series: detector, per-kind model, then the decision step.

The per-kind model is the exception to "series by series": one call of it
costs milliseconds whatever the rows, so it scores every series of a kind in a
batch at once (each with its own context), which gives the same scores.

Pure: observations in, signals out; the caller persists ``checkpoint()``
beside the Kafka offsets they correspond to. Each series' checkpoint holds
everything its next score depends on: the detector state, the last points the
per-kind model needs as context, the decision state, and the (partition,
offset) of the last point learned. So a replay after a crash skips points
already learned and scores the rest exactly as the uninterrupted stream did.

Checkpoints are incremental (``models.series_checkpoint``): a series writes
its whole state (a snapshot) only once the points it learned since the last
one weigh as much as that snapshot, or number ``MAX_LOGGED_POINTS`` (each
series at its own share of that, between a half and all of it); in
between it writes just those points, and a restore replays them through the
same steps. A full window is tens of KiB, a point 24 bytes, and most
checkpoints carry a few points per series.

Points of a series are taken in arrival order (partition, then offset), not
in timestamp order: arrival order is the same however the stream is cut into
batches, so the signals are too (a late point is scored when it arrives).

Every point also goes through the series' health check (``models.sensor_health``),
in the same order and checkpointed with the rest. Readings outside the kind's
valid range (dead-lettered by ingest, and handed here only for that) are
judged for health and never scored: no detector learns an impossible value.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from config.catalog import LEVELS, Catalog, SensorKind, Thresholds
from config.live_catalog import CatalogView
from config.positions import Position
from models.decision import Decision, DecisionRule, SeriesDecision, pass_quiet, signals_among
from models.features import history_needed
from models.multivariate import KindModel
from models.protocol import BatchScores, FloatArray, StreamingDetector
from models.registry import detector_class
from models.sensor_health import HealthEvent, HealthRule, SeriesHealth
from models.series_checkpoint import (
    INCREMENTAL_FORMAT,
    POINT_BYTES,
    Learned,
    SeriesCheckpoint,
    decode_runs,
    decode_snapshot,
    encode_points,
    encode_snapshot,
)
from models.signals import Observation, Signal
from models.state_codec import StateDecodeError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 3  # detector, context and decision state together; older checkpoints are ignored
CONTEXT = history_needed()
NO_HEALTH_RULE = HealthRule()  # a kind the catalog file does not define: no valid range, never stuck
# A restore replays a series' logged points through the detector and decision step. Measured
# on 1,000 full-window gas series (loaded machine): a snapshot is ~91 KB and restores in ~0.6 ms,
# 256 logged points replay in ~1.5 ms more. Without a cap a full series would log ~3,800 points
# before its snapshot outweighed them (~23 ms to replay at that rate; in bench.pipeline, restoring 10,000
# young series was already ~10 % of the one-worker phase); with it, a snapshot is written every
# 256 points, ~360 bytes a point.
MAX_LOGGED_POINTS = 256
# A series handed over at a stop or a revoke (``ScoringEngine.handover_order``) writes a snapshot only
# if the log it would otherwise replay costs its next owner more than the snapshot costs the
# handover. ``python -m bench.handover`` (2026-12-05, 2,000 and 5,000 series): a replay cost its
# restore 47 µs plus 2.75 µs a point, a snapshot 178 and 221 µs of the handover's wall time: the two
# break even at 48 and 63 points. The handover holds the partitions back (a revoke holds the whole
# group), so a log shorter than that is left to be replayed.
HANDOVER_MIN_POINTS = 56
HANDOVER_MIN_BYTES = HANDOVER_MIN_POINTS * POINT_BYTES


def snapshot_share(sensor_id: str) -> float:
    """The share of its log budget at which a series snapshots, in [1/2, 1), fixed by its id.

    Series that start together, at one rate, would otherwise reach their budget at one checkpoint:
    10,000 of them snapshotting at once held the worker 2.2 s (encoding on the worker's thread;
    40 ms for their deltas), and every reading waiting behind that checkpoint saw its latency.
    Spread over half the budget, about 1/128 of them snapshot per point each takes. A hash, not a
    random draw, so a restarted worker keeps each series' cadence and tests are repeatable.
    """
    return 0.5 + zlib.crc32(sensor_id.encode()) / 2**33


# A series' context is a 2 x n array (timestamps in seconds, values), replaced, never changed in
# place: two small arrays cost ~0.4 KiB where a deque of 12 (ts, value) tuples cost ~1.9 KiB.
NO_CONTEXT = np.empty((2, 0))
NO_CONTEXT.flags.writeable = False
NO_POINTS = np.empty(0)
NO_POINTS.flags.writeable = False


@dataclass(frozen=True, slots=True)
class _Rules:
    """What deciding on a series needs from the catalog, kept until the catalog changes."""

    generation: int
    kind_id: str
    kind: SensorKind | None
    thresholds: Thresholds | None
    decision: DecisionRule


@dataclass(slots=True)
class _Series:
    detector: StreamingDetector
    decision: SeriesDecision = field(default_factory=SeriesDecision)
    context: FloatArray = field(default_factory=lambda: NO_CONTEXT)
    rules: _Rules | None = None
    position: Position | None = None
    health: SeriesHealth = field(default_factory=SeriesHealth)
    kind: str = ""
    # Incremental checkpointing: every point learned since the last checkpoint, as
    # (ts_ns, value, per-kind model score or NaN), and the sizes that decide when to snapshot.
    unsaved: list[tuple[int, float, float]] = field(default_factory=list)
    learned: int = 0  # points taken by the series since it began, checkpoints included
    snapshot_bytes: int = 0  # 0: no snapshot yet, the next checkpoint writes one
    logged_bytes: int = 0  # points written as deltas since that snapshot


@dataclass(slots=True)
class _NewPoints:
    """The points of one series a batch brings that it has not learned yet, in arrival order."""

    sensor_id: str
    series: _Series
    obs: list[Observation]
    kind: str
    # Epoch seconds and values; ``score`` sets them for the whole batch at once, after its grouping.
    ts: FloatArray = field(default_factory=lambda: NO_POINTS)
    values: FloatArray = field(default_factory=lambda: NO_POINTS)
    multivariate: FloatArray | None = None  # the per-kind model's scores, when the kind has a model
    model_version: str | None = None
    joined: FloatArray | None = None  # the series' context followed by these points, made once

    def with_context(self) -> tuple[FloatArray, FloatArray, int]:
        """The series' remembered points followed by the new ones, and how many are remembered."""
        joined = self.joined_with_context()
        return joined[0], joined[1], joined.shape[1] - len(self.ts)

    def joined_with_context(self) -> FloatArray:
        """One 2 x n array for the per-kind model's features and the next context alike.

        Built by hand, once: with one point per series a batch (the usual case), the two
        ``concatenate`` calls for the model and the ``stack`` and ``concatenate`` that moved the
        context on were a tenth of the engine's time.
        """
        if self.joined is None:
            self.joined = _joined(self.series.context, self.ts, self.values)
        return self.joined


def _joined(context: FloatArray, ts: FloatArray, values: FloatArray) -> FloatArray:
    held = context.shape[1]
    joined = np.empty((2, held + len(ts)))
    joined[:, :held] = context
    joined[0, held:] = ts
    joined[1, held:] = values
    return joined


def _remember(series: _Series, joined: FloatArray) -> None:
    """Move the series' context on to ``joined`` (its context and new points; a copy of the tail, so
    no view keeps a batch alive).

    A context that fits is kept as the joined array itself, not a view of it: a view is a second
    array header per series, and keeps the first alive anyway.
    """
    series.context = joined if joined.shape[1] <= CONTEXT else joined[:, -CONTEXT:].copy()


class ScoringEngine:
    def __init__(
        self,
        catalog: CatalogView,
        *,
        detector: str,
        signal_threshold: float,
        make_detector: Callable[[], StreamingDetector] | None = None,
        multivariate_threshold: float = 0.999,
        repeat_s: float = 900.0,
    ) -> None:
        self.catalog = catalog
        self.detector_name = detector
        self.signal_threshold = signal_threshold
        self.repeat_s = repeat_s
        self._make = make_detector or detector_class(detector)
        warm_up = getattr(self._make, "warm_up", None)
        if callable(warm_up):
            warm_up()  # a compiled detector compiles here, at start-up, not in the first batch
        self._series: dict[str, _Series] = {}
        self._dirty: set[str] = set()
        self._health_events: list[HealthEvent] = []
        # Kinds come from the catalog file alone: a registered sensor is of a kind the file defines.
        self._health_rules = {name: HealthRule.for_kind(k) for name, k in catalog.current().kinds.items()}
        self.multivariate_threshold = multivariate_threshold
        self._kind_models: dict[str, KindModel] = {}
        self._catalog: Catalog | None = None  # the catalog the series' cached rules come from
        self._generation = 0

    def set_kind_models(self, models: dict[str, KindModel]) -> None:
        """Swap in freshly trained per-kind models; series keep their context.

        Safe from another thread: a batch scores with the models it started with.
        """
        self._kind_models = dict(models)

    def kind_models(self) -> dict[str, KindModel]:
        """The per-kind models in use, by kind."""
        return dict(self._kind_models)

    def known(self, sensor_id: str) -> bool:
        return sensor_id in self._series

    def restore(self, states: dict[str, dict[str, Any]]) -> None:
        """Load checkpoints written by ``checkpoint`` (or ``dirty_states``); other detectors' are ignored.

        A checkpoint whose ``position`` is None keeps what the series learned but
        takes every point it is given as new (the caller voids positions of another log).
        """
        cls = detector_class(self.detector_name)
        catalog = self.catalog.current()
        for sensor_id, saved in states.items():
            state = saved["state"]
            if saved.get("detector") != self.detector_name:
                continue
            position = saved.get("position")
            try:
                if state.get("format") == INCREMENTAL_FORMAT:
                    deltas = state.get("deltas", [])
                    logged = decode_runs(deltas) if deltas else None
                    coming = 0 if logged is None else len(logged.values)
                    series = self._from_snapshot(cls, decode_snapshot(state["snapshot"]), coming=coming)
                    series.snapshot_bytes, series.learned = len(state["snapshot"]), int(state["learned"])
                    if logged is not None:
                        self._replay(sensor_id, series, logged, catalog)
                elif state.get("format") == CHECKPOINT_FORMAT:
                    series = self._from_snapshot(cls, state)  # a whole state: the next checkpoint rewrites it
                else:
                    continue
            except (StateDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
                # One unreadable checkpoint must not hold up the partition (every batch would fail
                # on it again): that series starts afresh, as a new one would, and says so. Parts
                # other than the detector's (decision, health, context) fail as the errors above.
                log.warning(
                    "checkpoint of %s unreadable, the series starts afresh: %s: %s",
                    sensor_id,
                    type(exc).__name__,
                    exc,
                )
                continue
            series.position = None if position is None else (int(position[0]), int(position[1]))
            self._series[sensor_id] = series

    @staticmethod
    def _from_snapshot(cls: type[StreamingDetector], state: dict[str, Any], coming: int = 0) -> _Series:
        """``coming``: the logged points the series will replay next (the detector may make room now)."""
        return _Series(
            detector=cls.from_state(state["detector"], coming=coming),
            decision=SeriesDecision.from_state(state["decision"]),
            context=np.array(state["context"], dtype=np.float64).reshape(-1, 2).T.copy()[:, -CONTEXT:],
            health=SeriesHealth.from_state(state.get("health")),
            kind=state.get("kind", ""),
        )

    def _replay(self, sensor_id: str, series: _Series, delta: Learned, catalog: Catalog) -> None:
        """Advance a restored series over points it learned after its snapshot, exactly as it did then.

        All its logged points in one call: the detector and the decision step take points one by
        one whatever the batches, and a call per checkpoint's delta was most of a restore (8 % of
        a worker's samples in bench.pipeline's one-worker phase, which restores 10,000 series).
        The per-kind model's scores are replayed as they were given (a model trained
        since would score them differently); health changes and signals were told then.
        """
        rule = self._health_rules.get(series.kind) or NO_HEALTH_RULE
        series.health.observe_replayed(rule, delta.ts_ns, delta.values)
        keep = rule.in_range_of(delta.values)
        ts, values, mv = delta.ts_ns[keep] / 1e9, delta.values[keep], delta.multivariate[keep]
        _remember(series, _joined(series.context, ts, values))
        if len(values):
            self._advance(sensor_id, series, ts, values, None if np.isnan(mv).all() else mv, catalog)
        series.learned += len(delta.values)
        series.logged_bytes += delta.nbytes

    def forget_all(self) -> None:
        self._series.clear()
        self._dirty.clear()
        self._health_events.clear()

    def take_health_events(self) -> list[HealthEvent]:
        """Sensor faults begun or ended in the batches scored since the last call, in arrival order."""
        events, self._health_events = self._health_events, []
        return events

    def dirty_states(self) -> dict[str, dict[str, Any]]:
        """The whole state of every series changed since the last checkpoint, as JSON-ready dicts.

        It counts as a checkpoint of them (the next ``checkpoint`` starts from here), so
        call it only when the states are saved right after.
        """
        out = {}
        for sid in self._dirty:
            series = self._series[sid]
            out[sid] = {
                "detector": self.detector_name,
                "state": {"format": CHECKPOINT_FORMAT, **self._whole_state(series)},
                "position": series.position,
            }
            series.unsaved.clear()
            series.snapshot_bytes = 0  # not one of ``checkpoint``'s snapshots: its next one is whole
        self._dirty.clear()
        return out

    def checkpoint(self) -> list[SeriesCheckpoint]:
        """What each series changed since the last checkpoint must save, cheapest first.

        A series saves the points it learned since then, unless the points it has
        logged since its snapshot would then outweigh a new snapshot, or pass
        ``MAX_LOGGED_POINTS``: then it saves a snapshot and its logged points can go.
        So a young series' point is written about twice at most, and a restore never
        replays more than ``MAX_LOGGED_POINTS`` a series.
        Each series snapshots at its own share of that budget (``snapshot_share``), so series
        that began together do not all snapshot at one checkpoint.
        Call it only when the records are saved right after.
        """
        out = []
        for sid in self._dirty:
            series = self._series[sid]
            delta = encode_points(series.unsaved)
            series.learned += len(series.unsaved)
            series.unsaved.clear()
            head = (sid, self.detector_name, series.position, series.learned, series.health.get_state())
            budget = min(series.snapshot_bytes, MAX_LOGGED_POINTS * POINT_BYTES) * snapshot_share(sid)
            if series.snapshot_bytes and series.logged_bytes + len(delta) < budget:
                series.logged_bytes += len(delta)
                out.append(SeriesCheckpoint(*head, delta=delta))
            else:
                snapshot = encode_snapshot(self._whole_state(series, packed=True))
                series.snapshot_bytes, series.logged_bytes = len(snapshot), 0
                out.append(SeriesCheckpoint(*head, snapshot=snapshot))
        self._dirty.clear()
        return out

    def handover_order(self) -> list[str]:
        """The series worth a snapshot before another process restores them, the longest logs first.

        A restore replays every point logged since the series' snapshot; at a stop or a revoke
        (``DetectionSink.hand_over``) a snapshot now spares the next owner that replay. Only a
        state no later than what is saved may be handed over, so with points not yet checkpointed
        there is none: a snapshot ahead of its series' saved position would have those points
        learned twice.
        """
        if self._dirty:
            return []
        logged = [
            (s.logged_bytes, sid) for sid, s in self._series.items() if s.logged_bytes >= HANDOVER_MIN_BYTES
        ]
        return [sid for _, sid in sorted(logged, reverse=True)]

    def handover_snapshots(self, sensor_ids: Sequence[str]) -> list[SeriesCheckpoint]:
        """Snapshots of these series (from ``handover_order``) as they stand at their last checkpoint."""
        out = []
        for sid in sensor_ids:
            series = self._series[sid]
            snapshot = encode_snapshot(self._whole_state(series, packed=True))
            series.snapshot_bytes, series.logged_bytes = len(snapshot), 0
            health = series.health.get_state()
            out.append(
                SeriesCheckpoint(
                    sid, self.detector_name, series.position, series.learned, health, snapshot=snapshot
                )
            )
        return out

    @staticmethod
    def _whole_state(series: _Series, *, packed: bool = False) -> dict[str, Any]:
        """The series' whole state; ``packed``: the detector's state as its arrays where it offers that
        (``get_packed_state``, for a snapshot encoded at once), else its JSON-ready ``get_state``."""
        detector = series.detector
        get_packed = getattr(detector, "get_packed_state", None) if packed else None
        return {
            "detector": detector.get_state() if get_packed is None else get_packed(),
            "decision": series.decision.get_state(),
            "context": series.context.T.tolist(),
            "health": series.health.get_state(),
            "kind": series.kind,
        }

    def score(
        self,
        observations: Sequence[Observation],
        positions: Sequence[Position] | None = None,
    ) -> list[Signal]:
        """Score a batch; every point the decision step flags is a signal, in arrival order per series.

        Without ``positions`` the observations are taken in the order given.
        Health changes are kept for ``take_health_events``.
        """
        groups: dict[str, list[int]] = defaultdict(list)
        for i, obs in enumerate(observations):
            groups[obs.sensor_id].append(i)
        # Timestamps and values of the whole batch at once; each series takes its rows by index.
        n = len(observations)
        ts_all = np.fromiter((o.ts_ns for o in observations), np.float64, n) / 1e9
        values_all = np.fromiter((o.value for o in observations), np.float64, n)
        batch: list[_NewPoints] = []
        taken: list[tuple[_Series, list[Observation], _NewPoints | None]] = []
        # The rows every series scores, series after series: one gather for the whole batch, each
        # series then takes a slice. Gathering each series' rows by a list of indices cost two index
        # conversions a series (~1.2 µs), and a live batch has about one point a series.
        order: list[int] = []
        bounds: list[int] = [0]
        for sensor_id, idx in groups.items():
            series = self._series.get(sensor_id)
            if series is None:
                series = self._series[sensor_id] = _Series(detector=self._make())
            if positions is not None:
                idx = self._unlearned(series.position, idx, positions)
                if not idx:
                    continue
                if len(idx) > 1:
                    idx.sort(key=positions.__getitem__)
                series.position = positions[idx[-1]]  # the highest offset, not the latest timestamp
            points = [observations[i] for i in idx]
            series.kind = points[0].kind
            in_range = self._judge_health(sensor_id, series, points)
            new = None
            if all(in_range):
                new = _NewPoints(sensor_id, series, points, series.kind)
                order += idx
            elif any(in_range):
                rows = [i for i, ok in zip(idx, in_range, strict=True) if ok]
                new = _NewPoints(sensor_id, series, [observations[i] for i in rows], series.kind)
                order += rows
            if new is not None:
                batch.append(new)
                bounds.append(len(order))
            taken.append((series, points, new))
            self._dirty.add(sensor_id)
        if batch:
            picked = np.array(order, dtype=np.intp)
            ts_rows, value_rows = ts_all[picked], values_all[picked]
            for new, (start, end) in zip(batch, pairwise(bounds), strict=True):
                new.ts, new.values = ts_rows[start:end], value_rows[start:end]
        self._score_kind_models(self._kind_models, batch)
        for series, points, new in taken:
            series.unsaved += _unsaved(points, new)
        catalog = self.catalog.current()  # one catalog for the whole batch (sensors may be registered)
        signals: list[Signal] = []
        for new in batch:
            signals += self._score_series(new, catalog)
        return signals

    def _judge_health(self, sensor_id: str, series: _Series, obs: list[Observation]) -> list[bool]:
        """Advance the series' health over its new points; returns which are worth scoring (in range)."""
        rule = self._health_rules.get(obs[0].kind) or NO_HEALTH_RULE
        health = series.health
        if health.take_distinct(rule, [o.value for o in obs], obs[-1].ts_ns):
            return [True] * len(obs)  # the usual batch: in range, healthy, nothing to tell
        for o in obs:
            before_ns, before_value = health.last_good_ns, health.last_good_value
            change = health.observe(rule, o.ts_ns, o.value)
            if change is None:
                continue
            # A stuck sensor's last good reading is where the stuck value began; otherwise the one before.
            flat = change.fault == "flatline"
            self._health_events.append(
                HealthEvent(
                    sensor_id=sensor_id,
                    kind=o.kind,
                    area=o.area,
                    ts_ns=o.ts_ns,
                    value=float(o.value),
                    fault=change.fault,
                    detail=change.detail,
                    last_good_ns=health.last_good_ns if flat else before_ns,
                    last_good_value=health.last_good_value if flat else before_value,
                )
            )
        return [rule.in_range(o.value) for o in obs]

    @staticmethod
    def _unlearned(last: Position | None, idx: list[int], positions: Sequence[Position]) -> list[int]:
        if last is None:
            return idx
        return [i for i in idx if positions[i][0] != last[0] or positions[i][1] > last[1]]

    @staticmethod
    def _score_kind_models(models: dict[str, KindModel], batch: list[_NewPoints]) -> None:
        """Set the per-kind model scores of the new points, with one model call per kind.

        Each series' features are built with its preceding points (its context),
        which then move on to include the new points.
        """
        by_kind: dict[str, list[_NewPoints]] = defaultdict(list)
        for new in batch:
            if new.kind in models:
                by_kind[new.kind].append(new)
        for kind, members in by_kind.items():
            model = models[kind]
            scores = model.score_streams([new.with_context() for new in members])
            for new, series_scores in zip(members, scores, strict=True):
                new.multivariate, new.model_version = series_scores, model.version
        for new in batch:
            _remember(new.series, new.joined_with_context())

    def _advance(
        self,
        sensor_id: str,
        series: _Series,
        ts: FloatArray,
        values: FloatArray,
        multivariate: FloatArray | None,
        catalog: Catalog,
    ) -> tuple[BatchScores, list[tuple[int, Decision]]]:
        """Score in-range points and decide on them: the one path of both scoring and replay.

        Returns the detector's result and the signals among the points, by index.
        """
        result = series.detector.score_batch(ts, values)
        scores = result.scores
        if multivariate is not None:
            scores = _heard(scores, multivariate, self.multivariate_threshold)
        rule = self._rules(sensor_id, series, catalog).decision
        if pass_quiet(series.decision, rule, ts, values, scores):
            return result, []
        # The minimum deviation is measured from what was expected at that moment (a detector
        # that knows the time of day says so as ``expected``), else from its baseline.
        evidence = result.evidence
        baselines = evidence.get("expected", evidence.get("baseline"))
        if baselines is None:
            baselines = np.full(len(ts), np.nan)
        return result, signals_among(series.decision, rule, ts, values, scores, baselines)

    def _rules(self, sensor_id: str, series: _Series, catalog: Catalog) -> _Rules:
        """The series' kind, warning lines and decision rule: looked up once per catalog, not per batch."""
        if catalog is not self._catalog:
            self._catalog, self._generation = catalog, self._generation + 1
        rules = series.rules
        if rules is None or rules.generation != self._generation or rules.kind_id != series.kind:
            kind_info = catalog.kinds.get(series.kind)
            thresholds = catalog.thresholds_for(sensor_id, series.kind)
            decision = DecisionRule.for_series(
                kind_info, thresholds, threshold=self.signal_threshold, repeat_s=self.repeat_s
            )
            rules = series.rules = _Rules(self._generation, series.kind, kind_info, thresholds, decision)
        return rules

    def _score_series(self, new: _NewPoints, catalog: Catalog) -> list[Signal]:
        sensor_id, kind, multivariate = new.sensor_id, new.kind, new.multivariate
        result, decisions = self._advance(sensor_id, new.series, new.ts, new.values, multivariate, catalog)
        rules = self._rules(sensor_id, new.series, catalog)
        kind_info, thresholds = rules.kind, rules.thresholds
        signals = []
        for i, decision in decisions:
            o = new.obs[i]
            evidence: dict[str, float | str] = {
                k: v for k, v in result.evidence_at(i).items() if np.isfinite(v)
            }
            level = LEVELS[decision.level] if decision.level >= 0 else None
            if level is not None and thresholds is not None:
                evidence["warning_line"] = float(getattr(thresholds, level))
            if multivariate is not None and new.model_version is not None:
                evidence["multivariate"] = float(multivariate[i])
                evidence["multivariate_model"] = new.model_version
            signals.append(
                Signal(
                    sensor_id=sensor_id,
                    kind=kind,
                    area=o.area,
                    hazard=kind_info.hazard if kind_info else "other",
                    ts_ns=o.ts_ns,
                    value=float(o.value),
                    score=decision.held_score,
                    detector=self.detector_name,
                    level=level,
                    evidence=evidence,
                )
            )
        return signals


def _heard(scores: FloatArray, multivariate: FloatArray, threshold: float) -> FloatArray:
    """The detector's scores, raised to the per-kind model's where the model is sure.

    The model speaks only when it is sure: it has no per-series memory. A NaN is a point it did
    not score (a replay may join points logged before and after a kind's first model), and is
    silent as the model's absence is. Usually it is sure of no point, and a look at a list says
    so: numpy's comparison, ``maximum`` and ``where`` on a run of one or two points cost more.
    """
    if not any(m >= threshold for m in multivariate.tolist()):
        return scores
    sure = multivariate >= threshold
    return np.where(sure, np.maximum(scores, multivariate), scores)


def _unsaved(obs: list[Observation], scored: _NewPoints | None) -> list[tuple[int, float, float]]:
    """The points a batch taught a series, for its next checkpoint, with the model score each was given.

    Out-of-range points are kept too (health learned from them) with no score;
    ``scored.obs`` are the in-range ones, in the same order.
    """
    if scored is None or scored.multivariate is None:
        return [(o.ts_ns, float(o.value), math.nan) for o in obs]
    scores = scored.multivariate.tolist()
    if len(scored.obs) == len(obs):  # every point in range, the usual case: the same points in order
        return [(o.ts_ns, float(o.value), s) for o, s in zip(obs, scores, strict=True)]
    mv = {id(o): s for o, s in zip(scored.obs, scores, strict=True)}
    return [(o.ts_ns, float(o.value), mv.get(id(o), math.nan)) for o in obs]
