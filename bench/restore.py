"""How long a worker takes to restore its series from their checkpoints, and where that time goes.

Run: ``python -m bench.restore [--sensors 2000] [--history 300] [--points 2]``.
Each of ``--sensors`` gas sensors learns ``--history`` quiet readings in batches of
``--points`` each, with a checkpoint after every batch, as a worker at the
service's settings writes them (a snapshot now and then, deltas between). What
the checkpoint store would hand back (the last snapshot and the deltas after it)
is then restored into a fresh engine, as a restarted or newly assigned worker
does, and timed: the restore as a whole, the snapshot decoding and the
detectors' rebuild from their states within it.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from app.collector import settle_for_batches
from bench.scoring import batch, gas_model, service_engine
from config.settings import Settings
from models.engine import ScoringEngine
from models.registry import detector_class
from models.series_checkpoint import INCREMENTAL_FORMAT, decode_snapshot


def engine_at_service_settings() -> ScoringEngine:
    engine = service_engine()
    engine.set_kind_models({"gas": gas_model()})
    return engine


def checkpointed_states(sensors: int, history: int, points: int) -> dict[str, dict[str, Any]]:
    """What ``CheckpointRepository.load`` returns after a worker learned ``history`` points a series."""
    engine = engine_at_service_settings()
    rng = np.random.default_rng(1)
    saved: dict[str, dict[str, Any]] = {}
    offset = 0
    for first in range(0, history, points):
        readings = batch(sensors, min(points, history - first), first, rng)
        engine.score(readings, [(0, offset + i) for i in range(len(readings))])
        offset += len(readings)
        for record in engine.checkpoint():
            state = saved.setdefault(record.sensor_id, {"detector": record.detector, "deltas": []})
            state["position"] = record.position
            if record.snapshot is not None:
                state.update(snapshot=record.snapshot, learned=record.learned, deltas=[])
            elif record.delta is not None:
                state["deltas"].append(record.delta)
    return {
        sid: {
            "detector": s["detector"],
            "position": s["position"],
            "state": {
                "format": INCREMENTAL_FORMAT,
                "snapshot": s["snapshot"],
                "learned": s["learned"],
                "deltas": s["deltas"],
            },
        }
        for sid, s in saved.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sensors", type=int, default=2000)
    parser.add_argument("--history", type=int, default=300, help="readings each series learned")
    parser.add_argument("--points", type=int, default=2, help="readings of each series a batch")
    parser.add_argument("--repeat", type=int, default=3, help="restores timed; the median is printed")
    args = parser.parse_args()
    settle_for_batches()

    states = checkpointed_states(args.sensors, args.history, args.points)
    deltas = [len(s["state"]["deltas"]) for s in states.values()]
    snapshot_bytes = [len(s["state"]["snapshot"]) for s in states.values()]
    whole, decoding, rebuilding = [], [], []
    cls = detector_class(Settings().detector)
    for _ in range(args.repeat):
        engine = engine_at_service_settings()
        started = time.perf_counter()
        engine.restore(states)
        whole.append(time.perf_counter() - started)
        assert all(engine.known(sid) for sid in states)
        started = time.perf_counter()
        decoded = [decode_snapshot(s["state"]["snapshot"]) for s in states.values()]
        decoding.append(time.perf_counter() - started)
        started = time.perf_counter()
        for state in decoded:
            cls.from_state(state["detector"])
        rebuilding.append(time.perf_counter() - started)

    def us_per_series(seconds: list[float]) -> float:
        return round(1e6 * float(np.median(seconds)) / len(states), 1)

    print(
        json.dumps(
            {
                "sensors": len(states),
                "history": args.history,
                "points_per_batch": args.points,
                "snapshot_bytes_median": int(np.median(snapshot_bytes)),
                "deltas_median": int(np.median(deltas)),
                "deltas_max": max(deltas),
                "restore_us_per_series": us_per_series(whole),
                "of_which_decode_us": us_per_series(decoding),
                "of_which_detector_rebuild_us": us_per_series(rebuilding),
            }
        )
    )


if __name__ == "__main__":
    main()
