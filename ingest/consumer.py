"""The ingest loop: poll, validate, dead-letter, write, score, checkpoint, commit.

The delivery guarantee lives here, so the order matters and is numbered:

1. poll a batch from the consumer group;
2. validate every message; refused ones are produced to the dead-letter topic
   with the reason and the original bytes, and the broker must ack them;
3. write the accepted items (readings to the store, reports to the state
   database); only the store's "yes" lets us go on;
4. hand the stored batch to the sink (scoring and warnings);
5. at each checkpoint (every ``checkpoint_interval_s``, on a rebalance and on
   shutdown): the sink saves its detector state, then the offsets of every
   batch handled since the last checkpoint are committed, synchronously.

A crash anywhere before 5 means Kafka delivers those batches again: store
writes overwrite the same points and the detectors resume from the state
saved with the committed offsets, so nothing is lost, nothing is counted
twice, and the replay scores as the uninterrupted stream would have. Saving
state per checkpoint rather than per batch keeps the cost of detector state
independent of the message rate.

Failures never drop data. When the store or the dead-letter producer fails,
the consumer pauses its partitions (staying in the group) and retries the same
batch with backoff. When the sink fails, its in-memory state is no longer
trustworthy: the consumer rewinds to the last committed offsets and replays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from ingest.producer import ConfirmedProducer
from ingest.validation import Invalid

log = logging.getLogger(__name__)

Position = tuple[int, int]
Item = TypeVar("Item")
ItemContra = TypeVar("ItemContra", contravariant=True)


class BatchSink(Protocol[ItemContra]):
    """What happens to stored batches before their offsets are committed."""

    def process(self, items: Sequence[ItemContra], positions: Sequence[Position], *, now: datetime) -> None:
        """Score and warn; may keep state in memory until ``checkpoint``."""
        ...

    def checkpoint(self, *, now: datetime) -> None:
        """Persist state matching every batch processed so far."""
        ...

    def reset(self) -> None:
        """Forget state not yet checkpointed; it will be rebuilt from the last checkpoint."""
        ...


@dataclass
class IngestStats:
    consumed: int = 0
    stored: int = 0
    dead_lettered: int = 0
    batches: int = 0
    checkpoints: int = 0
    retries: int = 0
    rewinds: int = 0
    last_batch_at: datetime | None = None


class IngestWorker(Generic[Item]):
    """One consumer of one topic: readings (into the store) or reports (into the state database)."""

    def __init__(
        self,
        *,
        consumer_config: dict[str, object],
        topic: str,
        deadletter_topic: str,
        parse: Callable[[bytes, datetime], Item | Invalid],
        write: Callable[[list[Item]], None],
        sink: BatchSink[Item],
        deadletter: ConfirmedProducer,
        batch_max_messages: int,
        batch_max_wait_s: float,
        checkpoint_interval_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_backoff_s: float = 10.0,
    ) -> None:
        self._consumer = Consumer(consumer_config)
        self.topic = topic
        self.deadletter_topic = deadletter_topic
        self.parse = parse
        self.write = write
        self.sink = sink
        self.deadletter = deadletter
        self.batch_max_messages = batch_max_messages
        self.batch_max_wait_s = batch_max_wait_s
        self.checkpoint_interval_s = checkpoint_interval_s
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.stats = IngestStats()
        self._pending: dict[tuple[str, int], int] = {}  # next offset to commit per partition
        self._last_checkpoint = time.monotonic()
        self._sink_backoff = 0.0

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand and a final checkpoint finish first."""
        self._consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        try:
            while not stop.is_set():
                msgs = self._consumer.consume(self.batch_max_messages, self.batch_max_wait_s)
                if msgs:
                    self._handle(msgs, stop)
                if self._pending and time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s:
                    self._checkpoint()
            if self._pending:
                self._checkpoint()
        finally:
            self._consumer.close()

    def _handle(self, msgs: list[Message], stop: threading.Event) -> None:
        now = self.clock()
        items: list[Item] = []
        positions: list[Position] = []
        refused: list[tuple[Message, Invalid]] = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            parsed = self.parse(msg.value() or b"", now)
            if isinstance(parsed, Invalid):
                refused.append((msg, parsed))
            else:
                items.append(parsed)
                positions.append((msg.partition(), msg.offset()))  # type: ignore[arg-type]
        self._with_backpressure(lambda: self._dead_letter(refused), stop, "dead-letter produce")
        self._with_backpressure(lambda: self.write(items), stop, "store write")
        try:
            self.sink.process(items, positions, now=now)
        except Exception as exc:
            self._rewind(f"sink failed: {exc}")
            return
        self._sink_backoff = 0.0
        for msg in msgs:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if msg.error() is None and topic is not None and partition is not None and offset is not None:
                key = (topic, partition)
                self._pending[key] = max(self._pending.get(key, 0), offset + 1)
        self.stats.consumed += len(msgs)
        self.stats.stored += len(items)
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
                self._pause_for(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _pause_for(self, seconds: float) -> None:
        assignment = self._consumer.assignment()
        self._consumer.pause(assignment)
        try:
            # poll() on a paused consumer returns nothing but keeps us in the group.
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                self._consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))
        finally:
            self._consumer.resume(self._consumer.assignment())

    def _rewind(self, why: str) -> None:
        """Drop uncheckpointed state and go back to the committed offsets, after a backoff."""
        self._sink_backoff = min(max(0.1, self._sink_backoff * 2), self.max_backoff_s)
        log.warning("%s; rewinding to the last checkpoint in %.1fs", why, self._sink_backoff)
        self.stats.rewinds += 1
        self.sink.reset()
        self._pending.clear()
        assignment = self._consumer.assignment()
        if assignment:
            for tp in self._consumer.committed(assignment, timeout=10):
                offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        self._pause_for(self._sink_backoff)

    def _checkpoint(self) -> bool:
        """Save the sink's state, then commit what it covers. False if either failed."""
        now = self.clock()
        try:
            self.sink.checkpoint(now=now)
        except Exception as exc:
            self._rewind(f"checkpoint failed: {exc}")
            return False
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The state is saved; the replay of these offsets skips what it already learned.
            log.warning("offset commit failed, those batches will be replayed: %s", exc)
            return False
        finally:
            self._pending.clear()
            self._last_checkpoint = time.monotonic()
        self.stats.checkpoints += 1
        return True

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [p.partition for p in partitions])

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Checkpoint before the partitions go, so their next owner starts where we stopped."""
        log.info("revoked %s", [p.partition for p in partitions])
        if self._pending:
            try:
                self.sink.checkpoint(now=self.clock())
                offsets = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:
                log.warning("checkpoint on revoke failed, the new owner replays: %s", exc)
            self._pending.clear()
            self._last_checkpoint = time.monotonic()
        # Series of the remaining partitions reload from the fresh checkpoint.
        self.sink.reset()

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions already owned by someone else: committing would be wrong, so just forget."""
        log.warning("lost %s", [p.partition for p in partitions])
        self._pending.clear()
        self.sink.reset()
