"""What a batch's warning work costs as one incident's evidence grows: the EOC's busiest hour.

Run: ``python -m bench.incident [--batches 61] [--gauges 20] [--instants 10]``. On a fresh database
of the running PostgreSQL, each batch brings ``--gauges`` x ``--instants`` flood signals (one river
gauge area, 10 s of readings each) to one warning, as ``DetectionSink.process`` does: the signals,
then the area's clock. It prints the batch's wall time against the rows the warning holds by then.
All of it runs under the writers' lock, so every worker's batch waits out this time.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from alerts import db
from alerts.service import WarningService
from alerts.sinks import latest_per_area
from bench.servers import fresh_postgres_database
from config.catalog import load_catalog
from config.playbooks import load_playbooks
from config.settings import CITY_DIR
from models.signals import Signal

AREA = "g-riverside-01"
START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def flood_signal(gauge: int, at: datetime, value: float) -> Signal:
    return Signal(
        sensor_id=f"wl-riverside-{gauge:02d}",
        kind="water_level",
        area=AREA,
        hazard="flood",
        ts_ns=int(at.timestamp()) * 1_000_000_000,
        value=value,
        score=0.9,
        detector="bench",
        level="yellow",
        evidence={"baseline": 1.2},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=61)
    parser.add_argument("--gauges", type=int, default=20)
    parser.add_argument("--instants", type=int, default=10, help="readings of each gauge a batch")
    args = parser.parse_args(argv)
    catalog = load_catalog(CITY_DIR / "sensors.yaml")
    playbooks = load_playbooks(CITY_DIR / "playbooks.yaml")
    with fresh_postgres_database() as url:
        engine = db.connect(url)
        try:
            service = WarningService(engine, catalog=catalog, playbooks=playbooks)
            rows = 0
            for b in range(args.batches):
                first = START + timedelta(seconds=args.instants * b)
                signals = [
                    flood_signal(g, first + timedelta(seconds=j), 3.1 + 0.01 * j)
                    for j in range(args.instants)
                    for g in range(1, args.gauges + 1)
                ]
                started = time.perf_counter()
                service.apply_signals(signals, now=START, actor="bench")
                service.advance(latest_per_area((s.area, s.ts_ns) for s in signals), now=START)
                took = time.perf_counter() - started
                rows += len(signals)
                if b < 3 or b % 10 == 0 or b == args.batches - 1:
                    print(
                        f"batch {b:4d}: the warning holds {rows:7,d} rows; batch {took * 1000:8.1f} ms",
                        flush=True,
                    )
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
