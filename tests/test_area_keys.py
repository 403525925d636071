"""Readings keyed by area (issue 12, item 3): an area's series stay on one worker, and move with their state.

All on the real Tansu broker: every producer's readings of one area land in
one partition; two ``IngestWorker`` consumers of one group score every
series of an area on one worker; when a worker joins or leaves, the series
it takes over continue from the checkpoint the previous owner saved, so the
final detector state is what one uninterrupted engine would have reached.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.services import area_partitioner, build_services
from app.workers import build_ingest_worker
from bench.city_load import BenchSensor, steps
from bench.isolation import as_json, isolated_settings
from config.areas import load_areas
from config.positions import Position
from config.settings import Settings
from config.timeutil import to_ns
from demo.live import stream_live
from ingest.broker import EmbeddedBroker
from ingest.consumer import IngestWorker
from ingest.http_batches import readings_ingest
from ingest.kafka import ensure_topics, producer_config
from ingest.keys import AreaPartitioner, area_key
from ingest.producer import ConfirmedProducer, DeliveryFailed
from models.engine import ScoringEngine
from store.schemas import Point
from tests.factories import CATALOG
from tests.pipeline_harness import committed_total, read_topic, wait_until

AREA_OF = {s.id: s.area for s in CATALOG.sensors}
PARTITIONER = area_partitioner(load_areas(Settings().areas_path))  # as every citywarn producer places


def quiet_readings(*, minutes: int, end: datetime, seed: int) -> list[dict[str, Any]]:
    """One in-range reading a minute per catalogued sensor, noisy so the detectors learn something."""
    rng = random.Random(seed)
    out = []
    for i in range(minutes):
        ts = (end - timedelta(minutes=minutes - 1 - i)).isoformat().replace("+00:00", "Z")
        for s in CATALOG.sensors:
            kind = CATALOG.kinds[s.kind]
            span = kind.valid_max - kind.valid_min
            low = kind.thresholds is None or kind.thresholds.direction == "above"
            centre = kind.valid_min + span * (0.05 if low else 0.9)
            out.append(
                {"sensor_id": s.id, "kind": s.kind, "value": centre + rng.gauss(0, span * 0.002), "ts": ts}
            )
    return out


def partitions_by_area(messages: Sequence[Any]) -> dict[str, set[int]]:
    by_area: dict[str, set[int]] = {}
    for m in messages:
        by_area.setdefault(AREA_OF[json.loads(m.value())["sensor_id"]], set()).add(m.partition())
    return by_area


def test_every_producers_readings_of_one_area_land_in_one_partition(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    )
    ensure_topics(settings)
    now = datetime.now(UTC)
    readings = quiet_readings(minutes=3, end=now - timedelta(minutes=1), seed=1)
    for r in readings[::2]:
        r["area"] = AREA_OF[r["sensor_id"]]  # half of them name their area, the rest leave it out
    svc = build_services(settings)
    try:
        # POST /v1/readings' path: validated, then keyed by the area the catalog gives.
        answer = readings_ingest(validator=svc.validator, producer=svc.producer, settings=settings).accept(
            json.dumps({"readings": readings}).encode(), now
        )
        assert answer.accepted == len(readings), answer.rejected
    finally:
        svc.close()
    producer = ConfirmedProducer(producer_config(settings), partitioner=PARTITIONER)
    try:
        producer.send_all(settings.topic_readings, as_json(readings))  # the tests' and benches' helper
        stop = threading.Event()

        def one_tick() -> datetime:
            stop.set()
            return now

        # The demo's live stream, one tick.
        stream_live(
            producer, topic=settings.topic_readings, catalog=CATALOG, day_end=now, stop=stop, clock=one_tick
        )
        bench_city = [BenchSensor(s.id, s.kind, s.area, "", 1.0, 0.01, 2.0) for s in CATALOG.sensors]
        produced, _ = steps(bench_city, first=0, count=2, start_ms=0, cadence_ms=60_000, anomalies=0, seed=3)
        producer.send_all(settings.topic_readings, produced)  # bench.city_load's city
    finally:
        producer.close()
    expected = 2 * len(readings) + len(CATALOG.sensors) * 3
    messages = read_topic(settings.kafka_bootstrap, settings.topic_readings, expected)
    assert len(messages) == expected
    assert all(m.key() == area_key(AREA_OF[json.loads(m.value())["sensor_id"]]) for m in messages)
    by_area = partitions_by_area(messages)
    assert set(by_area) == set(AREA_OF.values())
    assert all(len(partitions) == 1 for partitions in by_area.values()), by_area
    # Dealt out in turn, not hashed: the partitions' numbers of areas differ by at most one.
    per_partition = Counter(next(iter(partitions)) for partitions in by_area.values())
    assert set(per_partition) == set(range(settings.topic_partitions)), per_partition
    assert max(per_partition.values()) - min(per_partition.values()) <= 1, per_partition


def test_areas_are_dealt_out_to_partitions_in_turn_and_other_keys_left_to_the_client() -> None:
    place = AreaPartitioner(["g-b", "d-a", "g-a", "g-c", "g-b"])
    assert [place(area_key(a), 2) for a in ("d-a", "g-a", "g-b", "g-c")] == [0, 1, 0, 1]
    assert [place(area_key(a), 3) for a in ("d-a", "g-a", "g-b", "g-c")] == [0, 1, 2, 0]
    assert place(b"somewhere-else", 3) is None and place(None, 3) is None


class RecordingSink:
    """The worker's own sink, noting which series it was handed while ``phase`` is set."""

    def __init__(self, inner: Any, seen: dict[str, set[str]], phase: list[str]) -> None:
        self.inner, self.seen, self.phase = inner, seen, phase

    def process(self, points: Sequence[Point], positions: Sequence[Position], *, now: datetime) -> None:
        self.inner.process(points, positions, now=now)
        self.seen.setdefault(self.phase[0], set()).update(p.sensor_id for p in points)

    def checkpoint(self, *, now: datetime) -> None:
        self.inner.checkpoint(now=now)

    def reset(self) -> None:
        self.inner.reset()


@contextmanager
def running(worker: IngestWorker[Any]) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


def new_engine(settings: Settings) -> ScoringEngine:
    return ScoringEngine(CATALOG, detector=settings.detector, signal_threshold=settings.signal_threshold)


def uninterrupted(
    settings: Settings, expected: int
) -> tuple[ScoringEngine, dict[str, Point], dict[str, Position]]:
    """One engine over the whole topic at the messages' own positions; each series' last point, position."""
    messages = read_topic(settings.kafka_bootstrap, settings.topic_readings, expected)
    assert len(messages) == expected
    messages.sort(key=lambda m: (m.partition(), m.offset()))
    points, positions = [], []
    for m in messages:
        r = json.loads(m.value())
        ts = to_ns(datetime.fromisoformat(r["ts"].replace("Z", "+00:00")))
        points.append(Point(r["sensor_id"], r["kind"], AREA_OF[r["sensor_id"]], ts, r["value"]))
        positions.append((m.partition(), m.offset()))
    engine = new_engine(settings)
    engine.score(points, positions)
    return (
        engine,
        {p.sensor_id: p for p in points},
        {p.sensor_id: at for p, at in zip(points, positions, strict=True)},
    )


def whole_states(engine: ScoringEngine, last: dict[str, Point], at: dict[str, Position]) -> dict[str, str]:
    """Each series' whole state once it took one more point, the same for every engine compared.

    The extra point makes every series dirty, so ``dirty_states`` shows each whole
    state whatever the checkpoint format; JSON text, so NaNs compare equal.
    """
    engine.score(
        [Point(p.sensor_id, p.kind, p.area, p.ts_ns + 60 * 10**9, p.value) for p in last.values()],
        [(at[sid][0], at[sid][1] + 1) for sid in last],
    )
    return {sid: json.dumps(state, sort_keys=True) for sid, state in engine.dirty_states().items()}


def test_an_areas_series_stay_on_one_worker_and_move_with_their_checkpointed_state(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A alone, then B joins, then B leaves; each phase's readings are committed before the next."""
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        batch_max_messages=100,
        checkpoint_interval_s=0.5,
    )
    ensure_topics(settings)
    end = datetime.now(UTC) - timedelta(minutes=2)
    parts = [quiet_readings(minutes=20, end=end - timedelta(minutes=40 - 20 * k), seed=k) for k in range(3)]
    producer = ConfirmedProducer(producer_config(settings), partitioner=PARTITIONER)
    sent = 0

    def produce_and_settle(readings: list[dict[str, Any]]) -> None:
        nonlocal sent
        producer.send_all(settings.topic_readings, as_json(readings))
        sent += len(readings)
        wait_until(
            lambda: (
                committed_total(settings.kafka_bootstrap, settings.consumer_group, settings.topic_readings, 3)
                >= sent
            ),
            timeout_s=90,
            what=f"{sent} readings committed",
        )

    phase = ["A alone"]
    seen_a: dict[str, set[str]] = {}
    seen_b: dict[str, set[str]] = {}
    svc_a, svc_b = build_services(settings), build_services(settings)
    a, b = build_ingest_worker(svc_a), build_ingest_worker(svc_b)
    a.sink = RecordingSink(a.sink, seen_a, phase)
    b.sink = RecordingSink(b.sink, seen_b, phase)
    try:
        with running(a):
            wait_until(lambda: len(a.owned) == 3, timeout_s=30, what="A to own every partition")
            produce_and_settle(parts[0])
            with running(b):
                wait_until(
                    lambda: bool(a.owned and b.owned) and len(a.owned | b.owned) == 3,
                    timeout_s=30,
                    what="A and B to share the partitions",
                )
                phase[0] = "shared"
                produce_and_settle(parts[1])
            wait_until(lambda: len(a.owned) == 3, timeout_s=30, what="A to take B's partitions back")
            phase[0] = "A again"
            produce_and_settle(parts[2])
        saved = svc_a.checkpoints.load(AREA_OF)
    finally:
        producer.close()
        svc_a.close()
        svc_b.close()

    # While both were in the group, each area was scored by exactly one of them, and both had areas.
    shared_a, shared_b = seen_a["shared"], seen_b["shared"]
    assert shared_a and shared_b and shared_a | shared_b == set(AREA_OF)
    areas_a = {AREA_OF[s] for s in shared_a}
    areas_b = {AREA_OF[s] for s in shared_b}
    assert not areas_a & areas_b, f"areas scored by both workers: {areas_a & areas_b}"
    assert seen_a["A again"] == set(AREA_OF)

    # B went on from A's checkpoints, then A from B's: the state is the uninterrupted one.
    reference, last, at = uninterrupted(settings, sent)
    assert set(saved) == set(AREA_OF)
    assert {sid: tuple(rec["position"]) for sid, rec in saved.items()} == at
    resumed = new_engine(settings)
    resumed.restore(saved)
    got, want = whole_states(resumed, last, at), whole_states(reference, last, at)
    assert set(got) == set(want) == set(AREA_OF)
    differ = sorted(sid for sid in want if got[sid] != want[sid])
    assert not differ, f"series that did not continue from their checkpoint: {differ}"


def test_a_partitioned_producer_without_a_broker_fails_delivery_instead_of_guessing() -> None:
    """No partition count, no placement: the message is refused as undelivered (HTTP ingest's 503)."""
    producer = ConfirmedProducer(
        {"bootstrap.servers": "127.0.0.1:9", "log_level": 0, "message.timeout.ms": 2000},
        partitioner=PARTITIONER,
    )
    with pytest.raises(DeliveryFailed, match="no partition count"):
        producer.send_all("readings", [(area_key("g-oldtown-05"), b"{}", None)], timeout_s=2)
