"""What saving a worker's checkpoint, and loading it back, costs the PostgreSQL server in CPU.

Run: ``python -m bench.checkpoint_writes [--series 5000] [--repeat 5] [--compressed]``.
Real snapshots come from the scoring engine as a worker at the service's
settings writes them (``bench.restore``: ``--distinct`` gas series, each
``--history`` readings old), dealt out in turn to ``--series`` series ids.
Each round saves one checkpoint of every series through
``CheckpointRepository.save_series`` on a fresh, migrated database: first all
of them as snapshots, then all as deltas of ``--points`` points, then loads
every series back as a restoring worker does (``CheckpointRepository.load``:
the snapshot and the delta after it). The figure is
the CPU (user + system, from /proc) of every ``postgres`` process on this
machine over the save, so nothing else should use the server meanwhile; the
median of ``--repeat`` rounds is printed, with the client's own CPU and the
wall time beside it.

``--compressed`` puts the snapshot column back to PostgreSQL's default storage
(compressed past about 2 KiB), as it was before migration 0010, for comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import sqlalchemy as sa

from alerts import db
from alerts.checkpoints import CheckpointRepository
from bench.cpu_shares import process_cpu_s, processes_named
from bench.restore import checkpointed_states
from bench.servers import fresh_postgres_database
from models.series_checkpoint import SeriesCheckpoint, encode_points

HEALTH = {"fault": None, "bad_run": 0, "run_value": 1.0, "run_start_ns": 0, "run_readings": 1}


def postgres_cpu_s() -> float:
    """CPU seconds every process named ``postgres`` has used (the server's backends and helpers)."""
    return sum(process_cpu_s(pid) for pid in processes_named("postgres"))


def timed(step: Callable[[], object]) -> dict[str, float]:
    server, client, wall = postgres_cpu_s(), time.process_time(), time.perf_counter()
    step()
    return {
        "server_cpu_s": postgres_cpu_s() - server,
        "client_cpu_s": time.process_time() - client,
        "wall_s": time.perf_counter() - wall,
    }


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--distinct", type=int, default=200, help="snapshots made by the engine")
    parser.add_argument("--history", type=int, default=350, help="readings each snapshot's series learned")
    parser.add_argument("--points", type=int, default=4, help="points in each delta")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--compressed", action="store_true", help="the snapshot column at its default storage"
    )
    args = parser.parse_args()

    made = [s["state"]["snapshot"] for s in checkpointed_states(args.distinct, args.history, 5).values()]
    delta = encode_points(
        [(1_700_000_000_000_000_000 + i, 1.0 + i, float("nan")) for i in range(args.points)]
    )
    snapshots, deltas, loads = [], [], []
    with fresh_postgres_database() as url:
        engine = db.connect(url)
        if args.compressed:
            with engine.begin() as conn:
                conn.execute(
                    sa.text("ALTER TABLE detector_snapshots ALTER COLUMN snapshot SET STORAGE EXTENDED")
                )
        repo = CheckpointRepository(engine)
        learned = 0
        for _ in range(args.repeat):
            learned += 1
            records = [
                SeriesCheckpoint(
                    f"s{i}", "recordensemble", (0, i), learned, HEALTH, snapshot=made[i % len(made)]
                )
                for i in range(args.series)
            ]
            snapshots.append(timed(partial(repo.save_series, records, log="bench", now=datetime.now(UTC))))
            learned += 1
            records = [
                SeriesCheckpoint(f"s{i}", "recordensemble", (0, i), learned, HEALTH, delta=delta)
                for i in range(args.series)
            ]
            deltas.append(timed(partial(repo.save_series, records, log="bench", now=datetime.now(UTC))))
            loads.append(timed(partial(repo.load, [r.sensor_id for r in records])))
        with engine.connect() as conn:
            storage = conn.execute(
                sa.text(
                    "SELECT attstorage FROM pg_attribute "
                    "WHERE attrelid = 'detector_snapshots'::regclass AND attname = 'snapshot'"
                )
            ).scalar_one()
            stored = conn.execute(
                sa.text(
                    "SELECT avg(pg_column_size(snapshot)), avg(octet_length(snapshot)) "
                    "FROM detector_snapshots"
                )
            ).one()
        engine.dispose()
    print(
        json.dumps(
            {
                "series": args.series,
                # As the table has it: 'e' (EXTERNAL) is stored as written, 'x' (EXTENDED) compressed.
                "snapshot_storage": {"e": "uncompressed", "x": "compressed"}.get(storage, storage),
                "snapshot_bytes_mean": round(float(stored[1])),
                "snapshot_stored_bytes_mean": round(float(stored[0])),
                "snapshots": median_of(snapshots),
                f"deltas_of_{args.points}_points": median_of(deltas),
                "load_snapshot_and_delta": median_of(loads),
            }
        )
    )


if __name__ == "__main__":
    main()
