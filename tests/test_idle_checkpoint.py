"""A worker that has read all there is checkpoints at once, and a trickle does not make it checkpoint
after every reading.

Offsets are committed only with a checkpoint, and lag counts from them: a worker that drained a
backlog looked behind until ``checkpoint_interval_s`` ran out. Real broker (Tansu), real scoring
sink; the interval is set far longer than each test, so every commit seen is an idle one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer

from bench.isolation import as_json, isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.consumer import IDLE_CHECKPOINT_SPACING_S
from ingest.kafka import ensure_topics, producer_config
from ingest.producer import ConfirmedProducer
from tests.factories import CATALOG
from tests.pipeline_harness import committed_total, running_pipeline, wait_until

INTERVAL_S = 120.0  # longer than either test: only a checkpoint of a caught-up worker can commit
WINDOW_S = 0.1
GAP_S = 0.3  # between the trickle's readings: longer than a window and the batch handled in it


def settings_for(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/s.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        checkpoint_interval_s=INTERVAL_S,
        batch_max_wait_s=WINDOW_S,
        topic_partitions=1,
    )
    ensure_topics(settings)
    return settings


def readings(count: int, start: datetime) -> list[tuple[bytes, bytes, None]]:
    """``count`` readings of one sensor, a minute apart, in range."""
    sensor = CATALOG.sensors[0]
    kind = CATALOG.kinds[sensor.kind]
    value = (kind.valid_min + kind.valid_max) / 2
    return as_json(
        [
            {
                "sensor_id": sensor.id,
                "kind": sensor.kind,
                "value": value,
                "ts": (start + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            }
            for i in range(count)
        ]
    )


def committed(settings: Settings) -> int:
    return committed_total(
        settings.kafka_bootstrap, settings.consumer_group, settings.topic_readings, settings.topic_partitions
    )


def test_a_worker_that_drained_its_backlog_commits_it_without_waiting_for_the_interval(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = settings_for(broker, tmp_path)
    backlog = readings(300, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6))
    producer = ConfirmedProducer(producer_config(settings))
    producer.send_all(settings.topic_readings, backlog)
    producer.close()
    with running_pipeline(settings) as (_, worker):
        wait_until(lambda: worker.stats.stored >= len(backlog), timeout_s=60, what="the backlog stored")
        stored_at = time.monotonic()
        # Before, nothing was committed until the interval ran out (here 120 s).
        wait_until(lambda: committed(settings) >= len(backlog), timeout_s=15, what="the backlog committed")
        assert time.monotonic() - stored_at < 15
        assert worker.stats.checkpoints >= 1
        # The lag readiness and metrics report counts from the committed offsets: it says caught up.
        wait_until(lambda: worker.lag == 0, timeout_s=15, what="the lag measured as none")


def test_a_trickle_slower_than_the_batch_window_checkpoints_at_most_once_a_spacing(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Each reading of this trickle comes after an empty poll: one checkpoint each would be 16."""
    settings = settings_for(broker, tmp_path)
    trickle = readings(16, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6))
    with running_pipeline(settings) as (_, worker):
        wait_until(lambda: bool(worker.owned), timeout_s=60, what="the partition's assignment")
        producer = Producer(producer_config(settings, **{"linger.ms": 0}))
        began = time.monotonic()
        for key, value, _ in trickle:  # whole windows come back empty between two readings
            producer.produce(settings.topic_readings, value, key=key)
            assert producer.flush(10) == 0
            time.sleep(GAP_S)
        sent_for = time.monotonic() - began
        wait_until(lambda: worker.stats.stored >= len(trickle), timeout_s=60, what="the trickle stored")
        checkpoints_while_sent = worker.stats.checkpoints
        wait_until(lambda: committed(settings) >= len(trickle), timeout_s=15, what="the trickle committed")
    assert checkpoints_while_sent >= 2  # idle checkpoints came during the trickle, not only after it
    assert checkpoints_while_sent <= sent_for / IDLE_CHECKPOINT_SPACING_S + 2
