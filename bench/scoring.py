"""Scoring-engine throughput with a per-kind model loaded: how long one ingest batch takes to score.

Run: ``python -m bench.scoring [--sensors 1000] [--points 60] [--batches 5] [--history 0]
[--collector service]``. Every batch holds ``--points`` quiet readings of each of ``--sensors`` gas
sensors, as a consumer would receive them (interleaved, one partition), and is followed by the
checkpoint a worker writes. With ``--history N`` each series first learns N readings (one batch, one
checkpoint), so the timed batches meet series as old as a running city's, whose state and snapshots
are larger than a young series'. The first batch after that only warms the series up (their
context fills); the others are timed, and so is
the cyclic garbage collector within them: ``--collector service`` sets it as an
ingest worker does (``app.collector``), ``default`` leaves CPython's settings.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from datetime import UTC, datetime

import numpy as np

from app.collector import settle_for_batches
from config.catalog import load_catalog
from config.settings import Settings
from models.engine import ScoringEngine
from models.features import window_features
from models.multivariate import KindModel, fit_kind_model
from store.schemas import Point

T0 = 1_790_000_000 * 10**9
STEP = 300 * 10**9


def gas_model() -> KindModel:
    rng = np.random.default_rng(7)
    history = [
        window_features(300.0 * np.arange(2000, dtype=np.float64), 1.5 + 0.2 * rng.standard_normal(2000))
        for _ in range(4)
    ]
    return fit_kind_model(
        "gas",
        np.vstack(history),
        trained_from=datetime(2026, 1, 1, tzinfo=UTC),
        trained_to=datetime(2026, 2, 1, tzinfo=UTC),
    )


def batch(n_sensors: int, n_points: int, first_step: int, rng: np.random.Generator) -> list[Point]:
    values = 1.5 + 0.2 * rng.standard_normal((n_points, n_sensors))
    return [
        Point(f"gas-bench-{s:04d}", "gas", "g-oldtown-05", T0 + (first_step + i) * STEP, float(values[i, s]))
        for i in range(n_points)
        for s in range(n_sensors)
    ]


def service_engine() -> ScoringEngine:
    """An engine with the shipped catalog, detector and threshold, as ``citywarn ingest`` builds it."""
    settings = Settings()
    return ScoringEngine(
        load_catalog(settings.catalog_path),
        detector=settings.detector,
        signal_threshold=settings.signal_threshold,
    )


class CollectionTimer:
    """Wall time the cyclic collector spends, by generation, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self._started = 0.0
        self.counting = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.counting:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.runs[generation] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--points", type=int, default=60)
    parser.add_argument("--batches", type=int, default=5, help="timed batches, after one warm-up batch")
    parser.add_argument("--history", type=int, default=0, help="readings a series learns first")
    parser.add_argument("--without-model", action="store_true", help="detector and decision step only")
    parser.add_argument(
        "--collector",
        choices=["service", "default"],
        default="service",
        help="the garbage collector as an ingest worker sets it, or CPython's defaults",
    )
    args = parser.parse_args()

    engine = service_engine()
    if not args.without_model:
        engine.set_kind_models({"gas": gas_model()})
    if args.collector == "service":
        settle_for_batches()
    collections = CollectionTimer()
    gc.callbacks.append(collections)
    rng = np.random.default_rng(1)
    offset = 0
    if args.history:
        learned = batch(args.sensors, args.history, -args.history, rng)
        engine.score(learned, [(0, i) for i in range(len(learned))])
        engine.checkpoint()
        offset = len(learned)
        del learned
    timings = []
    for b in range(args.batches + 1):
        points = batch(args.sensors, args.points, b * args.points, rng)
        positions = [(0, offset + i) for i in range(len(points))]
        offset += len(points)
        collections.counting = b > 0
        started = time.perf_counter()
        engine.score(points, positions)
        engine.checkpoint()  # what a worker writes after the batch (incremental: mostly deltas)
        if b:
            timings.append(time.perf_counter() - started)
        collections.counting = False
        del points, positions  # freed before the next batch is made, as a worker's are
    per_batch = float(np.median(timings))
    print(
        json.dumps(
            {
                "sensors": args.sensors,
                "points_per_sensor": args.points,
                "history": args.history,
                "timed_batches": args.batches,
                "kind_model": not args.without_model,
                "ms_per_batch": round(per_batch * 1000, 1),
                "points_per_s": round(args.sensors * args.points / per_batch),
                "collector": args.collector,
                "collection_ms_per_batch": round(1000 * sum(collections.seconds) / args.batches, 1),
                "collections_by_generation": collections.runs,
            }
        )
    )


if __name__ == "__main__":
    main()
