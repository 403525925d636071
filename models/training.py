"""Training the per-kind multivariate models from history, refitting on a schedule, and loading new fits.

A fit reads each kind's recent history, turns every series into window
features, fits, and archives the model with its version, training range and
metrics; the running scoring engine then swaps it in. A kind without enough
history is skipped and says so in the log. A fit saved elsewhere (``citywarn
train``) is seen by polling the archive's newest version per kind, which reads
no model bytes, so it can run every minute.

The history and the archive come in as ports, so this module does no I/O of
its own: ``app`` wires the time-series store and the model repository in, and
tests or benchmarks can pass anything with the same methods.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from config.timeutil import to_ns
from models.features import window_features
from models.multivariate import MIN_SAMPLES, KindModel, fit_kind_model

log = logging.getLogger(__name__)

ARCHIVE_POLL_S = 60.0  # how late a fit saved by another process may start scoring


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

    def latest_versions(self) -> dict[str, str]: ...

    def latest_blobs(self, kinds: Collection[str] | None = None) -> dict[str, bytes]: ...


class TakesKindModels(Protocol):
    def set_kind_models(self, models: dict[str, KindModel]) -> None: ...

    def kind_models(self) -> dict[str, KindModel]: ...


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


def latest_kind_models(archive: ModelArchive, kinds: Collection[str] | None = None) -> dict[str, KindModel]:
    """The newest archived model of each kind, or of ``kinds`` only.

    A kind whose model cannot be loaded (an old format, damaged bytes) is left
    out with an error in the log: its sensors are still scored by their own
    detectors, and the other kinds keep their models.
    """
    out = {}
    for kind, blob in archive.latest_blobs(kinds).items():
        try:
            out[kind] = KindModel.from_bytes(blob)
        except ValueError as exc:
            log.error("the %s model was not loaded: %s", kind, exc)
    return out


class ModelRefresher:
    """Refits every ``interval_s``, and every ``poll_s`` swaps in fits another process archived."""

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
        poll_s: float = ARCHIVE_POLL_S,
    ) -> None:
        self.kinds = list(kinds)
        self.history = history
        self.archive = archive
        self.window = window
        self.interval_s = interval_s
        self.poll_s = poll_s
        self.engine = engine
        self.clock = clock

    def run(self, stop: threading.Event) -> None:
        refit_at = time.monotonic() + self.interval_s
        while not stop.wait(self.poll_s):
            if time.monotonic() >= refit_at:
                refit_at = time.monotonic() + self.interval_s
                self.refit()
            try:
                self.poll()
            except Exception:
                log.exception("reading the model archive failed; the models in use stay")

    def refit(self) -> None:
        try:
            fresh = train_kind_models(
                self.kinds, history=self.history, archive=self.archive, window=self.window, now=self.clock()
            )
        except Exception:
            log.exception("model refit failed; the previous models stay in use")
            return
        if fresh:
            self.engine.set_kind_models({**self.engine.kind_models(), **fresh})

    def poll(self) -> list[str]:
        """Load the kinds whose newest archived version is not the one scoring; return them, sorted."""
        in_use = self.engine.kind_models()
        changed = [
            kind
            for kind, version in self.archive.latest_versions().items()
            if kind not in in_use or in_use[kind].version != version
        ]
        if not changed:
            return []
        loaded = latest_kind_models(self.archive, changed)
        self.engine.set_kind_models({**in_use, **loaded})
        log.info("now scoring with %s", ", ".join(m.version for m in loaded.values()))
        return sorted(loaded)
