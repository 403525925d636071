"""The pipeline's real figures: throughput with one and two workers, the raw limits, latency, memory.

Run: ``python -m bench.pipeline [--sensors 10000] [--rate 5000] [--json PATH]`` (``--quick``
for a small run). Everything runs on real servers started for the run: a
Tansu broker, a private influxd (the store), a fresh PostgreSQL database (the
state database), and ``citywarn ingest`` worker processes configured through
``CITYWARN_*`` as an operator would. In order:

0. The machine's speed on fixed work (``bench.machine_speed``), before anything else runs and
   again between step 3's two phases; each timed phase's CPU a reading is also printed as a
   multiple of it, to tell a slower machine from slower code where the two move together.
1. A generated catalog of ``--sensors`` sensors over the demo city's grids
   (``bench.city_load``), checked by the service's own start-up check.
2. History: ``--history-steps`` readings of every sensor, carried by one
   worker, then ``citywarn train`` fits and archives the per-kind models.
   Every later worker process loads them from the state database at start.
3. One worker, then two sharing the group, each carrying ``--phase-steps``
   readings of every sensor (with ``--anomalies`` past a red line) produced
   beforehand. Each phase's workers start where the last phase's stopped:
   with SIGTERM, as a deploy stops them (each hands over snapshots for its
   series' long logs, and the bench prints how long that stop took), or with
   ``--stop-with kill``, as a crash would (the new workers replay every log).
   The rate is readings over the time from the first stored
   batch (so start-up and the group join are not counted) until the group
   has committed every offset, i.e. every reading is stored and scored and
   its state checkpointed (a worker checkpoints as soon as it has read all
   there is, at most once a second). Over the same span it prints where
   the machine's CPU went, in cores kept busy on average: the workers,
   influxd, the broker, PostgreSQL, the bench itself, the rest, and idle
   (``bench.cpu_shares``), and, from each worker's ``/metrics``, the series it
   restored from their checkpoints and the part of its CPU that took.
4. Between the two, with no worker running: the raw limits
   (``bench.raw_limits``) on the same broker and influxd.
5. With the two workers still running, a producer paced at ``--rate``
   readings a second for ``--latency-s`` seconds, batching for ``--linger-ms``
   as a gateway would, with ``--latency-samples``
   anomalies spread over it; each anomaly's latency runs from the wall time
   just before it was produced until the bench sees it recorded as evidence
   of a warning in the state database (opened or joined by it), polled every
   ``POLL_S``. An anomaly not seen ``--settle-s`` after production ended counts
   at the time waited (the quantile is then a lower bound, and says so). The
   workers then catch up, so every reading produced is stored.
6. The memory of scoring state for ``--rss-series`` series
   (``bench.series_memory``, a child process).

``--profile PATH`` samples the one-worker phase's worker with py-spy (all
its threads, 100 a second, without pausing it) and prints its top functions
(``bench.collapsed_stacks``); that phase's rate is then the profiled one.
``--profile-latency DIR`` samples both workers through the latency phase,
idle threads included (a reading's wait may be a poll, a lock or a round trip).
``--latency-only`` runs 1, 2, a two-worker warm-up of ``--phase-steps`` and 5,
for working on the latency figure without waiting for the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from confluent_kafka import Consumer, Producer, TopicPartition

from alerts import db
from alerts.event_feed import EventCursor, unread
from app.services import area_partitioner
from bench.city_load import DEFAULT_KINDS, BenchSensor, make_city, quiet_value, reading, rfc3339_ms, steps
from bench.collapsed_stacks import read_collapsed, summary
from bench.cpu_shares import CpuMeter, processes_named, shares
from bench.isolation import isolated_settings
from bench.metrics_text import sample_sums
from bench.raw_limits import consume_and_decode_rate, store_write_rate
from bench.servers import fresh_postgres_database, private_influxd
from config.areas import load_areas
from config.check import check
from config.settings import Settings, env_var
from config.timeutil import parse_instant, to_ns
from ingest.broker import EmbeddedBroker, free_port
from ingest.kafka import ensure_topics, producer_config
from ingest.keys import AreaPartitioner, area_key
from ingest.producer import UNASSIGNED, ConfirmedProducer
from store.influx import InfluxStore
from store.schemas import Point

POLL_S = 0.02  # how often the latency phase looks for new evidence: its figures' resolution
# How long an evidence id skipped by a later one is asked for again: longer than any worker's
# transaction (a batch), shorter than a run.
HOLE_GRACE_S = 120.0
PROGRESS_POLL_S = 0.05
PHASE_TIMEOUT_S = 1800.0


@dataclass
class Bench:
    """The run's servers, settings and sensors, and what it has produced so far."""

    settings: Settings
    sensors: list[BenchSensor]
    influx_url: str
    logs: Path
    start_ms: int
    cadence_ms: int
    next_step: int = 0
    produced: int = 0
    phase_start_ns: int = 0  # the first timestamp of the readings ``produce_steps`` made last
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    metrics_ports: list[int] = field(default_factory=list)  # each worker's /metrics, in ``workers`` order
    profilers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cpu: CpuMeter | None = None  # the machine's parts, for where each timed phase's CPU went

    @property
    def env(self) -> dict[str, str]:
        values = self.settings.model_dump(mode="json", exclude_none=True)
        return {
            **os.environ,
            **{
                env_var(k): json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in values.items()
            },
        }


# --- worker processes -----------------------------------------------------------------------------


def start_workers(bench: Bench, n: int, *, profile: Path | None = None) -> None:
    """Start ``n`` ``citywarn ingest`` processes; with ``profile``, py-spy samples the first one's threads.

    py-spy, not cProfile: the consumer runs in a thread of its own, which cProfile does not see.
    """
    for _ in range(n):
        log = bench.logs / f"worker-{len(bench.workers)}.log"
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ingest", "--metrics-port", str(port)],
            env=bench.env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
        )
        bench.workers.append(proc)
        bench.metrics_ports.append(port)
        if profile is not None and len(bench.profilers) == 0:
            spy = [py_spy(), "record", "--pid", str(proc.pid), "--format", "raw", "--output", str(profile)]
            spy += ["--rate", "100", "--nonblocking"]
            bench.profilers.append(subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=log.open("ab")))


def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    return found


def stop_workers(bench: Bench, how: signal.Signals = signal.SIGTERM) -> list[str]:
    """SIGTERM: each finishes its batch, checkpoints and hands over, as a supervisor would stop it.
    SIGKILL: as a crash stops it, handing nothing over (its next owner replays every log).

    Returns what each said of its handover (``DetectionSink.hand_over``), with the seconds the stop
    took, so the cost a handover moves out of the next phase's span is printed beside it.
    """
    logs = sorted(bench.logs.glob("worker-*.log"))
    sizes = {log: log.stat().st_size for log in logs}
    began = time.perf_counter()
    for proc in bench.workers:
        proc.send_signal(how)
    for proc in bench.workers + bench.profilers:  # a profiler writes its file once its worker is gone
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    took = time.perf_counter() - began
    bench.workers.clear()
    bench.metrics_ports.clear()
    bench.profilers.clear()
    said = []
    for log in logs:
        with log.open("rb") as f:
            f.seek(sizes[log])
            said += [line for line in f.read().decode(errors="replace").splitlines() if "handed over" in line]
    return [f"stopped in {took:.2f} s", *(line[line.index("handed over") :] for line in said)]


def check_workers(bench: Bench) -> None:
    for proc in bench.workers:
        if proc.poll() is not None:
            logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in bench.logs.glob("worker-*.log"))
            raise RuntimeError(f"an ingest worker exited with {proc.returncode}:\n{logs}")


# --- progress -------------------------------------------------------------------------------------


def committed_total(settings: Settings) -> int:
    """Offsets the ingest group has committed on the readings topic, summed over its partitions."""
    probe = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": settings.consumer_group})
    try:
        parts = [TopicPartition(settings.topic_readings, p) for p in range(settings.topic_partitions)]
        return sum(max(tp.offset, 0) for tp in probe.committed(parts, timeout=10))
    finally:
        probe.close()


def wait_for(bench: Bench, condition: Any, what: str, timeout_s: float = PHASE_TIMEOUT_S) -> float:
    """Poll ``condition`` until true; returns the perf_counter time it first was."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        check_workers(bench)
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(PROGRESS_POLL_S)
    return time.perf_counter()


def machine_reference() -> float:
    """``bench.machine_speed`` in a process of its own, while no worker runs: µs of CPU a reading."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.machine_speed"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.machine_speed failed ({done.returncode}): {done.stderr[-3000:]}")
    return float(json.loads(done.stdout.splitlines()[-1])["us_per_reading"])


def partitioner(bench: Bench) -> AreaPartitioner:
    """Place readings as citywarn's own producers do (``app.services.area_partitioner``)."""
    return area_partitioner(load_areas(bench.settings.areas_path))


def produce_steps(bench: Bench, count: int, anomalies: int) -> list[tuple[bytes, bytes, None]]:
    messages, _ = steps(
        bench.sensors,
        first=bench.next_step,
        count=count,
        start_ms=bench.start_ms,
        cadence_ms=bench.cadence_ms,
        anomalies=anomalies,
        seed=bench.next_step,
    )
    bench.phase_start_ns = (bench.start_ms + bench.next_step * bench.cadence_ms) * 1_000_000
    bench.next_step += count
    producer = ConfirmedProducer(producer_config(bench.settings), partitioner=partitioner(bench))
    producer.send_all(bench.settings.topic_readings, messages, timeout_s=300)
    producer.close()
    bench.produced += len(messages)
    return messages


@dataclass(frozen=True)
class WorkerSpan:
    """What one worker did so far, or over a timed span (``since``), from its /proc and /metrics."""

    readings: float  # consumed from the readings topic
    cpu_s: float  # user plus system
    system_s: float  # the part spent in the kernel on its behalf (system calls, page faults)
    batch_s: float  # handling batches: validate, store, dead-letter, score
    store_s: float  # of which waiting for the store's answers
    restored: float  # series restored from their checkpoints
    # Wall seconds restoring. A restore is mostly CPU on the ingest thread, but that thread also
    # waits for the state database and for a core, so its CPU is less.
    restore_s: float

    def since(self, earlier: WorkerSpan) -> WorkerSpan:
        return WorkerSpan(*(now - then for now, then in zip(astuple(self), astuple(earlier), strict=True)))


@dataclass
class Carried:
    readings: int  # counted from the first stored batch
    seconds: float
    per_worker: list[WorkerSpan]  # each worker over the span, in ``bench.workers`` order
    # Cores each part of the machine kept busy over the span, on average (``bench.cpu_shares``).
    cores: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        """The workers' own CPU over the span."""
        return sum(w.cpu_s for w in self.per_worker)

    @property
    def system_s(self) -> float:
        return sum(w.system_s for w in self.per_worker)

    @property
    def series_restored(self) -> int:
        """By the phase's workers since they started (a restore within the span's first batch counts)."""
        return int(sum(w.restored for w in self.per_worker))

    @property
    def restore_s(self) -> float:
        return sum(w.restore_s for w in self.per_worker)

    @property
    def cpu_us_per_reading(self) -> float:
        """What a reading costs the workers, whatever else shares the cores: the wall rate is not."""
        return 1e6 * self.cpu_s / self.readings

    @property
    def system_us_per_reading(self) -> float:
        return 1e6 * self.system_s / self.readings

    @property
    def per_s(self) -> float:
        return self.readings / self.seconds

    @property
    def restore_share(self) -> float:
        """At most the part of the workers' CPU over the span that restores took: their wall time over it."""
        return self.restore_s / self.cpu_s if self.cpu_s > 0 else 0.0


def carry(bench: Bench, store: InfluxStore, workers: int, *, profile: Path | None = None) -> Carried:
    """Start ``workers`` on what is in the topic; time them from the first stored batch to the last commit."""
    before = store.count()
    start_workers(bench, workers, profile=profile)
    first_stored: list[int] = []

    def stored() -> bool:
        # Only the phase's own readings, so the count polled does not grow with the earlier phases'.
        count = store.count(since_ns=bench.phase_start_ns)
        if count:
            first_stored.append(count)
        return bool(first_stored)

    t_first = wait_for(bench, stored, "the first stored batch")
    spans_first = worker_spans(bench, starting=True)
    parts_first = bench.cpu.read() if bench.cpu is not None else None
    t_done = wait_for(
        bench, lambda: committed_total(bench.settings) >= bench.produced, "every offset committed"
    )
    spans_done = worker_spans(bench)
    parts_done = bench.cpu.read() if bench.cpu is not None else None
    spans = [done.since(first) for done, first in zip(spans_done, spans_first, strict=True)]
    # Series restored count from each worker's start: a restore in the span's first batch began before it.
    spans = [replace(span, restored=done.restored) for span, done in zip(spans, spans_done, strict=True)]
    # The store held what earlier phases carried; the first batch seen was carried before t_first.
    return Carried(
        readings=bench.produced - before - first_stored[0],
        seconds=t_done - t_first,
        per_worker=spans,
        cores=shares(parts_first, parts_done) if parts_first and parts_done else {},
    )


# Each worker's counters (``app.metrics``): ingest's for the readings stream, and its restores.
CONSUMED, BATCH_SECONDS, STORE_SECONDS = (
    "citywarn_ingest_consumed_total",
    "citywarn_ingest_batch_duration_seconds_sum",
    "citywarn_store_write_duration_seconds_sum",
)
RESTORED, RESTORE_SECONDS = "citywarn_series_restored_total", "citywarn_restore_seconds_total"


def worker_spans(bench: Bench, *, starting: bool = False) -> list[WorkerSpan]:
    """What each running worker has done since it started: its CPU (/proc, Linux) and its counters.

    ``starting``: a worker not serving /metrics yet has counted nothing (it starts serving just after
    its consumer starts, so it has done next to nothing by then).
    """
    ticks = os.sysconf("SC_CLK_TCK")
    out = []
    for proc, port in zip(bench.workers, bench.metrics_ports, strict=True):
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = int(fields[11]) / ticks, int(fields[12]) / ticks  # fields 14 and 15 of proc(5)
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        except httpx.ConnectError:
            if starting:
                out.append(WorkerSpan(0.0, user + system, system, 0.0, 0.0, 0.0, 0.0))
                continue
            raise
        # One parse of the page: the restore counters have no stream label, so they sum under "".
        sums = sample_sums(
            text, (CONSUMED, BATCH_SECONDS, STORE_SECONDS, RESTORED, RESTORE_SECONDS), by="stream"
        )
        consumed, batches, store = (
            sums.get((name, "readings"), 0.0) for name in (CONSUMED, BATCH_SECONDS, STORE_SECONDS)
        )
        restored, restoring = (sums.get((name, ""), 0.0) for name in (RESTORED, RESTORE_SECONDS))
        out.append(WorkerSpan(consumed, user + system, system, batches, store, restored, restoring))
    return out


# --- latency at a steady rate ---------------------------------------------------------------------


@dataclass
class Latency:
    """Each injected anomaly's latency; one not seen by the end counts as the time waited for it (a lower
    bound), so a pipeline that falls behind cannot look faster by the anomalies it never reached."""

    injected: int
    samples_ms: list[float]  # the anomalies seen
    unseen_ms: list[float]  # the rest: how long each had been waited for when the bench gave up
    produced: int
    achieved_rate: float
    # Each anomaly in production order: seconds into the phase, and its latency in ms (None: unseen).
    # A tail that lines up with a period (checkpoints every 5 s) shows here, not in the quantiles.
    timeline: list[tuple[float, float | None]] = field(default_factory=list)

    def quantile(self, q: float) -> tuple[float, bool]:
        """The nearest-rank quantile over every injected anomaly, and whether it is only a lower bound.

        It is exact when it lies below every unseen anomaly's wait: those rank above it whatever their
        true latency. Otherwise an unseen one may outrank it, and it is a lower bound.
        """
        ordered = sorted(self.samples_ms + self.unseen_ms)
        if not ordered:
            return float("nan"), False
        value = ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
        return value, any(wait <= value for wait in self.unseen_ms)


class EvidenceWatch:
    """Polls the state database for new evidence rows; notes when each (sensor, time) was first seen.

    Two workers write evidence in transactions of their own, so an id can commit after a higher
    one: reading only ``id > highest seen`` lost those for good (5 of 200 anomalies, at the
    pauses, in one run). The cursor asks again for the ids it skipped, as ``GET /v1/stream`` does.
    """

    def __init__(self, database_url: str) -> None:
        self.engine = db.connect(database_url)
        self.seen: dict[tuple[str, int], float] = {}
        self._cursor = EventCursor(high=self._max_id(), grace_s=HOLE_GRACE_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _max_id(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.max(db.evidence.c.id), 0))).scalar_one()
            )

    def _run(self) -> None:
        e = db.evidence.c
        while not self._stop.wait(POLL_S):
            cursor = self._cursor
            cursor.expire()
            where = unread(e.id, after=cursor.high, also=cursor.holes)
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(e.id, e.sensor_id, e.observed_at).where(where)).all()
            now = time.time()
            for row in rows:
                self.seen.setdefault((row.sensor_id, ms_of(row.observed_at)), now)
            cursor.saw(row.id for row in rows)

    def __enter__(self) -> EvidenceWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()


def ms_of(ts: datetime) -> int:
    return round(to_ns(ts) / 1e6)


def steady_latency(
    bench: Bench, *, rate: float, seconds: float, samples: int, settle_s: float, linger_ms: int
) -> Latency:
    """Produce at ``rate`` for ``seconds``, ``samples`` anomalies evenly spread; time each to its evidence."""
    rng = random.Random(7)
    # The city's gateways batch: ``linger_ms`` of each reading's latency is spent in the producer,
    # and counted. Why not librdkafka's 5 ms: Tansu (the embedded broker) stores each produced batch
    # as an object of its own and lists every object of a partition on each fetch, so its CPU grows
    # with the batches in the log. At 5,000/s, 5 ms batches took it from 8% to 80% of a core within
    # the 30 s phase and starved the workers (p99 3.3 s); 50 ms batches held it at 23%. See the
    # README's "Tansu's fetches cost more as its log grows".
    producer = Producer(producer_config(bench.settings, **{"linger.ms": linger_ms}))
    topic = bench.settings.topic_readings
    partitions = len(producer.list_topics(topic, timeout=10).topics[topic].partitions)
    place = partitioner(bench)
    total = int(rate * seconds)
    # Each anomaly on a sensor of its own (while there are sensors enough). Spiking the sensor whose
    # turn it was made, in a short phase, the same few sensors spike at every reading they sent
    # (40 anomalies over 50,000 readings of 10,000 sensors: 8 sensors, 5 times each), and a value
    # that never leaves its red line raises a signal once: 8 of 40 were ever seen.
    anomaly_at = {int((i + 0.5) * total / samples): i for i in range(samples)}
    spiked = rng.sample(bench.sensors, min(samples, len(bench.sensors)))
    injected: dict[tuple[str, int], float] = {}
    last_ms = 0
    with EvidenceWatch(bench.settings.database_url) as watch:
        start = time.perf_counter()
        for n in range(total):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            spike = n in anomaly_at
            sensor = spiked[anomaly_at[n] % len(spiked)] if spike else bench.sensors[n % len(bench.sensors)]
            ts_ms = max(time.time_ns() // 1_000_000, last_ms + 1)  # one timestamp per reading, rising
            last_ms = ts_ms
            value = sensor.spike if spike else quiet_value(sensor, rng)
            payload = reading(sensor, rfc3339_ms(ts_ms), value)
            if spike:
                injected[(sensor.id, ts_ms)] = time.time()
            while True:
                try:
                    key = area_key(sensor.area)
                    at = place(key, partitions)
                    producer.produce(topic, payload, key=key, partition=UNASSIGNED if at is None else at)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        achieved = total / (time.perf_counter() - start)
        producer.flush(60)
        bench.produced += total
        deadline = time.monotonic() + settle_s
        while not injected.keys() <= watch.seen.keys() and time.monotonic() < deadline:
            check_workers(bench)
            time.sleep(PROGRESS_POLL_S)
        gave_up = time.time()
        found = [(watch.seen[key] - at) * 1000 for key, at in injected.items() if key in watch.seen]
        unseen = [(gave_up - at) * 1000 for key, at in injected.items() if key not in watch.seen]
        began = min(injected.values(), default=0.0)
        timeline = [
            (round(at - began, 3), round((watch.seen[key] - at) * 1000, 1) if key in watch.seen else None)
            for key, at in sorted(injected.items(), key=lambda item: item[1])
        ]
    return Latency(len(injected), found, unseen, produced=total, achieved_rate=achieved, timeline=timeline)


# --- memory ---------------------------------------------------------------------------------------


def series_memory(bench: Bench, *, series: int, points: int, cap_mib: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.series_memory", "--series", str(series), "--points", str(points)]
    command += ["--cap-mib", str(cap_mib)]
    out = subprocess.run(command, env=bench.env, capture_output=True, text=True, check=False, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"bench.series_memory failed ({out.returncode}): {out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- the run --------------------------------------------------------------------------------------


def points_of(messages: list[tuple[bytes, bytes, None]]) -> list[Point]:
    """The store's points of produced readings (area and kind as the generated catalog says)."""
    out = []
    for _, raw, _ in messages:
        m = json.loads(raw)
        out.append(
            Point(m["sensor_id"], m["kind"], m["area"], to_ns(parse_instant(m["ts"])), float(m["value"]))
        )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "sensors": args.sensors,
        "kinds": list(args.kinds),
        "load_before": load_average(),
    }
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="citywarn-bench-")))
        broker = stack.enter_context(EmbeddedBroker())
        influxd = stack.enter_context(private_influxd(tmp / "influxd"))
        influx_url = influxd.url
        database_url = stack.enter_context(fresh_postgres_database())
        catalog_path = tmp / "sensors.yaml"
        sensors = make_city(args.sensors, tuple(args.kinds), load_areas(), catalog_path)
        settings = isolated_settings(
            bootstrap=broker.bootstrap,
            store_url=f"influxdb://{influx_url.removeprefix('http://')}/bench",
            database_url=database_url,
            catalog_path=catalog_path,
            checkpoint_interval_s=args.checkpoint_interval,
            broker_durable=False,
        ).model_copy(
            # The service's own batching and Kafka timeouts, not the tests' (see --max-poll-interval-ms).
            update={
                "kafka_max_poll_interval_ms": args.max_poll_interval_ms,
                "kafka_session_timeout_ms": args.session_timeout_ms,
                "topic_partitions": args.partitions,
                "batch_max_wait_s": Settings().batch_max_wait_s,
                "batch_max_messages": args.batch_max_messages,
            }
        )
        problems = check(settings).problems
        if problems:
            raise SystemExit(f"the generated catalog fails citywarn check: {problems[:5]}")
        ensure_topics(settings)
        cadence_ms = max(1, round(1000 * args.sensors / args.rate))  # the latency phase's own cadence
        total_steps = args.history_steps + 2 * args.phase_steps
        start_ms = time.time_ns() // 1_000_000 - (total_steps + 60) * cadence_ms
        logs = tmp / "logs"
        logs.mkdir()
        bench = Bench(settings, sensors, influx_url, logs, start_ms, cadence_ms)
        bench.cpu = CpuMeter(
            {
                "workers": lambda: [w.pid for w in bench.workers],
                "influxd": lambda: [influxd.pid] if influxd.pid else [],
                "broker": lambda: [broker.pid] if broker.pid else [],
                "postgresql": lambda: processes_named("postgres"),
                "bench": lambda: [os.getpid()],
            }
        )
        store = InfluxStore(settings.store_url)
        stack.callback(store.close)
        stack.callback(stop_workers, bench)

        reference = [machine_reference()]
        say(f"machine reference (bench.machine_speed): {reference[0]:.2f} µs of CPU a reading")
        say(f"history: {args.history_steps} readings of each of {args.sensors} sensors")
        produce_steps(bench, args.history_steps, anomalies=0)
        history = carry(bench, store, 1)
        say(f"  carried at {history.per_s:,.0f} readings/s before any model was trained")
        stopped = stop_workers(bench, args.stop_with)
        say("  " + "; ".join(stopped))
        figures["stop_before_1_worker"] = stopped  # what the next phase's restores start from
        trained = subprocess.run(
            [sys.executable, "-m", "app.cli", "train"],
            env=bench.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if trained.returncode != 0:
            raise RuntimeError(f"citywarn train failed ({trained.returncode}): {trained.stderr[-3000:]}")
        models = [json.loads(line) for line in trained.stdout.splitlines() if line.startswith("{")]
        figures["models_trained"] = sorted(m.get("kind", "?") for m in models)
        say(f"  trained {len(models)} per-kind models: {', '.join(figures['models_trained'])}")

        if args.latency_only:
            phase = produce_steps(bench, args.phase_steps, anomalies=args.anomalies)
            say(f"two workers warming up on {len(phase):,} readings")
            carry(bench, store, 2)
            latency = latency_phase(bench, args)
            stop_workers(bench)
            figures.update(latency_figures(latency, args))
            figures.update(readings_produced=bench.produced, readings_stored=store.count())
            figures["machine_reference_us_per_reading"] = [round(r, 2) for r in reference]
            figures["load_after"] = load_average()
            return figures

        phase = produce_steps(bench, args.phase_steps, anomalies=args.anomalies)
        say(f"one worker: {len(phase):,} readings")
        one = carry(bench, store, 1, profile=args.profile)
        stopped = stop_workers(bench, args.stop_with)
        say(
            f"  {one.per_s:,.0f} readings/s ({one.readings:,} in {one.seconds:.2f} s; "
            f"{one.cpu_us_per_reading:,.1f} µs of the worker's CPU a reading, "
            f"{one.system_us_per_reading:,.1f} of them in the kernel)"
        )
        say_cores(one)
        say_workers(one)
        say_restores(one)
        say("  " + "; ".join(stopped))
        figures["stop_before_2_workers"] = stopped
        if args.profile is not None:
            say(
                f"  profile of that worker (py-spy, {args.profile}):\n"
                + summary(read_collapsed(args.profile))
            )

        say("raw limits (no worker running)")
        consume = consume_and_decode_rate(settings.kafka_bootstrap, settings.topic_readings, len(phase))
        write = store_write_rate(influx_url, points_of(phase))
        say(f"  broker consume+json.loads {consume:,.0f}/s; store write of line protocol {write:,.0f}/s")

        reference.append(machine_reference())
        say(f"machine reference again: {reference[-1]:.2f} µs of CPU a reading")

        phase = produce_steps(bench, args.phase_steps, anomalies=args.anomalies)
        say(f"two workers: {len(phase):,} readings")
        two = carry(bench, store, 2)
        say(
            f"  {two.per_s:,.0f} readings/s ({two.readings:,} in {two.seconds:.2f} s; "
            f"{two.cpu_us_per_reading:,.1f} µs of the workers' CPU a reading, "
            f"{two.system_us_per_reading:,.1f} of them in the kernel)"
        )
        say_cores(two)
        say_workers(two)
        say_restores(two)

        latency = latency_phase(bench, args)
        stop_workers(bench)
        stored = store.count()

        say(f"memory: scoring state for {args.rss_series:,} series")
        memory = series_memory(
            bench, series=args.rss_series, points=args.rss_points, cap_mib=args.rss_cap_mib
        )
        # New series are the cheapest state there is; a day of readings each is what a city holds.
        say(f"memory: {args.rss_day_series:,} series of {args.rss_day_points} readings each")
        day = series_memory(
            bench, series=args.rss_day_series, points=args.rss_day_points, cap_mib=args.rss_cap_mib
        )

    lower = min(consume, write)
    machine = statistics.mean(reference)
    figures.update(
        {
            "machine_reference_us_per_reading": [round(r, 2) for r in reference],
            # The workers' CPU a reading over the machine's speed on fixed work that day.
            "worker_cpu_per_reading_over_reference": round(one.cpu_us_per_reading / machine, 3),
            "worker_cpu_per_reading_over_reference_2_workers": round(two.cpu_us_per_reading / machine, 3),
            "readings_per_s": round(one.per_s),
            "readings_per_s_2_workers": round(two.per_s),
            "readings_per_s_history_no_models": round(history.per_s),
            "one_worker_profiled": args.profile is not None,
            "seconds_1_worker": round(one.seconds, 3),
            "worker_cpu_us_per_reading": round(one.cpu_us_per_reading, 1),
            "worker_cpu_us_per_reading_2_workers": round(two.cpu_us_per_reading, 1),
            "worker_system_us_per_reading": round(one.system_us_per_reading, 1),
            "worker_system_us_per_reading_2_workers": round(two.system_us_per_reading, 1),
            "seconds_2_workers": round(two.seconds, 3),
            "cores_1_worker": one.cores,
            "cores_2_workers": two.cores,
            # Series the phase's workers restored from checkpoints, and (at most) the part of their CPU
            # in the timed span that took: a worker running for days pays it only when handed partitions.
            "series_restored_1_worker": one.series_restored,
            "series_restored_2_workers": two.series_restored,
            "restore_s_1_worker": round(one.restore_s, 3),
            "restore_s_2_workers": round(two.restore_s, 3),
            "restore_share_of_cpu_1_worker": round(one.restore_share, 3),
            "restore_share_of_cpu_2_workers": round(two.restore_share, 3),
            # Each worker's part of the two-worker phase: its readings, and the span it spent in batches.
            "worker_readings_share_2_workers": shares_of(w.readings for w in two.per_worker),
            "worker_busy_share_2_workers": [round(w.batch_s / two.seconds, 3) for w in two.per_worker],
            "readings_timed_1_worker": one.readings,
            "readings_timed_2_workers": two.readings,
            "broker_consume_decode_per_s": round(consume),
            "store_write_line_protocol_per_s": round(write),
            # The pipeline's rate is the two workers' (the issue's figure); one worker's is beside it.
            "ratio_to_limit": round(two.per_s / lower, 3),
            "ratio_to_limit_1_worker": round(one.per_s / lower, 3),
            "ratio_to_limit_2_workers": round(two.per_s / lower, 3),
            **latency_figures(latency, args),
            "readings_produced": bench.produced,
            "readings_stored": stored,
            "rss_series_requested": args.rss_series,
            "rss_series_held": memory["series"],
            "rss_points_per_series": memory["points_per_series"],
            "rss_stopped_at_cap": memory["stopped_at_cap"],
            "rss_before_series_mib": memory["rss_before_mib"],
            "resident_before_series_mib": memory["resident_before_mib"],
            "resident_100k_series_mib": memory["resident_after_mib"],
            "peak_rss_mib_100k_series": None if memory["stopped_at_cap"] else memory["peak_rss_mib"],
            "peak_rss_mib_at_cap": memory["peak_rss_mib"] if memory["stopped_at_cap"] else None,
            "rss_mib_per_1000_series": per_thousand(memory),
            "rss_day_points_per_series": day["points_per_series"],
            "rss_day_series_held": day["series"],
            "rss_mib_per_1000_series_day": per_thousand(day),
            "load_after": load_average(),
        }
    )
    return figures


def latency_phase(bench: Bench, args: argparse.Namespace) -> Latency:
    """The steady-rate phase on the running workers (sampled by py-spy with ``--profile-latency``), then
    their catch-up, so every reading produced is stored."""
    say(f"latency: {args.rate:,.0f} readings/s for {args.latency_s:g} s, two workers")
    spies = []
    if args.profile_latency is not None:
        args.profile_latency.mkdir(parents=True, exist_ok=True)
        for n, proc in enumerate(bench.workers):
            # --idle: waits (poll, locks, round trips) are where a reading's latency can hide.
            command = [py_spy(), "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "100"]
            command += ["--nonblocking", "--idle", "--duration", str(math.ceil(args.latency_s))]
            command += ["--output", str(args.profile_latency / f"worker-{n}.txt")]
            spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    latency = steady_latency(
        bench,
        rate=args.rate,
        seconds=args.latency_s,
        samples=args.latency_samples,
        settle_s=args.settle_s,
        linger_ms=args.linger_ms,
    )
    for spy in spies:
        spy.wait(120)
    say("  letting the workers catch up, so every reading produced is stored")
    wait_for(bench, lambda: committed_total(bench.settings) >= bench.produced, "every offset committed")
    if args.profile_latency is not None:
        for n in range(len(spies)):
            profile = read_collapsed(args.profile_latency / f"worker-{n}.txt")
            say(f"  profile of worker {n} in the latency phase (py-spy, idle included):\n" + summary(profile))
    return latency


def latency_figures(latency: Latency, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "latency_rate_target": args.rate,
        "latency_rate_achieved": round(latency.achieved_rate),
        "latency_producer_linger_ms": args.linger_ms,
        "latency_injected": latency.injected,
        "latency_settle_s": args.settle_s,
        "latency_samples": len(latency.samples_ms),
        "latency_unseen": len(latency.unseen_ms),
        **{f"latency_p{q}_ms": round(latency.quantile(q / 100)[0], 1) for q in (50, 95, 99)},
        **{f"latency_p{q}_is_lower_bound": latency.quantile(q / 100)[1] for q in (50, 95, 99)},
        "latency_max_seen_ms": round(max(latency.samples_ms, default=float("nan")), 1),
        "latency_timeline": latency.timeline,
    }


def per_thousand(memory: dict[str, Any]) -> float:
    """MiB of resident memory the scoring state took per 1,000 series (the process's start left out)."""
    grown = memory["resident_after_mib"] - memory["resident_before_mib"]
    return round(1000 * grown / max(1, memory["series"]), 1)


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


STARTED = time.monotonic()


def say_cores(carried: Carried) -> None:
    """Where the machine's CPU went while the phase was timed, in cores kept busy on average."""
    cores = carried.cores
    if not cores:
        return
    parts = ", ".join(f"{name} {cores[name]:.2f}" for name in cores if name not in {"idle", "cores"})
    say(f"  cores busy, of {cores['cores']:.2f}: {parts}; idle {cores['idle']:.2f}")


def shares_of(parts: Iterable[float]) -> list[float]:
    listed = list(parts)
    total = sum(listed) or 1.0
    return [round(p / total, 3) for p in listed]


def say_workers(carried: Carried) -> None:
    """How the span's readings and time split between the workers, one line each."""
    readings = shares_of(w.readings for w in carried.per_worker)
    for n, (w, share) in enumerate(zip(carried.per_worker, readings, strict=True), 1):
        say(
            f"  worker {n}: {share:.0%} of the readings, {w.cpu_s / carried.seconds:.2f} cores; "
            f"of the span {w.batch_s / carried.seconds:.0%} in batches "
            f"({w.store_s / carried.seconds:.0%} waiting for the store)"
        )


def say_restores(carried: Carried) -> None:
    """What restoring the series the workers were handed cost within the timed span."""
    say(
        f"  restoring {carried.series_restored:,} series from their checkpoints: {carried.restore_s:.2f} s "
        f"within the span, at most {carried.restore_share:.0%} of the workers' CPU"
    )


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {text}" if text else "", flush=True)


def report(f: dict[str, Any]) -> None:
    say("")
    say(f"load average before {f['load_before']}, after {f['load_after']} (2 cores: above 2 is contended)")
    if "readings_per_s" not in f:  # --latency-only
        report_latency(f)
        return
    say(f"end to end, 1 worker : {f['readings_per_s']:>10,} readings/s")
    say(f"end to end, 2 workers: {f['readings_per_s_2_workers']:>10,} readings/s")
    say(
        f"workers' CPU a reading over the machine reference {f['machine_reference_us_per_reading']} µs: "
        f"1 worker {f['worker_cpu_per_reading_over_reference']}, "
        f"2 workers {f['worker_cpu_per_reading_over_reference_2_workers']}"
    )
    say(f"broker consume+decode: {f['broker_consume_decode_per_s']:>10,} /s")
    say(f"store write (LP)     : {f['store_write_line_protocol_per_s']:>10,} /s")
    say(
        f"ratio to the lower limit: {f['ratio_to_limit']} (1 worker {f['ratio_to_limit_1_worker']}, "
        f"2 workers {f['ratio_to_limit_2_workers']})"
    )
    report_latency(f)
    held = f"{f['rss_series_held']:,} series x {f['rss_points_per_series']} readings"
    if f["peak_rss_mib_100k_series"] is not None:
        say(
            f"worker with the scoring state of {held}: peak RSS {f['peak_rss_mib_100k_series']:,} MiB, "
            f"resident {f['resident_100k_series_mib']:,} MiB (before any series: peak "
            f"{f['rss_before_series_mib']:,}, resident {f['resident_before_series_mib']:,})"
        )
    else:
        say(
            f"peak RSS passed the cap at {held}: {f['peak_rss_mib_at_cap']:,} MiB "
            f"({f['rss_mib_per_1000_series']} MiB per 1,000 series)"
        )
    say(
        f"scoring state at {f['rss_day_points_per_series']} readings a series "
        f"({f['rss_day_series_held']:,} series): {f['rss_mib_per_1000_series_day']} MiB per 1,000 series"
    )


def report_latency(f: dict[str, Any]) -> None:
    shown = {
        q: ("≥ " if f[f"latency_p{q}_is_lower_bound"] else "") + f"{f[f'latency_p{q}_ms']:,} ms"
        for q in (50, 95, 99)
    }
    say(
        f"produce-to-warning at {f['latency_rate_achieved']:,}/s, producer batching "
        f"{f['latency_producer_linger_ms']} ms: p50 {shown[50]}, p95 {shown[95]}, "
        f"p99 {shown[99]} ({f['latency_samples']} of {f['latency_injected']} anomalies seen within "
        f"{f['latency_settle_s']:g} s of the end of production; ≥: an anomaly not seen, counted at the wait)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=list(DEFAULT_KINDS))
    parser.add_argument("--history-steps", type=int, default=250, help="readings per sensor before training")
    parser.add_argument(
        "--phase-steps", type=int, default=100, help="readings per sensor in each timed phase"
    )
    parser.add_argument("--anomalies", type=int, default=20, help="red-line crossings in each timed phase")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch-max-messages", type=int, default=Settings().batch_max_messages)
    # Kafka's defaults, as against a production broker. The shorter interval `citywarn run` uses on Tansu
    # (10 s, for fast group joins) was shorter than a whole-state checkpoint of 10,000 series took under
    # load (before checkpoints were incremental): the worker was dropped from the group and replayed.
    # Joins are not timed, so the longer interval costs only wall time.
    parser.add_argument("--max-poll-interval-ms", type=int, default=Settings().kafka_max_poll_interval_ms)
    parser.add_argument("--session-timeout-ms", type=int, default=Settings().kafka_session_timeout_ms)
    parser.add_argument("--checkpoint-interval", type=float, default=Settings().checkpoint_interval_s)
    parser.add_argument("--rate", type=float, default=5000.0, help="readings/s of the latency phase")
    parser.add_argument("--latency-s", type=float, default=30.0)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument(
        "--linger-ms",
        type=int,
        default=50,
        help="how long the latency phase's producer batches readings (counted in the latency)",
    )
    parser.add_argument(
        "--settle-s", type=float, default=60.0, help="how long to wait for the last anomalies' warnings"
    )
    parser.add_argument("--rss-series", type=int, default=100_000)
    parser.add_argument("--rss-points", type=int, default=2)
    parser.add_argument("--rss-cap-mib", type=float, default=4096.0)
    parser.add_argument("--rss-day-series", type=int, default=10_000)
    parser.add_argument(
        "--rss-day-points", type=int, default=288, help="readings per series of the second memory figure"
    )
    parser.add_argument(
        "--profile", type=Path, help="sample the one-worker phase's worker with py-spy; collapsed stacks here"
    )
    parser.add_argument(
        "--profile-latency",
        type=Path,
        help="sample both workers with py-spy during the latency phase (idle too); a file each in this dir",
    )
    parser.add_argument(
        "--stop-with",
        type=lambda name: signal.Signals[f"SIG{name.upper()}"],
        default=signal.SIGTERM,
        help="term (default: the worker hands over, as a deploy stops it) or kill (a crash: the next "
        "phase's workers replay what each series logged) before each timed phase",
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="history, training, a two-worker warm-up of --phase-steps, then only the latency phase",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every part")
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        # Smaller defaults; sizes given on the command line still win.
        parser.set_defaults(
            sensors=300,
            history_steps=20,
            phase_steps=20,
            anomalies=5,
            rate=500.0,
            latency_s=6.0,
            latency_samples=12,
            rss_series=2000,
            rss_day_series=500,
            rss_day_points=50,
            rss_cap_mib=2048.0,
            batch_max_messages=500,  # several batches even in a small phase, so there is a rate to time
            max_poll_interval_ms=10_000,  # fast joins on Tansu: small checkpoints fit in 10 s
            session_timeout_ms=6_000,
        )
    args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    figures = run(args)
    report(figures)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
