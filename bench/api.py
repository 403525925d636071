"""The API under concurrent load while readings flow into the same service.

Run: ``python -m bench.api [--duration S] [--concurrency N] [--rate R]
[--store influxdb|embedded] [--database sqlite|postgresql] [--layout run|split]
[--demo-days N] [--json PATH] [--profile PATH]``.

``citywarn run`` starts as a child process (``bench.replay_service``) on a
Tansu broker of our own, so readings can be produced to it, and on a private
influxd unless ``--store embedded``. Its only settings beyond the defaults
are those and ``CITYWARN_RATE_LIMITS_ENABLED=false``: the bench key would
otherwise be held to an operator's 30 requests a second. ``--layout split``
starts ``citywarn serve`` and ``citywarn ingest`` as two processes instead
(``bench.split_service``), the production layout: the API then shares no GIL
with the consumers.

The demo city's day (readings and reports) is produced first, seven times
two days apart, and consumed, so there are a page of warnings to list and
series to read. Then, for ``--duration`` seconds, a producer process sends
the catalog's sensors' readings at a paced ``--rate`` (each holding its
sensor's end-of-day level, with fresh noise, stamped at the time it is
sent) while a loopback load generator (keep-alive connections on asyncio,
one process; see ``KeepAlive``) keeps ``--concurrency`` requests in flight
per endpoint: ``GET /v1/warnings?limit=50`` and ``GET
/v1/sensors/{id}/series`` over the last demo day's last hour (12 points a
sensor, the sensors taken in turn). The bench's own processes share the
machine's cores with the service, so on a small machine the figures are
the service's and the load generator's together.

``--profile PATH`` samples the service's threads with py-spy while the load
runs (the event loop, the request threads and the ingest threads: cProfile
would see only one), writes the collapsed stacks there and prints the top
functions (``bench.collapsed_stacks``). py-spy takes CPU of its own, so the
figures of a profiled run are lower.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import numpy as np

from bench.collapsed_stacks import read_collapsed, summary
from bench.metrics_text import sample_sums
from bench.pipeline import py_spy
from bench.replay import backends
from bench.replay_service import RunningService
from bench.split_service import SplitService
from config.catalog import Catalog, load_catalog
from config.settings import ENV_PREFIX, Settings
from demo.city import demo_live_readings, demo_readings, demo_reports
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics, producer_config
from ingest.keys import area_key, keyed_readings, reading_area, sensor_areas
from ingest.producer import ConfirmedProducer

WARNINGS_PATH = "/v1/warnings?limit=50"
TICK_S = 0.05  # the producer sends what is due every tick: 250 readings a tick at 5,000/s
SETTLE_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 30.0
WARMUP_S = 2.0  # requests that start in the first seconds (connections opening) are not counted
DEMO_DAYS = 7  # each opens about 8 warnings, so 7 fill a page of 50


# ---------------------------------------------------------------------------- figures


@dataclass(frozen=True, slots=True)
class EndpointFigures:
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @classmethod
    def of(cls, latencies_s: Sequence[float], errors: int, seconds: float) -> EndpointFigures:
        ms = np.asarray(latencies_s) * 1000.0 if latencies_s else np.asarray([np.nan])
        p50, p95, p99 = (float(x) for x in np.percentile(ms, [50, 95, 99]))
        return cls(len(latencies_s), errors, len(latencies_s) / seconds, p50, p95, p99)

    def line(self, name: str) -> str:
        return (
            f"{name:<9} {self.rps:>8,.0f} req/s  p50 {self.p50_ms:6.1f} ms  p95 {self.p95_ms:6.1f} ms  "
            f"p99 {self.p99_ms:6.1f} ms  ({self.requests:,} answered, {self.errors} errors)"
        )


@dataclass(frozen=True, slots=True)
class Figures:
    warnings_rps: float
    warnings_p99_ms: float
    series_rps: float
    series_p99_ms: float
    ingest_rate: float  # readings a second the producer achieved while the load ran
    stored_rate: float  # readings a second the service stored meanwhile (its /metrics, before and after)
    warnings_errors: int
    series_errors: int
    warnings_page_items: int
    series_points: int
    consumer_lag_after: int


# ---------------------------------------------------------------------------- readings


def steady_readings(catalog: Catalog, day_end: datetime, seed: int = 11) -> Iterator[tuple[bytes, bytes]]:
    """The catalog's sensors in turn, each near its level at the demo day's end, stamped now.

    The noise keeps a sensor from looking stuck; the microsecond stamps keep
    every reading a point of its own in the store.
    """
    base = demo_live_readings(day_end, tick=0, day_end=day_end, catalog=catalog)
    rng = np.random.default_rng(seed)
    bounds = [
        (catalog.kinds[str(r["kind"])].valid_min, catalog.kinds[str(r["kind"])].valid_max) for r in base
    ]
    areas = sensor_areas(catalog)
    keys = [area_key(reading_area(r, areas)) for r in base]  # by area, as every producer keys readings
    while True:
        noise = rng.normal(0.0, 0.002, len(base))
        ts = datetime.now(UTC).isoformat(timespec="microseconds")
        for i, (r, (lo, hi), e) in enumerate(zip(base, bounds, noise, strict=True)):
            value = float(r["value"])  # type: ignore[arg-type]
            value = min(hi, max(lo, value + e * (abs(value) + 0.01)))
            yield keys[i], json.dumps({**r, "value": value, "ts": ts}).encode()


def produce_paced(
    bootstrap: str, topic: str, rate: float, seconds: float, day_end: datetime, out: Connection
) -> None:
    """Send readings at ``rate`` a second for ``seconds`` (its own process); sends back (sent, elapsed).

    Every tick sends what is due by then, so a late tick is made up by the
    next rather than lowering the rate.
    """
    catalog = load_catalog(Settings().catalog_path)
    producer = ConfirmedProducer(producer_config(Settings(kafka_bootstrap=bootstrap)))
    readings = steady_readings(catalog, day_end)
    sent = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(rate * elapsed) - sent
        if due > 0:
            sent += producer.send_all(topic, ((*next(readings), None) for _ in range(due)))
        time.sleep(max(0.0, TICK_S - (time.perf_counter() - start - elapsed)))
    elapsed = time.perf_counter() - start
    producer.close()
    out.send((sent, elapsed))


# ---------------------------------------------------------------------------- load


@dataclass(slots=True)
class Tally:
    latencies_s: list[float]
    errors: int = 0


class KeepAlive:
    """One HTTP/1.1 connection sending GETs back to back, as little client code as a request can take.

    httpx's AsyncClient was the bottleneck here: on this machine it made about
    370 requests a second against an app that only answers ``{"ok": true}``,
    where these few lines on asyncio's streams made 5,700. The service's
    answers carry a Content-Length (uvicorn's JSON responses), which is all
    that is read; anything else counts as an error.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> int:
        """The answer's status; its body is read and dropped. The connection is reopened after a failure."""
        try:
            return await asyncio.wait_for(self._get(path), REQUEST_TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            self.close()
            return 0

    async def _get(self, path: str) -> int:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.extra}\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)
        }
        if "content-length" not in fields:
            raise ValueError("an answer without Content-Length")
        await reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return int(head[0].split(" ", 2)[1])

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def hammer(
    conn: KeepAlive, paths: Sequence[str], tally: Tally, counted_from: float, until: float
) -> None:
    """One connection's requests, back to back, cycling through ``paths``."""
    i = 0
    while (started := time.perf_counter()) < until:
        status = await conn.get(paths[i % len(paths)])
        i += 1
        if started < counted_from:
            continue
        if status == 200:
            tally.latencies_s.append(time.perf_counter() - started)
        else:
            tally.errors += 1
    conn.close()


async def load(
    base_url: str, headers: dict[str, str], series_paths: Sequence[str], concurrency: int, seconds: float
) -> tuple[EndpointFigures, EndpointFigures]:
    url = httpx.URL(base_url)
    host, port = url.host, url.port or 80
    start = time.perf_counter()
    counted_from, until = start + WARMUP_S, start + WARMUP_S + seconds
    warnings, series = Tally([]), Tally([])
    await asyncio.gather(
        *(
            hammer(KeepAlive(host, port, headers), [WARNINGS_PATH], warnings, counted_from, until)
            for _ in range(concurrency)
        ),
        *(
            hammer(KeepAlive(host, port, headers), series_paths, series, counted_from, until)
            for _ in range(concurrency)
        ),
    )
    return (
        EndpointFigures.of(warnings.latencies_s, warnings.errors, seconds),
        EndpointFigures.of(series.latencies_s, series.errors, seconds),
    )


# ---------------------------------------------------------------------------- the service


def seed_demo_days(settings: Settings, catalog: Catalog, day_end: datetime, days: int) -> dict[str, int]:
    """Produce the demo city's day ``days`` times, oldest first; returns how many messages, by stream.

    The days are two apart, so each day's incidents come long after the last
    one's evidence and open warnings of their own: enough to fill a page of 50.
    """
    ends = [day_end - timedelta(days=2 * k) for k in reversed(range(days))]
    readings = [m for end in ends for m in demo_readings(end=end, catalog=catalog)]
    reports = [m for end in ends for m in demo_reports(end=end)]
    ensure_topics(settings)
    producer = ConfirmedProducer(producer_config(settings))
    producer.send_all(
        settings.topic_readings,
        keyed_readings(readings, sensor_areas(catalog)),
    )
    producer.send_all(
        settings.topic_reports, ((area_key(str(m["area"])), json.dumps(m).encode(), None) for m in reports)
    )
    producer.close()
    return {"readings": len(readings), "reports": len(reports)}


def ingest_counts(client: httpx.Client, name: str) -> dict[str, float]:
    """One of the service's ingest metrics (a counter, or the lag gauge) by stream, from its ``/metrics``."""
    sums = sample_sums(client.get("/metrics").text, {name}, by="stream")
    return {stream: value for (_, stream), value in sums.items()}


def readings_stored(client: httpx.Client) -> float:
    return ingest_counts(client, "citywarn_ingest_stored_total").get("readings", 0.0)


def readings_lag(client: httpx.Client) -> int:
    """The readings consumer's lag over its partitions, from ``/metrics`` (split: the ingest process's)."""
    return int(ingest_counts(client, "citywarn_consumer_lag_messages").get("readings", 0.0))


def metrics_url(service: RunningService) -> str:
    """Where the ingest counters are served: the service itself, or (split) the ingest process."""
    return service.metrics_url if isinstance(service, SplitService) else service.url


def wait_settled(
    service: RunningService,
    client: httpx.Client,
    metrics: httpx.Client,
    seeded: dict[str, int],
    timeout_s: float,
) -> None:
    """Wait until the service has handled every seeded message (stored, scored, decided) and warned."""
    deadline = time.monotonic() + timeout_s
    while True:
        consumed = ingest_counts(metrics, "citywarn_ingest_consumed_total")
        total = int(client.get("/v1/warnings", params={"limit": 1}).json()["total"])
        if total > 0 and all(consumed.get(stream, 0) >= n for stream, n in seeded.items()):
            return
        if not service.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the demo day did not settle: {consumed} of {seeded}\n{service.log_tail()}")
        time.sleep(0.5)


@contextlib.contextmanager
def started_service(store: str, database: str, layout: str = "run") -> Iterator[tuple[RunningService, str]]:
    """``citywarn run`` (or, split, ``serve`` and ``ingest``) on a broker, store and state database of
    its own; yields it and the bootstrap."""
    root = Path(tempfile.mkdtemp(prefix="citywarn-bench-api-"))
    try:
        with EmbeddedBroker() as broker, backends(store, database, root) as backend_env:
            env = {
                f"{ENV_PREFIX}KAFKA_BOOTSTRAP": broker.bootstrap,
                f"{ENV_PREFIX}BROKER_DURABLE": "false",
                # What citywarn run sets on the Tansu it starts itself (app.cli.EMBEDDED_KAFKA).
                f"{ENV_PREFIX}KAFKA_MAX_POLL_INTERVAL_MS": "10000",
                f"{ENV_PREFIX}KAFKA_SESSION_TIMEOUT_MS": "6000",
                f"{ENV_PREFIX}RATE_LIMITS_ENABLED": "false",
                **backend_env,
            }
            service = (SplitService if layout == "split" else RunningService)(root, env)
            try:
                service.start()
                yield service, broker.bootstrap
            finally:
                code = service.stop()
                if code != 0:
                    print(f"citywarn exited with {code}\n{service.log_tail()}", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_bench(
    *,
    seconds: float,
    concurrency: int,
    rate: float,
    store: str,
    database: str,
    demo_days: int,
    layout: str = "run",
    profile: Path | None = None,
) -> tuple[Figures, EndpointFigures, EndpointFigures, float]:
    """Start everything, load it, stop it; the figures, each endpoint's, and the producer's seconds."""
    catalog = load_catalog(Settings().catalog_path)
    day_end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    window = httpx.QueryParams(
        {"start": (day_end - timedelta(hours=1)).isoformat(), "end": day_end.isoformat()}
    )
    series_paths = [f"/v1/sensors/{s.id}/series?{window}" for s in catalog.sensors]
    with (
        started_service(store, database, layout) as (service, bootstrap),
        httpx.Client(base_url=service.url, headers=service.headers, timeout=60) as client,
        httpx.Client(base_url=metrics_url(service), timeout=60) as metrics,
    ):
        settings = Settings(kafka_bootstrap=bootstrap)
        seeded = seed_demo_days(settings, catalog, day_end, demo_days)
        wait_settled(service, client, metrics, seeded, SETTLE_TIMEOUT_S)
        page_items = len(client.get(WARNINGS_PATH).json()["items"])
        points = len(client.get(series_paths[0]).json()["points"])
        stored_before, load_started = readings_stored(metrics), time.perf_counter()
        warnings, series, (sent, produced_s) = _measure(
            service,
            bootstrap,
            settings.topic_readings,
            day_end,
            seconds,
            concurrency,
            rate,
            series_paths,
            profile,
        )
        stored_rate = (readings_stored(metrics) - stored_before) / (time.perf_counter() - load_started)
        figures = Figures(
            warnings_rps=warnings.rps,
            warnings_p99_ms=warnings.p99_ms,
            series_rps=series.rps,
            series_p99_ms=series.p99_ms,
            ingest_rate=sent / produced_s,
            stored_rate=stored_rate,
            warnings_errors=warnings.errors,
            series_errors=series.errors,
            warnings_page_items=page_items,
            series_points=points,
            consumer_lag_after=readings_lag(metrics),
        )
    return figures, warnings, series, produced_s


def _measure(
    service: RunningService,
    bootstrap: str,
    topic: str,
    day_end: datetime,
    seconds: float,
    concurrency: int,
    rate: float,
    series_paths: Sequence[str],
    profile: Path | None = None,
) -> tuple[EndpointFigures, EndpointFigures, tuple[int, float]]:
    """The producer runs from the load's warm-up to its end; its own process keeps it off our GIL."""
    spy = _sample(service, profile, WARMUP_S + seconds) if profile is not None else None
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    producer = ctx.Process(
        target=produce_paced, args=(bootstrap, topic, rate, WARMUP_S + seconds, day_end, send), daemon=True
    )
    producer.start()
    try:
        warnings, series = asyncio.run(load(service.url, service.headers, series_paths, concurrency, seconds))
        if not receive.poll(60):
            raise RuntimeError("the producer did not report its rate")
        sent, elapsed = receive.recv()
    finally:
        producer.join(10)
        if producer.is_alive():
            producer.kill()
        if spy is not None and spy.wait(60) != 0:
            print(f"py-spy exited with {spy.returncode}", file=sys.stderr)
    return warnings, series, (int(sent), float(elapsed))


def _sample(service: RunningService, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy on every thread of the service for ``seconds`` (from the load's warm-up to its end)."""
    pid = service._proc.pid if service._proc is not None else None  # RunningService names no pid of its own
    if pid is None:
        raise RuntimeError("the service is not running")
    command = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    command += ["--rate", "100", "--nonblocking", "--duration", str(max(1, round(seconds)))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------------------- the command


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured (after a 2 s warm-up)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per endpoint")
    parser.add_argument("--rate", type=float, default=5000.0, help="readings a second produced meanwhile")
    parser.add_argument("--store", choices=["influxdb", "embedded"], default="influxdb")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--layout",
        choices=["run", "split"],
        default="run",
        help="run: citywarn run, one process; split: citywarn serve and citywarn ingest apart",
    )
    parser.add_argument(
        "--demo-days", type=int, default=DEMO_DAYS, help="demo days seeded (the default fills a page of 50)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--profile", type=Path, help="sample the service with py-spy while loaded; collapsed stacks here"
    )
    args = parser.parse_args(argv)
    figures, warnings, series, produced_s = run_bench(
        seconds=args.duration,
        concurrency=args.concurrency,
        rate=args.rate,
        store=args.store,
        database=args.database,
        demo_days=args.demo_days,
        layout=args.layout,
        profile=args.profile,
    )
    print(
        f"{'citywarn serve + citywarn ingest' if args.layout == 'split' else 'citywarn run'}: "
        f"store {args.store}, state database {args.database}, rate limits off; "
        f"{args.concurrency} requests in flight per endpoint for {args.duration:g} s"
    )
    print(warnings.line("warnings") + f"  [{figures.warnings_page_items} items a page]")
    print(series.line("series") + f"  [{figures.series_points} points an answer]")
    print(
        f"ingest    {figures.ingest_rate:>8,.0f} readings/s produced "
        f"(asked {args.rate:,.0f}/s, {produced_s:.1f} s); "
        f"{figures.stored_rate:,.0f}/s stored meanwhile; consumer lag after: {figures.consumer_lag_after:,}"
    )
    print(
        f"measured on {os.cpu_count()} cores shared by the service, its broker and store, the producer "
        "and the load generator: the load generator's CPU is taken from the service's"
    )
    if args.profile:
        print(f"profile of the service under that load (py-spy, {args.profile}):")
        print(summary(read_collapsed(args.profile), 25))
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2) + "\n")


if __name__ == "__main__":
    main()
