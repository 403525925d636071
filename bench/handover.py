"""What a handover costs the worker that stops, and what it spares the one that restores.

Run: ``python -m bench.handover [--sensors 5000] [--history 350] [--points 5]``.
Each of ``--sensors`` gas series learns ``--history`` quiet readings in batches of
``--points``, with a checkpoint of every batch saved to a fresh, migrated
PostgreSQL database, as a worker at the service's settings saves them (a
snapshot now and then, the points logged between). Then, timed:

1. a fresh engine restores every series from the database, replaying what each
   logged since its snapshot, as a worker restarted after a crash does;
2. the first engine hands over (``DetectionSink.hand_over``, with no time budget),
   as a worker stopped by SIGTERM does: a snapshot of every series whose log is
   at least ``models.engine.HANDOVER_MIN_POINTS`` long. The handover's wall
   time, its own CPU, and the PostgreSQL server's CPU are printed;
3. a fresh engine restores every series again, as the stopped worker's successor.

Before that, in memory: what a restore costs a series by the length of the log
it replays (``--curve-series`` series, 600 points old, logs cut to each length).
The curve (a fixed cost for any log, and a cost a point) and what a snapshot
costs a handover are the figures that set ``HANDOVER_MIN_POINTS``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

import numpy as np

from alerts import db, sinks
from alerts.checkpoints import CheckpointRepository
from alerts.service import WarningService
from app.collector import settle_for_batches
from bench.checkpoint_writes import timed
from bench.restore import checkpointed_states, engine_at_service_settings
from bench.scoring import batch
from bench.servers import fresh_postgres_database
from config.catalog import load_catalog
from config.playbooks import load_playbooks
from config.settings import Settings
from models.engine import HANDOVER_MIN_POINTS, ScoringEngine
from models.series_checkpoint import POINT_BYTES


def restore_all(repo: CheckpointRepository, ids: list[str]) -> tuple[ScoringEngine, float]:
    """A fresh engine restored from the database as a worker's first batch restores it; its wall time."""
    engine = engine_at_service_settings()
    began = time.perf_counter()
    engine.restore(repo.load(ids))
    return engine, time.perf_counter() - began


def replay_curve(series: int, lengths: tuple[int, ...] = (0, 1, 16, 64, 128)) -> dict[int, float]:
    """µs a series takes to restore (median of three) with its log cut to each length."""
    states = checkpointed_states(series, 600, 1)  # a delta a point, so a log can be cut anywhere
    long = {sid: s for sid, s in states.items() if len(s["state"]["deltas"]) >= max(lengths)}
    out = {}
    for k in lengths:
        cut = {
            sid: {**s, "state": {**s["state"], "deltas": s["state"]["deltas"][:k]}} for sid, s in long.items()
        }
        runs = []
        for _ in range(3):
            engine = engine_at_service_settings()
            began = time.perf_counter()
            engine.restore(cut)
            runs.append(time.perf_counter() - began)
        out[k] = round(1e6 * statistics.median(runs) / len(cut), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=5000)
    parser.add_argument("--history", type=int, default=350, help="readings each series learned")
    parser.add_argument("--points", type=int, default=5, help="readings of each series a batch")
    parser.add_argument("--curve-series", type=int, default=1000)
    args = parser.parse_args()
    settle_for_batches()
    settings = Settings()
    curve = replay_curve(args.curve_series)
    lengths = sorted(curve)
    per_point = (curve[lengths[-1]] - curve[1]) / (lengths[-1] - 1)

    with fresh_postgres_database() as url:
        state_db = db.connect(url)
        repo = CheckpointRepository(state_db)
        engine = engine_at_service_settings()
        rng = np.random.default_rng(1)
        offset = 0
        for first in range(0, args.history, args.points):
            readings = batch(args.sensors, min(args.points, args.history - first), first, rng)
            engine.score(readings, [(0, offset + i) for i in range(len(readings))])
            offset += len(readings)
            repo.save_series(engine.checkpoint(), log=None, now=datetime.now(UTC))
        ids = sorted({p.sensor_id for p in batch(args.sensors, 1, 0, rng)})
        logged = [engine._series[sid].logged_bytes // POINT_BYTES for sid in ids]

        _, before_s = restore_all(repo, ids)
        sink = sinks.DetectionSink(
            engine=engine,
            warnings=WarningService(
                state_db,
                catalog=load_catalog(settings.catalog_path),
                playbooks=load_playbooks(settings.playbooks_path),
            ),
            checkpoints=repo,
        )
        handed = len(engine.handover_order())
        sinks.HANDOVER_BUDGET_S = float("inf")  # the whole handover, to price a snapshot
        cost = timed(sink.hand_over)
        restored, after_s = restore_all(repo, ids)
        assert all(restored.known(sid) for sid in ids)
        state_db.dispose()

    n = len(ids)
    print(
        json.dumps(
            {
                "series": n,
                "logged_points_median": statistics.median(logged),
                "handover_min_points": HANDOVER_MIN_POINTS,
                "handed_over": handed,
                "restore_with_logs_us_per_series": round(1e6 * before_s / n, 1),
                "restore_after_handover_us_per_series": round(1e6 * after_s / n, 1),
                "restore_us_by_log_length": curve,
                "replay_us_fixed": round(curve[1] - curve[0], 1),
                "replay_us_per_point": round(per_point, 2),
                "handover_wall_s": round(cost["wall_s"], 3),
                "handover_us_per_snapshot": {k: round(1e6 * v / max(handed, 1), 1) for k, v in cost.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
