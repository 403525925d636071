"""Ingest under real faults: a rebalance during a store outage, and writes the store refuses.

Every fault is real: an influxd of the test's own that is stopped and started
again, an InfluxDB shard whose field type conflicts with ours, a PostgreSQL
text column handed U+0000. Nothing here mocks Kafka, InfluxDB or PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer

import alerts.sinks
from alerts.sinks import ReportSink
from app.services import Services, build_services
from app.workers import build_ingest_worker, silence_watch
from bench.isolation import as_json, isolated_settings
from bench.servers import private_influxd
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.consumer import IngestWorker
from ingest.errors import Failure, classify
from ingest.kafka import consumer_config, ensure_topics, producer_config
from ingest.producer import ConfirmedProducer, DeliveryFailed
from ingest.validation import Invalid
from models.report_burst import ReportBurstDetector
from store.factory import open_store
from store.port import StoreError, StoreRefused, StoreUnavailable
from store.schemas import ReportRecord
from tests.factories import CATALOG
from tests.pipeline_harness import committed_total, read_topic, wait_until


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (StoreUnavailable("connection refused"), Failure.TRANSIENT),
        (DeliveryFailed("1 message(s) not delivered"), Failure.TRANSIENT),
        (sa.exc.OperationalError("INSERT", {}, ConnectionError("server closed")), Failure.TRANSIENT),
        (StoreRefused("field type conflict"), Failure.REFUSED),
        (sa.exc.DataError("INSERT", {}, ValueError("NUL")), Failure.REFUSED),
        (sa.exc.IntegrityError("INSERT", {}, ValueError("not null")), Failure.REFUSED),
        (StoreError("database not found"), Failure.FATAL),
        (sa.exc.ProgrammingError("INSERT", {}, ValueError("relation does not exist")), Failure.FATAL),
        (KeyError("sensor_id"), Failure.FATAL),
    ],
)
def test_each_failure_is_retried_isolated_or_fatal(error: BaseException, failure: Failure) -> None:
    assert classify(error) is failure


def quiet_readings(*, minutes: int, sensors: int, end: datetime) -> list[dict[str, Any]]:
    """One in-range reading a minute per sensor, the last one at ``end``."""
    out = []
    for i in range(minutes):
        ts = (end - timedelta(minutes=minutes - 1 - i)).isoformat().replace("+00:00", "Z")
        for s in CATALOG.sensors[:sensors]:
            kind = CATALOG.kinds[s.kind]
            value = kind.valid_min + (kind.valid_max - kind.valid_min) * 0.01 * (1 + i % 3)
            if kind.thresholds is not None and kind.thresholds.direction == "below":
                value = kind.valid_max * 0.9
            out.append({"sensor_id": s.id, "kind": s.kind, "value": value, "ts": ts})
    return out


def produce(settings: Settings, topic: str, messages: list[tuple[bytes, bytes, None]]) -> None:
    producer = ConfirmedProducer(producer_config(settings))
    producer.send_all(topic, messages)
    producer.close()


@contextmanager
def running(worker: IngestWorker[Any]) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)


def all_committed(settings: Settings, topic: str, group: str, expected: int) -> bool:
    return committed_total(settings.kafka_bootstrap, group, topic, settings.topic_partitions) >= expected


def test_rebalance_during_store_outage_loses_nothing(
    broker: EmbeddedBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two consumers share the stream; the store goes down; one leaves; the store comes back."""
    caplog.set_level(logging.INFO, logger="ingest.consumer")
    with private_influxd(tmp_path / "influxd") as influxd:
        settings = isolated_settings(
            bootstrap=broker.bootstrap,
            store_url=influxd.store_url("rebalance"),
            database_url=f"sqlite:///{tmp_path}/state.sqlite3",
            batch_max_messages=200,
            checkpoint_interval_s=0.5,
        )
        ensure_topics(settings)
        readings = quiet_readings(minutes=60, sensors=20, end=datetime.now(UTC) - timedelta(minutes=5))
        influxd.stop()

        svc_a, svc_b = build_services(settings), build_services(settings)
        first, second = build_ingest_worker(svc_a), build_ingest_worker(svc_b)
        try:
            with running(first):
                with running(second):
                    # Both in the group before anything arrives, so each holds only its own share.
                    wait_until(
                        lambda: first.owned and second.owned and len(first.owned | second.owned) == 3,
                        timeout_s=30,
                        what="both consumers to own partitions",
                    )
                    produce(settings, settings.topic_readings, as_json(readings))
                    wait_until(lambda: first.stats.retries >= 1, timeout_s=30, what="A to hold a batch")
                    wait_until(lambda: second.stats.retries >= 1, timeout_s=30, what="B to hold a batch")
                # B has left the group: A is given B's partitions while its store is still down,
                # and the batch A holds is void (it was read before the rebalance).
                wait_until(lambda: len(first.owned) == 3, timeout_s=30, what="A to take B's partitions")
                wait_until(lambda: first.stats.abandoned >= 1, timeout_s=30, what="A to drop its batch")
                influxd.start()
                wait_until(
                    lambda: all_committed(
                        settings, settings.topic_readings, settings.consumer_group, len(readings)
                    ),
                    timeout_s=90,
                    what="the whole stream to be committed",
                )
            store = open_store(settings.store_url)
            try:
                assert store.count() == len(readings)
            finally:
                store.close()
            # A worker consumes two topics (readings, reports): its rebalance logs say which.
            said = [r.getMessage() for r in caplog.records if r.name == "ingest.consumer"]
            for what in ("assigned", "revoked"):
                prefix = f"{settings.topic_readings}: {what} partitions ["
                assert any(m.startswith(prefix) for m in said), what
        finally:
            svc_a.close()
            svc_b.close()


def test_a_worker_held_by_a_store_outage_is_not_caught_up(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The silence check judges sensors only while ingest is caught up. A worker retrying a batch
    against a store that is down has read nothing past it, so its lag counts only what came
    meanwhile, under a batch: the lag alone said caught up while every sensor's last stored reading
    grew old, and every sensor would have come to look silent."""
    with private_influxd(tmp_path / "influxd") as influxd:
        settings = isolated_settings(
            bootstrap=broker.bootstrap,
            store_url=influxd.store_url("outage"),
            database_url=f"sqlite:///{tmp_path}/state.sqlite3",
            batch_max_messages=200,
            checkpoint_interval_s=0.5,
        )
        ensure_topics(settings)
        svc = build_services(settings)
        worker = build_ingest_worker(svc)
        worker.lag_fresh_s = 2.0
        watch = silence_watch(svc, worker)
        now = datetime.now(UTC)
        # It judges silence from when it began listening, not from before the process started.
        assert watch.listening_since is not None and now - watch.listening_since < timedelta(seconds=30)
        before = quiet_readings(minutes=5, sensors=5, end=now - timedelta(minutes=10))
        during = quiet_readings(minutes=4, sensors=5, end=now - timedelta(minutes=1))
        topic, group = settings.topic_readings, settings.consumer_group
        try:
            with running(worker):
                produce(settings, topic, as_json(before))
                wait_until(
                    lambda: all_committed(settings, topic, group, len(before)),
                    timeout_s=60,
                    what="the first readings",
                )
                wait_until(watch.caught_up, timeout_s=30, what="the worker to be caught up")
                influxd.stop()
                retries = worker.stats.retries
                produce(settings, topic, as_json(during))
                wait_until(
                    lambda: worker.stats.retries > retries, timeout_s=30, what="a batch held by the outage"
                )
                time.sleep(worker.lag_fresh_s + 0.5)
                assert worker.stats.retries > retries + 1, "the batch should still be retried"
                assert not watch.caught_up()
                influxd.start()
                total = len(before) + len(during)
                wait_until(
                    lambda: all_committed(settings, topic, group, total), timeout_s=90, what="every reading"
                )
                wait_until(watch.caught_up, timeout_s=30, what="the worker to be caught up again")
        finally:
            svc.close()


def test_a_point_influxdb_refuses_is_dead_lettered_and_the_rest_is_stored(
    broker: EmbeddedBroker, influx_url: str, tmp_path: Path
) -> None:
    """A field type conflict (HTTP 400) in one hour's shard: that hour is dead-lettered, not retried."""
    database = f"refuse{int(time.time() * 1000)}"
    end = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=30, second=0, microsecond=0)
    readings = quiet_readings(minutes=150, sensors=3, end=end)
    # One-hour shards; in the shard of the middle hour, "value" is first written as an integer.
    poisoned = end.replace(minute=0) - timedelta(hours=1)
    httpx.post(
        f"{influx_url}/query", params={"q": f'CREATE DATABASE "{database}" WITH SHARD DURATION 1h'}
    ).raise_for_status()
    first_write = httpx.post(
        f"{influx_url}/write",
        params={"db": database, "precision": "s"},
        content=f"reading,sensor_id=intruder value=1i {int(poisoned.timestamp())}".encode(),
    )
    assert first_write.status_code == 204
    refused = [
        r
        for r in readings
        if poisoned <= datetime.fromisoformat(str(r["ts"])) < poisoned + timedelta(hours=1)
    ]
    assert 0 < len(refused) < len(readings)

    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"influxdb://{influx_url.removeprefix('http://')}/{database}",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        batch_max_messages=1000,
        checkpoint_interval_s=0.5,
    )
    ensure_topics(settings)
    produce(settings, settings.topic_readings, as_json(readings))
    svc = build_services(settings)
    try:
        with running(build_ingest_worker(svc)):
            wait_until(
                lambda: all_committed(
                    settings, settings.topic_readings, settings.consumer_group, len(readings)
                ),
                timeout_s=60,
                what="the stream to move past the refused points",
            )
        stored = sum(svc.store.count(s.id) for s in CATALOG.sensors[:3])
        assert stored == len(readings) - len(refused)
        dead = read_topic(settings.kafka_bootstrap, settings.topic_deadletter, len(refused))
        assert sorted(json.loads(m.value())["ts"] for m in dead) == sorted(str(r["ts"]) for r in refused)
        reasons = {dict(m.headers())["reason"].decode() for m in dead}
        assert all("field type conflict" in reason for reason in reasons), reasons
    finally:
        svc.close()


def _unvalidated_report(raw: bytes, now: datetime) -> ReportRecord | Invalid:
    """Parse without validation, so the database is the one to refuse what it cannot hold."""
    m = json.loads(raw)
    return ReportRecord(
        report_id=m["report_id"],
        source="hotline",
        category="other",
        category_inferred=False,
        text=m["text"],
        ts_ns=int(now.timestamp() * 1e9),
        area="g-riverside-01",
    )


def test_a_report_postgresql_refuses_is_dead_lettered_and_the_rest_is_saved(
    broker: EmbeddedBroker, postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL text cannot hold U+0000 (psycopg DataError): that report alone is dead-lettered."""
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=postgres_url,
        batch_max_messages=100,
        checkpoint_interval_s=0.5,
    )
    ensure_topics(settings)
    reports = [{"report_id": f"r-{i:03d}", "text": f"water on the road {i}"} for i in range(40)]
    reports[17]["text"] = "water\x00on the road"
    produce(
        settings,
        settings.topic_reports,
        [(str(r["report_id"]).encode(), json.dumps(r).encode(), None) for r in reports],
    )
    svc: Services = build_services(settings)
    group = f"{settings.consumer_group}-reports"
    worker = IngestWorker(
        consumer=Consumer(consumer_config(settings, **{"group.id": group})),
        topic=settings.topic_reports,
        deadletter_topic=settings.topic_deadletter,
        parse=_unvalidated_report,
        write=svc.reports.save,
        sink=ReportSink(
            detector_factory=lambda: ReportBurstDetector(svc.taxonomy, window_s=600),
            warnings=svc.warnings,
            checkpoints=svc.checkpoints,
        ),
        deadletter=svc.producer,
        batch_max_messages=settings.batch_max_messages,
        batch_max_wait_s=settings.batch_max_wait_s,
        checkpoint_interval_s=settings.checkpoint_interval_s,
    )
    try:
        with running(worker):
            wait_until(
                lambda: all_committed(settings, settings.topic_reports, group, len(reports)),
                timeout_s=60,
                what="the reports to move past the refused one",
            )
        assert svc.reports.count() == len(reports) - 1
        with svc.engine.connect() as conn:
            ids = conn.execute(sa.text("SELECT report_id FROM reports")).scalars().all()
        assert "r-017" not in ids
        dead = read_topic(settings.kafka_bootstrap, settings.topic_deadletter, 1)
        assert [json.loads(m.value())["report_id"] for m in dead] == ["r-017"]
        assert dict(dead[0].headers())["reason"].decode() == (
            "store refused: DataError: PostgreSQL text fields cannot contain NUL (0x00) bytes"
        )
    finally:
        svc.close()


def _local_settings(broker: EmbeddedBroker, tmp_path: Path, **update: Any) -> Settings:
    """The test's broker, a SQLite state database and store, checkpoints every half second."""
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        checkpoint_interval_s=0.5,
    ).model_copy(update=update)


def _slow_restores(monkeypatch: pytest.MonkeyPatch, svc: Services, started: threading.Event) -> None:
    """A slow state database: its real loads, each delayed 0.6 s (fault injection, no mock), four
    series a load, so restoring 40 series takes about 6 s. ``started`` is set at the first load."""
    monkeypatch.setattr(alerts.sinks, "RESTORE_CHUNK", 4)
    load = svc.checkpoints.load

    def slow_load(keys: Any) -> dict[str, dict[str, Any]]:
        started.set()
        time.sleep(0.6)
        return load(keys)

    svc.checkpoints.load = slow_load  # type: ignore[method-assign]


def test_a_first_batch_restoring_longer_than_the_poll_interval_keeps_its_partitions(
    broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker handed many series restores each within its first batch, which can outlast
    ``max.poll.interval.ms``: librdkafka then leaves the group, and every retry of that batch
    restores again. Here a slow state database makes the first batch's restores take about 6 s
    against a 3 s interval.
    """
    caplog.set_level(logging.INFO, logger="ingest.consumer")
    settings = _local_settings(
        broker, tmp_path, kafka_max_poll_interval_ms=3000, kafka_session_timeout_ms=2000
    )
    ensure_topics(settings)
    svc = build_services(settings)
    _slow_restores(monkeypatch, svc, threading.Event())
    worker = build_ingest_worker(svc)
    readings = quiet_readings(minutes=5, sensors=40, end=datetime.now(UTC) - timedelta(minutes=1))
    topic, group = settings.topic_readings, settings.consumer_group
    try:
        with running(worker):
            wait_until(lambda: bool(worker.owned), timeout_s=30, what="the worker to own partitions")
            produce(settings, topic, as_json(readings))
            wait_until(
                lambda: all_committed(settings, topic, group, len(readings)),
                timeout_s=60,
                what="every reading to be committed",
            )
            said = [r.getMessage() for r in caplog.records if r.name == "ingest.consumer"]
            engine = worker.sink.engine  # type: ignore[attr-defined]
            assert all(engine.known(s.id) for s in CATALOG.sensors[:40])
        assert worker.stats.abandoned == 0
        assert not [m for m in said if f"{topic}: lost" in m or f"{topic}: revoked" in m], said
        assert [m for m in said if m.startswith(f"{topic}: assigned")] != []
    finally:
        svc.close()


def test_a_rebalance_while_a_batch_restores_voids_the_batch_and_loses_nothing(
    broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second worker joins while the first is restoring its first batch's series: the first's
    poll between restores sees the rebalance, drops the batch (and what the poll read past it) and
    reads on from its committed offsets; every reading is handled, stored and committed once the
    two share the stream. Batches of 100 of the 200 readings leave the polls something to read.
    """
    settings = _local_settings(broker, tmp_path, batch_max_messages=100)
    ensure_topics(settings)
    svc_a, svc_b = build_services(settings), build_services(settings)
    restoring = threading.Event()
    _slow_restores(monkeypatch, svc_a, restoring)
    first, second = build_ingest_worker(svc_a), build_ingest_worker(svc_b)
    readings = quiet_readings(minutes=5, sensors=40, end=datetime.now(UTC) - timedelta(minutes=1))
    topic, group = settings.topic_readings, settings.consumer_group
    try:
        with running(first):
            wait_until(lambda: len(first.owned) == 3, timeout_s=30, what="the first worker to own the topic")
            produce(settings, topic, as_json(readings))
            wait_until(restoring.is_set, timeout_s=30, what="the first batch's restores")
            with running(second):
                wait_until(
                    lambda: first.stats.abandoned >= 1, timeout_s=30, what="the first to drop its batch"
                )
                wait_until(
                    lambda: all_committed(settings, topic, group, len(readings)),
                    timeout_s=90,
                    what="every reading to be committed",
                )
                assert first.owned and second.owned
        assert first.stats.consumed + second.stats.consumed == len(readings)  # none handled twice
        store = open_store(settings.store_url)
        try:
            assert store.count() == len(readings)
        finally:
            store.close()
    finally:
        svc_a.close()
        svc_b.close()
