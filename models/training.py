"""Training the per-kind multivariate models from history, and refitting them on a schedule.

A fit reads each kind's recent history, turns every series into window
features, fits, and archives the model with its version, training range and
metrics; the running scoring engine then swaps it in. A kind without enough
history is skipped and says so in the log.

The history and the archive come in as ports, so this module does no I/O of
its own: ``app`` wires the time-series store and the model repository in, and
tests or benchmarks can pass anything with the same methods.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from config.timeutil import to_ns
from models.features import window_features
from models.multivariate import MIN_SAMPLES, KindModel, fit_kind_model

log = logging.getLogger(__name__)


class StoredPoint(Protocol):
    @property
    def sensor_id(self) -> str: ...
    @property
    def ts_ns(self) -> int: ...
    @property
    def value(self) -> float: ...


class History(Protocol):
    """Where training reads from: the time-series store."""

    def read_kind(self, kind: str, start_ns: int, end_ns: int) -> Sequence[StoredPoint]: ...


class ModelArchive(Protocol):
    """Where trained models are kept, with their version and training range."""

    def save(
        self,
        *,
        version: str,
        kind: str,
        trained_from: datetime,
        trained_to: datetime,
        description: dict[str, Any],
        blob: bytes,
        now: datetime,
    ) -> None: ...

    def latest_blobs(self) -> dict[str, bytes]: ...


class TakesKindModels(Protocol):
    def set_kind_models(self, models: dict[str, KindModel]) -> None: ...


def train_kind_models(
    kinds: Iterable[str], *, history: History, archive: ModelArchive, window: timedelta, now: datetime
) -> dict[str, KindModel]:
    """Fit and archive one model per kind that has enough history in ``[now - window, now)``."""
    start, end = now - window, now
    trained: dict[str, KindModel] = {}
    for kind in kinds:
        series: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for p in history.read_kind(kind, to_ns(start), to_ns(end)):
            series[p.sensor_id].append((p.ts_ns, p.value))
        blocks = []
        for rows in series.values():
            rows.sort()
            ts = np.array([r[0] for r in rows], dtype=np.float64) / 1e9
            blocks.append(window_features(ts, np.array([r[1] for r in rows], dtype=np.float64)))
        n_rows = sum(len(b) for b in blocks)
        if n_rows < MIN_SAMPLES:
            log.info("model for %s not trained: %d rows of history, need %d", kind, n_rows, MIN_SAMPLES)
            continue
        model = fit_kind_model(kind, np.vstack(blocks), trained_from=start, trained_to=end)
        archive.save(
            version=model.version,
            kind=kind,
            trained_from=start,
            trained_to=end,
            description=model.describe(),
            blob=model.to_bytes(),
            now=now,
        )
        log.info("trained %s on %d rows from %d series", model.version, n_rows, len(blocks))
        trained[kind] = model
    return trained


def latest_kind_models(archive: ModelArchive) -> dict[str, KindModel]:
    return {kind: KindModel.from_bytes(blob) for kind, blob in archive.latest_blobs().items()}


class ModelRefresher:
    """Refits every ``interval_s`` and hands the new models to the scoring engine."""

    def __init__(
        self,
        *,
        kinds: Iterable[str],
        history: History,
        archive: ModelArchive,
        window: timedelta,
        interval_s: float,
        engine: TakesKindModels,
        clock: Callable[[], datetime],
    ) -> None:
        self.kinds = list(kinds)
        self.history = history
        self.archive = archive
        self.window = window
        self.interval_s = interval_s
        self.engine = engine
        self.clock = clock

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            try:
                fresh = train_kind_models(
                    self.kinds,
                    history=self.history,
                    archive=self.archive,
                    window=self.window,
                    now=self.clock(),
                )
            except Exception:
                log.exception("model refit failed; the previous models stay in use")
                continue
            if fresh:
                self.engine.set_kind_models({**latest_kind_models(self.archive), **fresh})
