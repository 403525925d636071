"""The ingest loop: poll, validate, dead-letter, write, score, commit.

The delivery guarantee lives here, so the order matters and is numbered:

1. poll a batch from the consumer group;
2. validate every message; refused ones are produced to the dead-letter topic
   with the reason and the original bytes, and the broker must ack them;
3. write the accepted points to the store; only the store's "yes" lets us go on;
4. hand the stored batch to the sink (scoring, warnings, detector checkpoints);
5. commit the offsets, synchronously.

A crash anywhere before 5 means Kafka delivers the batch again: the store
write is idempotent and the sink skips points its checkpoints already
learned, so nothing is lost and nothing is counted twice. When the store or
the sink fails, the consumer pauses its partitions (staying in the group)
and retries the same batch with backoff: backpressure, never a drop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from ingest.producer import ConfirmedProducer
from ingest.validation import Invalid, ReadingValidator
from store.port import TimeSeriesStore
from store.schemas import Point

log = logging.getLogger(__name__)

Position = tuple[int, int]


class BatchSink(Protocol):
    """What happens to a stored batch before its offsets are committed."""

    def process(self, points: list[Point], positions: list[Position], *, now: datetime) -> None: ...

    def on_revoke(self, partitions: list[int]) -> None: ...


@dataclass
class IngestStats:
    consumed: int = 0
    stored: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retries: int = 0
    last_batch_at: datetime | None = None


class IngestWorker:
    def __init__(
        self,
        *,
        consumer_config: dict[str, object],
        topic: str,
        deadletter_topic: str,
        store: TimeSeriesStore,
        validator: ReadingValidator,
        sink: BatchSink,
        deadletter: ConfirmedProducer,
        batch_max_messages: int,
        batch_max_wait_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_backoff_s: float = 10.0,
    ) -> None:
        self._consumer = Consumer(consumer_config)
        self.topic = topic
        self.deadletter_topic = deadletter_topic
        self.store = store
        self.validator = validator
        self.sink = sink
        self.deadletter = deadletter
        self.batch_max_messages = batch_max_messages
        self.batch_max_wait_s = batch_max_wait_s
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.stats = IngestStats()
        self.assigned = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first."""
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_revoke)
        try:
            while not stop.is_set():
                msgs = self._consumer.consume(self.batch_max_messages, self.batch_max_wait_s)
                if msgs:
                    self._handle(msgs, stop)
        finally:
            self._consumer.close()

    def _handle(self, msgs: list[Message], stop: threading.Event) -> None:
        now = self.clock()
        points: list[Point] = []
        positions: list[Position] = []
        refused: list[tuple[Message, Invalid]] = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            parsed = self.validator.parse(msg.value() or b"", now)
            if isinstance(parsed, Invalid):
                refused.append((msg, parsed))
            else:
                points.append(parsed)
                positions.append((msg.partition(), msg.offset()))  # type: ignore[arg-type]
        self._with_backpressure(lambda: self._dead_letter(refused), stop, "dead-letter produce")
        self._with_backpressure(lambda: self.store.write(points), stop, "store write")
        self._with_backpressure(lambda: self.sink.process(points, positions, now=now), stop, "sink")
        self._commit(msgs)
        self.stats.consumed += len(msgs)
        self.stats.stored += len(points)
        self.stats.dead_lettered += len(refused)
        self.stats.batches += 1
        self.stats.last_batch_at = now

    def _dead_letter(self, refused: list[tuple[Message, Invalid]]) -> None:
        if not refused:
            return
        self.deadletter.send_all(
            self.deadletter_topic,
            (
                (
                    msg.key(),
                    bad.raw,
                    [
                        ("reason", bad.reason.encode()),
                        ("source", f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode()),
                    ],
                )
                for msg, bad in refused
            ),
        )

    def _with_backpressure(self, step: Callable[[], object], stop: threading.Event, what: str) -> None:
        """Retry ``step`` until it succeeds, paused but alive in the group; never skip it."""
        backoff = 0.1
        paused = False
        try:
            while True:
                try:
                    step()
                    return
                except Exception as exc:
                    if stop.is_set():
                        # Shutting down: leave the batch uncommitted; the next owner replays it.
                        raise
                    log.warning("%s failed, retrying in %.1fs: %s", what, backoff, exc)
                    self.stats.retries += 1
                    if not paused:
                        self._consumer.pause(self._consumer.assignment())
                        paused = True
                    # poll() on a paused consumer returns nothing but keeps us in the group.
                    self._consumer.poll(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
        finally:
            if paused:
                self._consumer.resume(self._consumer.assignment())

    def _commit(self, msgs: list[Message]) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        for msg in msgs:
            if msg.error() is None:
                key = (msg.topic(), msg.partition())  # type: ignore[assignment]
                next_offsets[key] = max(next_offsets.get(key, 0), msg.offset() + 1)  # type: ignore[operator]
        # A rebalance during a backpressure wait may have moved partitions away; their
        # new owner replays the batch (idempotently), so only what we still own is ours.
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items() if (t, p) in owned]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit failed, the batch will be replayed: %s", exc)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [p.partition for p in partitions])
        self.assigned.set()

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Batches are committed before the next consume(), so nothing is in flight here.
        log.info("revoked %s", [p.partition for p in partitions])
        self.sink.on_revoke([p.partition for p in partitions])
