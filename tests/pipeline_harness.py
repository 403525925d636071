"""Builds an isolated citywarn pipeline on the real servers for one test.

Every test gets its own topics, consumer group, InfluxDB database or store
file, and state database, so tests share the servers but never data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition

from app.services import Services, build_services
from app.workers import build_ingest_worker
from config.settings import Settings
from demo.city import DemoScenario
from ingest.broker import free_port
from ingest.consumer import IngestWorker
from ingest.kafka import ensure_topics


def store_url_for(kind: str, *, influx_url: str | None, tmp_path: Path) -> str:
    if kind == "influxdb":
        assert influx_url is not None
        return f"influxdb://{influx_url.removeprefix('http://')}/t{uuid.uuid4().hex[:10]}"
    return f"file://{tmp_path}/store.sqlite3"


@contextmanager
def running_pipeline(
    settings: Settings, *, wrap_sink: Callable[[Any], Any] | None = None
) -> Iterator[tuple[Services, IngestWorker]]:
    """``wrap_sink``: a test's wrapper around the worker's own sink, in place before the first batch."""
    svc = build_services(settings)
    ensure_topics(settings)
    worker = build_ingest_worker(svc)
    if wrap_sink is not None:
        worker.sink = wrap_sink(worker.sink)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield svc, worker
    finally:
        stop.set()
        thread.join(30)
        svc.close()


@dataclass(frozen=True)
class DemoRun:
    """A running `citywarn run --demo`: where it answers, its admin key, and where it runs."""

    base: str
    key: str
    cwd: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def tail(self) -> str:
        return self.log.read_text()[-3000:]

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, self.tail()


@contextmanager
def demo_run(cwd: Path, env: Mapping[str, str] | None = None, *, ready_s: float = 90) -> Iterator[DemoRun]:
    """`citywarn run --demo` as the README starts it, in ``cwd`` on a free port, once ready.

    The process gets no CITYWARN_ settings of the test's environment, only ``env``
    on top. Ready means its demo key file is written and /readyz answers 200; on
    exit it is sent SIGTERM and must exit 0 within a minute.
    """
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")} | dict(env or {})
    log = cwd / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "citywarn"), "run", "--demo", "--port", str(port)],
            cwd=cwd,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    key_file = cwd / "citywarn-demo.key"
    try:
        deadline = time.monotonic() + ready_s
        while not _ready(base, key_file):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                raise AssertionError(f"the demo was not ready within {ready_s} s; log tail:\n{tail}")
            time.sleep(0.2)
        yield DemoRun(base, key_file.read_text().strip(), cwd, full_env, proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]


def _ready(base: str, key_file: Path) -> bool:
    try:
        return key_file.exists() and httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """How many messages the group has committed on the topic (offsets start at 0)."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 3})
    try:
        tps = probe.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        probe.close()


def read_topic(bootstrap: str, topic: str, expected: int, *, timeout_s: float = 30.0) -> list[Any]:
    """Every message of a topic from the start, with a throw-away group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "max.poll.interval.ms": 10_000,
            "session.timeout.ms": 6_000,
            "log_level": 3,
        }
    )
    consumer.subscribe([topic])
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < expected and time.monotonic() < deadline:
            got.extend(m for m in consumer.consume(1000, 0.5) if m.error() is None)
        # A moment more, so extra unexpected messages are seen too.
        got.extend(m for m in consumer.consume(1000, 1.0) if m.error() is None)
    finally:
        consumer.close()
    return got


def assert_warnings_match_scenario(svc: Services, scenario: DemoScenario) -> None:
    """Every anomalous sensor backs a grid warning of its hazard, and nothing else warns.

    Neighbouring grids' signals for one hazard fuse into one warning, so a
    scenario spanning adjacent grids may give fewer warnings than grids. A
    warning whose condition ended resolves, and a later incident opens another
    (alerts.lifecycle), so only open warnings are one per (hazard, area).
    District and city roll-ups (alerts.rollup) sum these up and are not counted.
    """
    warnings = svc.warnings.list(limit=500, scope="grid").items
    still_open = [(w.hazard, w.area) for w in warnings if w.status != "resolved"]
    assert len(set(still_open)) == len(still_open), "duplicate open warnings"
    backed: set[tuple[str, str]] = set()
    for w in warnings:
        assert (w.hazard, w.area) in scenario.hazard_areas, f"unexpected warning {w.hazard} in {w.area}"
        detail = svc.warnings.get(w.id)
        assert detail is not None
        sensors = {e.sensor_id for e in detail.evidence}
        assert sensors <= scenario.anomalous_sensor_ids, f"normal sensors warned: {sensors}"
        backed.update((w.hazard, s) for s in sensors)
    for anomaly in scenario.anomalies:
        for sensor in anomaly.sensor_ids:
            assert (anomaly.hazard, sensor) in backed, f"{sensor} ({anomaly.name}) raised no warning"
