"""End-to-end ingest throughput: Kafka -> validate -> store -> score -> warnings -> commit.

Run: ``python -m bench.ingest [--readings 1000000] [--store embedded|influxdb]``. Produces N
quiet readings from every catalog sensor to a fresh topic on a Tansu broker,
then times one ingest worker consuming them all, from its first batch to its
last commit (the group join is not counted). ``influxdb`` starts a private
influxd like the tests do.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from app.services import build_services
from app.workers import build_ingest_worker
from bench.isolation import as_json, isolated_settings
from bench.servers import running_influxd
from config.catalog import load_catalog
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics, producer_config
from ingest.producer import ConfirmedProducer


def readings(n: int) -> list[dict[str, object]]:
    catalog = load_catalog(Settings().catalog_path)
    sensors = catalog.sensors
    steps = n // len(sensors)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    out = []
    for i in range(steps):
        ts = (end - timedelta(seconds=steps - i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for s in sensors:
            kind = catalog.kinds[s.kind]
            value = kind.valid_min + (kind.valid_max - kind.valid_min) * (0.30 + 0.01 * (i % 5))
            out.append({"sensor_id": s.id, "kind": s.kind, "value": value, "ts": ts})
    return out


@contextlib.contextmanager
def store_url(kind: str, tmp: str) -> Iterator[str]:
    if kind == "influxdb":
        with running_influxd() as url:
            yield f"influxdb://{url.removeprefix('http://')}/bench"
    else:
        yield f"file://{tmp}/store.sqlite3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--store", choices=["embedded", "influxdb"], default="embedded")
    parser.add_argument("--detector", default=Settings().detector)
    args = parser.parse_args()
    messages = readings(args.readings)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker, store_url(args.store, tmp) as url:
        settings = isolated_settings(
            bootstrap=broker.bootstrap,
            store_url=url,
            database_url=f"sqlite:///{tmp}/state.sqlite3",
            detector=args.detector,
        )
        ensure_topics(settings)
        producer = ConfirmedProducer(producer_config(settings))
        producer.send_all(settings.topic_readings, as_json(messages))
        producer.close()
        svc = build_services(settings)
        worker = build_ingest_worker(svc)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        t_start = time.perf_counter()
        cpu_start = time.process_time()
        thread.start()
        # Timed from the end of the first batch, so only the readings after it count: with batches
        # of 50,000 the first is a quarter of 200,000, and counting it overstated the rate by a third.
        first: float | None = None
        before_first = 0
        while worker.stats.consumed < len(messages):
            if first is None and worker.stats.batches:
                first, before_first = time.perf_counter(), worker.stats.consumed
            time.sleep(0.01)
        elapsed = time.perf_counter() - (first or t_start)
        timed = len(messages) - before_first
        cpu = time.process_time() - cpu_start
        stop.set()
        thread.join()
        stored = svc.store.count()
        svc.close()
    print(
        f"store={args.store} detector={args.detector} readings={len(messages)} "
        f"batches={worker.stats.batches} checkpoints={worker.stats.checkpoints}"
    )
    print(
        f"stored {stored}; {timed / elapsed:,.0f} readings/s wall "
        f"({timed:,} in {elapsed:.2f} s after the first batch); process CPU {cpu:.2f} s in total"
    )


if __name__ == "__main__":
    main()
