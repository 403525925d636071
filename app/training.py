"""Training the per-kind multivariate models from the store's history, on a schedule.

A fit reads each kind's recent history out of the time-series store, turns
every series into window features, fits, and saves the model with its
version, training range and metrics; the running scoring engine then swaps
it in. A kind without enough history is skipped and says so in the log.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np

from app.services import Services
from models.engine import ScoringEngine
from models.features import window_features
from models.multivariate import MIN_SAMPLES, KindModel, fit_kind_model

log = logging.getLogger(__name__)


def train_kind_models(svc: Services, *, now: datetime) -> dict[str, KindModel]:
    history = timedelta(seconds=svc.settings.training_history_s)
    start, end = now - history, now
    trained: dict[str, KindModel] = {}
    for kind in svc.catalog.kinds:
        points = svc.store.read_kind(kind, int(start.timestamp() * 1e9), int(end.timestamp() * 1e9))
        series: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for p in points:
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
        svc.models.save(
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


def latest_kind_models(svc: Services) -> dict[str, KindModel]:
    return {kind: KindModel.from_bytes(blob) for kind, blob in svc.models.latest_blobs().items()}


class ModelRefresher:
    """Refits every ``refit_interval_s`` and hands the new models to the scoring engine."""

    def __init__(self, svc: Services, engine: ScoringEngine, clock: Callable[[], datetime]) -> None:
        self.svc = svc
        self.engine = engine
        self.clock = clock

    def run(self, stop: threading.Event) -> None:
        interval = self.svc.settings.refit_interval_s
        while not stop.wait(interval):
            try:
                fresh = train_kind_models(self.svc, now=self.clock())
            except Exception:
                log.exception("model refit failed; the previous models stay in use")
                continue
            if fresh:
                self.engine.set_kind_models({**latest_kind_models(self.svc), **fresh})
