"""Peak resident memory of the scoring state an ingest worker holds, by number of series.

Run as a child process (``bench.pipeline`` does) with the ``CITYWARN_*``
settings of a pipeline whose per-kind models are archived:
``python -m bench.series_memory --series 100000``. It builds the scoring
engine exactly as ``citywarn ingest`` does (``app.workers.scoring_engine``:
the configured detector, the archived per-kind models), then scores batches
of ``--batch`` readings of series it has not seen, ``--points`` readings
each, until ``--series`` distinct series are held, and prints one JSON line:
the process's peak resident set (imports, catalog, models and all) before the
first batch and at the end, and the resident set at both moments (the state's
own size: a start-up spike, such as compiling a kernel, can hide it under the
peak), with the end's split into anonymous memory and mapped files (shared
libraries such as LLVM's, which worker processes share).

The peak is the kernel's high-water mark of this process's memory
(``VmHWM``), not ``ru_maxrss``: a child started by ``subprocess`` (vfork, then
exec) begins with its parent's peak in ``ru_maxrss``, so ``bench.pipeline``'s
child reported the bench's own ~1 GiB as its "start-up peak".

It stops early, saying so, once the resident set passes ``--cap-mib``: this
machine is shared, and a state that outgrows it is measured well enough by
the series it reached. Readings carry sensor ids the catalog need not know
(the engine then takes the kind's warning lines), so the catalog in memory is
the run's, not one of ``--series`` sensors.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

from app.services import build_services
from app.workers import scoring_engine
from config.settings import Settings
from store.schemas import Point


def rss_mib() -> float:
    """The resident set now (``/proc/self/statm``): the peak hides a state smaller than a start-up spike."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def status_mib(field: str) -> float:
    """A memory figure of ``/proc/self/status`` (``VmHWM``, ``RssAnon``, ``RssFile``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise KeyError(field)


def peak_rss_mib() -> float:
    """This process's own peak resident set (see the module docstring: not ``ru_maxrss``)."""
    return status_mib("VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=2, help="readings per series")
    parser.add_argument("--batch", type=int, default=5000, help="readings per scored batch")
    parser.add_argument("--cap-mib", type=float, default=4096.0)
    args = parser.parse_args()
    svc = build_services(Settings())
    area_of = {s.kind: s.area for s in svc.catalog.sensors}  # a real area for each kind in use
    kinds = sorted(area_of)
    lines = {k: svc.catalog.kinds[k] for k in kinds}
    engine = scoring_engine(svc)
    before, resident_before = peak_rss_mib(), rss_mib()
    started = time.perf_counter()
    per_batch = max(1, args.batch // args.points)
    held, offset, capped = 0, 0, False
    rng = random.Random(5)
    t0_ns = time.time_ns() - args.points * 300 * 10**9
    while held < args.series and not capped:
        points = []
        for n in range(held, min(held + per_batch, args.series)):
            kind = kinds[n % len(kinds)]
            thresholds = lines[kind].thresholds
            quiet = thresholds.blue * 0.5 if thresholds is not None else 0.0
            noise = 0.05 * lines[kind].min_deviation
            for k in range(args.points):
                # Quiet noise, as a sensor reads between incidents (a steady ramp would make every
                # point a record low of some evidence and fill the record deques as no city does).
                value = quiet + rng.gauss(0.0, noise)
                points.append(Point(f"mem-{n:07d}", kind, area_of[kind], t0_ns + k * 300 * 10**9, value))
        positions = [(0, offset + i) for i in range(len(points))]
        offset += len(points)
        engine.score(points, positions)
        engine.checkpoint()  # as a worker does: points kept for the next checkpoint are let go
        held = min(held + per_batch, args.series)
        capped = peak_rss_mib() > args.cap_mib
    print(
        json.dumps(
            {
                "series": held,
                "points_per_series": args.points,
                "detector": engine.detector_name,
                "kind_models": sorted(engine.kind_models()),
                "rss_before_mib": round(before, 1),
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "resident_before_mib": round(resident_before, 1),
                "resident_after_mib": round(rss_mib(), 1),
                "anon_after_mib": round(status_mib("RssAnon"), 1),
                "files_after_mib": round(status_mib("RssFile"), 1),
                # For comparison only: includes the parent's peak when the parent was larger.
                "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "stopped_at_cap": capped and held < args.series,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    )
    svc.close()


if __name__ == "__main__":
    main()
