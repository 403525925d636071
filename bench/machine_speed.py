"""How fast this machine is right now, on fixed work shaped like a worker's: the reference figure.

Run: ``python -m bench.machine_speed [--sensors 1000] [--points 20] [--rounds 3]``. It prints one
JSON object. The work never changes between commits or runs:
- parse ``--points`` readings of each of ``--sensors`` gas sensors from JSON bytes (pydantic);
- score them in batches through the shipped detector and a per-kind model, each batch followed
  by its checkpoint (numba, numpy, plain Python);
- on series that first learn a fixed history.
It reports the median over ``--rounds`` rounds, in µs of CPU a reading, on one core.

Why: the same code's CPU per reading in ``bench.pipeline`` moved by a quarter from one day to
the next on this machine (20 against 26 µs). ``bench.pipeline`` runs this beside its timed phases
and prints their figures over it: when this figure moves with theirs, the machine moved. It does
not always: on 2026-12-04 the workers' figure rose by half while this one held (bench/HISTORY.md, "a fifth
session"), so a steady reference does not prove the code slower.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from app.collector import settle_for_batches
from bench.city_load import rfc3339_ms
from bench.scoring import batch, gas_model, service_engine
from ingest.schemas import Reading
from store.schemas import Point

HISTORY = 100  # readings each series learns before the timed rounds: past the detector's warm-up


def as_json(points: list[Point]) -> list[bytes]:
    return [
        json.dumps(
            {
                "sensor_id": p.sensor_id,
                "kind": p.kind,
                "value": p.value,
                "unit": "ppm",
                "ts": rfc3339_ms(p.ts_ns // 10**6),
                "area": p.area,
            }
        ).encode()
        for p in points
    ]


def reference(sensors: int, points: int, rounds: int) -> dict[str, float | int]:
    """CPU µs a reading for the fixed work (the median of ``rounds``), and the readings a round took."""
    engine = service_engine()
    engine.set_kind_models({"gas": gas_model()})
    settle_for_batches()
    rng = np.random.default_rng(3)
    learned = batch(sensors, HISTORY, -HISTORY, rng)
    engine.score(learned, [(0, i) for i in range(len(learned))])
    engine.checkpoint()
    offset = len(learned)
    per_reading: list[float] = []
    taken = 0
    for r in range(rounds):
        points_in = batch(sensors, points, r * points, rng)
        raw = as_json(points_in)
        started = time.process_time()
        readings = [Reading.__pydantic_validator__.validate_json(m) for m in raw]
        engine.score(points_in, [(0, offset + i) for i in range(len(points_in))])
        engine.checkpoint()
        per_reading.append((time.process_time() - started) / len(readings) * 1e6)
        offset += len(points_in)
        taken = len(readings)
    return {"us_per_reading": statistics.median(per_reading), "readings_per_round": taken}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--points", type=int, default=20, help="readings of each sensor a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if min(args.sensors, args.points, args.rounds) < 1:
        parser.error("--sensors, --points and --rounds must be at least 1")
    print(json.dumps(reference(args.sensors, args.points, args.rounds)))


if __name__ == "__main__":
    main()
