"""The ingest loop: poll, validate, write, dead-letter, score, checkpoint, commit.

The delivery guarantee lives here, so the order matters and is numbered:

1. poll a batch from the consumer group;
2. validate every message; refused ones are set aside with the reason
   (a reading refused only for an impossible value still goes to the sink in
   4, unstored, as evidence of its sensor's health);
3. write the accepted items (readings to the store, reports to the state
   database); only the store's "yes" lets us go on. Items the store refuses
   (``ingest.errors``: REFUSED) are found by splitting the batch in halves
   until each refused item stands alone, and are set aside with the store's
   reason; the rest of the batch is written. Everything set aside in 2 and 3
   is produced to the dead-letter topic with the reason and the original
   bytes, and the broker must ack it;
4. hand the stored items to the sink (scoring and warnings);
5. at each checkpoint (every ``checkpoint_interval_s``, once a poll finds
   nothing more to read, on a rebalance and on shutdown): the sink saves its
   detector state, then the offsets of every batch handled since the last
   checkpoint are committed, synchronously, for
   the partitions this consumer still owns and for no other. A sink that can
   stage its checkpoint (``StagedSink``) captures the state on this thread
   and saves it on another while later batches are handled; the offsets of
   the batches captured are committed once that save has succeeded, and no
   second save starts before. A save that fails rewinds as a failed
   checkpoint does. Rebalances, rewinds and shutdown first wait for the save
   in flight, so what a partition's next owner loads is complete;
6. at a revoke and at shutdown, once everything handled is checkpointed, a
   sink that can (``HandingOverSink``) makes its state cheaper to restore for
   the next owner (snapshots instead of logs to replay). It moves no offset.

A crash anywhere before 5 means Kafka delivers those batches again: store
writes overwrite the same points and the detectors resume from the state
saved with the committed offsets, so nothing is lost, nothing is counted
twice, and the replay scores as the uninterrupted stream would have. Saving
state per checkpoint rather than per batch keeps the cost of detector state
independent of the message rate.

Failures never drop data:
- a TRANSIENT failure of the store or the dead-letter producer pauses the
  partitions (staying in the group) and retries the same batch with
  exponential backoff and jitter, for as long as it takes;
- a rebalance while a batch is being retried abandons the batch: it may hold
  messages of partitions that are no longer ours, and partitions assigned
  meanwhile were not paused, so ``poll`` may have read past messages nobody
  handled. The batch is dropped, the state covering earlier batches is
  checkpointed, and the consumer seeks its whole assignment back to the
  committed offsets, so every message is read again by its owner;
- a TRANSIENT failure of the sink leaves its in-memory state untrustworthy:
  the consumer rewinds to the last committed offsets and replays, after a
  backoff, as often as needed (the stored items are written again, which
  overwrites them);
- anything FATAL, including a sink failure that is not transient (a bug, or
  a database refusing the sink's own rows), stops the worker with the
  offsets of the failing batch uncommitted. We chose stopping over skipping a
  "poison" batch's scoring: a batch scored around silently is a warning the
  city never sees, while a stopped worker is named by /readyz, ends the
  process with a non-zero status, and replays the batch once it is fixed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception, wait_random_exponential

from config.positions import Position
from ingest.bus import MessageBus
from ingest.errors import Failure, classify, is_transient, reason
from ingest.producer import ConfirmedProducer
from ingest.validation import Invalid

log = logging.getLogger(__name__)

# How recent a lag figure must be to say the worker is caught up: the silence check's round
# (``app.silence.CHECK_EVERY_S``). A working loop measures every ``lag_interval_s`` (2 s), also
# while it waits out a retry, and a batch of the default size takes a few seconds at most.
LAG_FRESH_S = 30.0

# A worker that has caught up checkpoints at once, but at most this often: readings further apart than
# the batch window leave it idle between every two of them, and each checkpoint is a transaction in
# the state database and a synchronous commit to the broker.
IDLE_CHECKPOINT_SPACING_S = 1.0

# A step of a batch that may run long (restoring the series a batch brings) lets the worker poll at
# most this often (``IngestWorker.keep_alive``): far inside the shortest max.poll.interval (10 s,
# ``citywarn run`` on Tansu), and each such poll costs well under a millisecond.
KEEP_ALIVE_EVERY_S = 1.0

Item = TypeVar("Item")
ItemContra = TypeVar("ItemContra", contravariant=True)
PartitionKey = tuple[str, int]


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


class StagedSink(Protocol):
    """A sink whose checkpoint can be split: the capture on the worker's thread, the save on another.

    A checkpoint of thousands of series is a write of seconds under load; made in line, every reading
    that arrives meanwhile waits for it (the produce-to-warning latency's tail at 5,000 readings/s).
    """

    def stage_checkpoint(self, *, now: datetime) -> Callable[[], None]:
        """Capture the state of every batch processed so far; the returned call saves it, from any
        thread, while later batches are processed. If it fails, ``reset`` follows."""
        ...


class HandingOverSink(Protocol):
    """A sink that can make its state cheaper to restore, for a stop or a revoke.

    Called only when every batch handled is checkpointed; it must not move a position, and a
    failure in it must leave what is saved restorable (the worker goes on to stop or rebalance).
    """

    def hand_over(self) -> None: ...


class IngestObserver(Protocol):
    """Told what each handled batch did, for the process's metrics (``app.metrics``).

    Called on the worker's thread; it must not block. Batches abandoned or
    rewound are not reported: they are read again and reported then.
    """

    def batch_handled(
        self, *, consumed: int, stored: int, dead_lettered: Sequence[tuple[str, str]], seconds: float
    ) -> None:
        """``dead_lettered`` holds (reason class, field) per refused message: "invalid" with the first
        field validation named, or "store_refused" with ""."""
        ...

    def store_written(self, seconds: float) -> None:
        """One call to the store, whether it succeeded or not."""
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
    abandoned: int = 0
    rebalances: int = 0
    last_batch_at: datetime | None = None


@dataclass(frozen=True)
class ConsumerHealth:
    """For /readyz: how far behind this consumer is, and how long since it stored a batch."""

    partitions: int
    lag: int | None
    last_stored_batch_age_s: float | None


@dataclass(frozen=True)
class _SetAside:
    """A message that goes to the dead-letter topic instead of the store."""

    msg: Message
    raw: bytes
    reason: str
    # For metrics: why, as a bounded class ("invalid" or "store_refused"), and the first field at fault.
    cause: tuple[str, str] = ("invalid", "")


@dataclass
class _Save:
    """A staged checkpoint being saved on a thread of its own, and the offsets it covers."""

    offsets: dict[PartitionKey, int]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class _BatchAbandoned(Exception):
    """A rebalance (or shutdown) came while the batch in hand was being retried."""


class IngestWorker(Generic[Item]):
    """One consumer of one topic: readings (into the store) or reports (into the state database)."""

    def __init__(
        self,
        *,
        consumer: MessageBus,
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
        lag_interval_s: float = 2.0,
        observer: IngestObserver | None = None,
    ) -> None:
        self._consumer = consumer
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
        self.lag_interval_s = lag_interval_s
        self.stats = IngestStats()
        self.observer = observer
        # Read by other threads (readyz, tests): replaced whole, never mutated in place.
        self.owned: frozenset[PartitionKey] = frozenset()
        self.lag: int | None = None
        self.partition_lag: dict[PartitionKey, int] = {}  # the parts of ``lag``, replaced whole
        self.lag_measured_at: float | None = None  # time.monotonic() of the last measurement
        self.holding = False  # a batch (or its dead letters) waits for a failed step to succeed
        self.lag_fresh_s = LAG_FRESH_S
        self._pending: dict[PartitionKey, int] = {}  # next offset to commit per owned partition
        self._generation = 0  # bumped by every rebalance callback
        self._polled_at = time.monotonic()  # the last poll librdkafka counts for max.poll.interval
        self._carried: list[Message] = []  # read by ``keep_alive`` during a batch, for the next one
        self._lost = False
        self._last_checkpoint = time.monotonic()
        self._last_lag = float("-inf")
        self._sink_backoff = 0.0
        self._stop = threading.Event()
        self._saving: _Save | None = None  # at most one staged checkpoint in flight
        self._closing = False  # the revoke that closing makes hands nothing over: ``run`` did

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand and a final checkpoint finish first."""
        self._stop = stop
        self._consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        try:
            polled_at, last_empty = time.monotonic(), True
            while not stop.is_set():
                # The wait to fill a batch runs from the end of the last poll, not from this one: the
                # readings that came while the last batch was handled have waited that long already,
                # and at 5,000/s a full wait after every batch added it to each reading's latency.
                wait = self.batch_max_wait_s
                if not last_empty:
                    wait = max(0.0, polled_at + wait - time.monotonic())
                msgs = self._next_batch(wait)
                polled_at, last_empty = time.monotonic(), not msgs
                self._polled_at = polled_at
                idle = last_empty and wait >= self.batch_max_wait_s  # a whole window brought nothing
                if self._lost:
                    # Uncheckpointed state was dropped with the lost partitions: read the rest again.
                    self._lost = False
                    self._seek_to_committed()
                elif msgs:
                    self._handle(msgs)
                if self._saving is not None and self._saving.done.is_set():
                    self._finish_save()
                if self._pending and self._saving is None and self._checkpoint_due(idle=idle):
                    self._start_checkpoint()
                self._measure_lag()
            saved = self._finish_save()
            if self._pending:
                saved = self._checkpoint()
            if saved:  # every batch handled is in the state database (its offsets may not be committed)
                self._hand_over()
        finally:
            self._await_save()  # no save may land once the worker has stopped
            self._closing = True
            self._consumer.close()

    def _checkpoint_due(self, *, idle: bool) -> bool:
        """Every ``checkpoint_interval_s``, and sooner once the worker has caught up (``idle``).

        Offsets are committed only with a checkpoint, and the lag that readiness and metrics report
        counts from them: a worker that drained a backlog looked behind, and would read its last
        batches again after a crash, until the interval ran out (up to 5 s of readings). Caught up,
        it has nothing else to do, so it checkpoints at once, at most every ``IDLE_CHECKPOINT_SPACING_S``.
        """
        since = time.monotonic() - self._last_checkpoint
        return since >= self.checkpoint_interval_s or (idle and since >= IDLE_CHECKPOINT_SPACING_S)

    def health(self, now: datetime) -> ConsumerHealth:
        last = self.stats.last_batch_at
        return ConsumerHealth(
            partitions=len(self.owned),
            lag=self.lag,
            last_stored_batch_age_s=None if last is None else max(0.0, (now - last).total_seconds()),
        )

    def _handle(self, msgs: list[Message]) -> None:
        started = time.perf_counter()
        now = self.clock()
        generation = self._generation
        accepted: list[tuple[Message, Item]] = []
        refused: list[_SetAside] = []
        observed: list[tuple[Message, Item]] = []  # refused, not stored, but the sink judges them
        # The last offset of each partition in the batch, which comes in each partition's order (the
        # carried messages first): taken in this pass, a second pass over the batch was 1 % of a worker.
        last: dict[tuple[str | None, int | None], int | None] = {}
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            last[msg.topic(), msg.partition()] = msg.offset()
            parsed = self.parse(msg.value() or b"", now)
            if isinstance(parsed, Invalid):
                field = parsed.rejections[0].field.split(".")[0] if parsed.rejections else ""
                refused.append(_SetAside(msg, parsed.raw, parsed.reason, ("invalid", field)))
                if parsed.observed is not None:
                    observed.append((msg, parsed.observed))  # type: ignore[arg-type]
            else:
                accepted.append((msg, parsed))
        try:
            stored, refused_by_store = self._write_isolating(accepted, generation)
            if refused_by_store:
                log.warning(
                    "store refused %d item(s), dead-lettered: %s",
                    len(refused_by_store),
                    refused_by_store[0].reason,
                )
            refused += refused_by_store
            self._retrying(lambda: self._dead_letter(refused), generation, "dead-letter produce")
            if self._generation != generation:
                raise _BatchAbandoned("rebalanced while the batch was retried")
        except _BatchAbandoned as why:
            self._abandon_batch(str(why))
            return
        handed = stored + observed
        positions = [(m.partition(), m.offset()) for m, _ in handed]
        try:
            self.sink.process([item for _, item in handed], positions, now=now)  # type: ignore[arg-type]
        except _BatchAbandoned as why:  # a rebalance during ``keep_alive``
            self._abandon_batch(str(why))
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._rewind(f"sink failed: {exc}")
            return
        self._sink_backoff = 0.0
        for (topic, partition), offset in last.items():
            if topic is None or partition is None or offset is None:
                continue  # never for a message without an error; the client's types allow it
            key = (topic, partition)
            if key in self.owned:
                self._pending[key] = max(self._pending.get(key, 0), offset + 1)
        self.stats.consumed += len(msgs)
        self.stats.stored += len(stored)
        self.stats.dead_lettered += len(refused)
        self.stats.batches += 1
        self.stats.last_batch_at = now
        if self.observer is not None:
            self.observer.batch_handled(
                consumed=len(msgs),
                stored=len(stored),
                dead_lettered=[r.cause for r in refused],
                seconds=time.perf_counter() - started,
            )

    def _write_isolating(
        self, entries: list[tuple[Message, Item]], generation: int
    ) -> tuple[list[tuple[Message, Item]], list[_SetAside]]:
        """Write ``entries``; if the store refuses some, halve until each refused one stands alone.

        A batch with k refused items of n costs about 2k*log2(n) writes; the
        halves that pass are written once more each, which overwrites.
        """
        if not entries:
            return [], []
        try:
            self._retrying(
                lambda: self._timed_write([item for _, item in entries]), generation, "store write"
            )
            return entries, []
        except _BatchAbandoned:
            raise
        except Exception as exc:
            if classify(exc) is not Failure.REFUSED:
                raise
            if len(entries) == 1:
                msg = entries[0][0]
                refusal = f"store refused: {reason(exc)}"
                return [], [_SetAside(msg, msg.value() or b"", refusal, ("store_refused", ""))]
        half = len(entries) // 2
        stored_left, refused_left = self._write_isolating(entries[:half], generation)
        stored_right, refused_right = self._write_isolating(entries[half:], generation)
        return stored_left + stored_right, refused_left + refused_right

    def _timed_write(self, items: list[Item]) -> None:
        started = time.perf_counter()
        try:
            self.write(items)
        finally:
            if self.observer is not None:
                self.observer.store_written(time.perf_counter() - started)

    def _dead_letter(self, refused: list[_SetAside]) -> None:
        if not refused:
            return
        self.deadletter.send_all(
            self.deadletter_topic,
            (
                (
                    r.msg.key(),
                    r.raw,
                    [
                        ("reason", r.reason.encode()),
                        ("source", f"{r.msg.topic()}/{r.msg.partition()}/{r.msg.offset()}".encode()),
                    ],
                )
                for r in refused
            ),
        )

    def _retrying(self, step: Callable[[], object], generation: int, what: str) -> None:
        """Run ``step``, retrying TRANSIENT failures paused but alive in the group.

        Retries go on until the step succeeds; only a rebalance or shutdown
        ends them, with ``_BatchAbandoned``. Other failures are raised as they are.
        """

        def abandon(_state: RetryCallState) -> bool:
            return self._stop.is_set() or self._generation != generation

        def log_retry(state: RetryCallState) -> None:
            self.stats.retries += 1
            self.holding = True
            delay = state.next_action.sleep if state.next_action else 0.0
            exc = state.outcome.exception() if state.outcome else None
            # Hundredths: with full jitter the first waits are often under a tenth of a second.
            log.warning("%s failed, retrying in %.2fs: %s", what, delay, exc)

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=0.2, max=self.max_backoff_s),
            stop=abandon,
            sleep=lambda seconds: self._pause_for(seconds, generation),
            before_sleep=log_retry,
        )
        try:
            retrying(step)
        except RetryError as exc:
            raise _BatchAbandoned(f"{what} stopped retrying: shutdown or rebalance") from exc
        finally:
            self.holding = False

    def _pause_for(self, seconds: float, generation: int) -> None:
        """Wait without reading: paused partitions, while ``poll`` keeps us in the group.

        A rebalance ends the wait early: partitions assigned meanwhile are not
        paused, and what ``poll`` returns from them is dropped here, which is
        safe only because the batch is then abandoned and the consumer seeks back.
        """
        self._consumer.pause(self._consumer.assignment())
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not self._stop.is_set() and self._generation == generation:
                self._consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))
                self._measure_lag()
        finally:
            self._consumer.resume(self._consumer.assignment())

    def keep_alive(self) -> None:
        """Keep the worker in the group through a long step of the batch in hand; call it between parts.

        librdkafka leaves the group when ``max.poll.interval.ms`` passes without a poll, and a batch
        is handled between two polls: a worker handed thousands of series restores each from its
        checkpoint within its first batch, which can take longer than that. At most every
        ``KEEP_ALIVE_EVERY_S`` this polls for one message, which the next batch takes first. It does
        not pause the partitions to read nothing, as ``_pause_for`` does: a pause throws away what
        librdkafka has fetched ahead, and the next batch then found nothing, waited out the whole
        batch window and fetched it all again. A rebalance during the poll voids the batch
        (``_BatchAbandoned``), as during a held batch's retries: it is read again from the
        committed offsets.
        """
        if time.monotonic() - self._polled_at < KEEP_ALIVE_EVERY_S:
            return
        generation = self._generation
        self._carried += self._consumer.consume(1, 0)
        self._polled_at = time.monotonic()
        if self._generation != generation:
            raise _BatchAbandoned("rebalanced while the batch was handled")

    def _next_batch(self, wait: float) -> list[Message]:
        """What ``keep_alive`` carried over, then up to a batch's worth more within ``wait``.

        The carried messages come first: they precede what the consumer returns now in their
        partitions. A revoke during the consume drops those of the partitions it takes
        (``_on_revoke``).
        """
        msgs = self._consumer.consume(max(1, self.batch_max_messages - len(self._carried)), wait)
        if self._carried:
            msgs, self._carried = self._carried + msgs, []
        return msgs

    def _abandon_batch(self, why: str) -> None:
        """Drop the batch in hand; checkpoint what earlier batches covered; read on from there."""
        log.warning("%s: dropping the batch in hand, it is read again from the committed offsets", why)
        self.stats.abandoned += 1
        # Seek even if the checkpoint failed: what it did not commit is read again, never skipped.
        self._checkpoint()
        self._seek_to_committed()

    def _rewind(self, why: str) -> None:
        """Drop uncheckpointed state and go back to the committed offsets, after a backoff."""
        self._finish_save()
        self._sink_backoff = min(max(0.1, self._sink_backoff * 2), self.max_backoff_s)
        log.warning("%s; rewinding to the last checkpoint in %.1fs", why, self._sink_backoff)
        self.stats.rewinds += 1
        self.sink.reset()
        self._pending.clear()
        self._seek_to_committed()
        self._pause_for(self._sink_backoff, self._generation)

    def _seek_to_committed(self) -> None:
        self._carried = []  # read again from the committed offsets
        assignment = self._consumer.assignment()
        if not assignment:
            return
        for tp in self._consumer.committed(assignment, timeout=10):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def _start_checkpoint(self) -> None:
        """Checkpoint in line, or, for a ``StagedSink``, capture now and save on a thread of its own."""
        stage = getattr(self.sink, "stage_checkpoint", None)
        if stage is None:
            self._checkpoint()
            return
        try:
            save = stage(now=self.clock())
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._rewind(f"checkpoint failed: {exc}")
            return
        staged = _Save(dict(self._pending))
        self._pending.clear()
        self._last_checkpoint = time.monotonic()
        self._saving = staged
        threading.Thread(target=self._save_on_thread, args=(staged, save), name="checkpoint-save").start()

    @staticmethod
    def _save_on_thread(staged: _Save, save: Callable[[], None]) -> None:
        try:
            save()
        except BaseException as exc:  # handed to the worker's thread by _finish_save
            staged.error = exc
        finally:
            staged.done.set()

    def _await_save(self) -> _Save | None:
        """Wait for the staged save in flight, if any, and take it off the worker."""
        staged, self._saving = self._saving, None
        if staged is not None:
            staged.done.wait()
        return staged

    def _commit_saved(self, offsets: dict[PartitionKey, int]) -> bool:
        """Commit offsets whose state is saved, of the partitions still ours. False if the broker refused."""
        owned = [TopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in self.owned]
        try:
            if owned:
                self._consumer.commit(offsets=owned, asynchronous=False)
        except KafkaException as exc:
            # The state is saved; the replay of these offsets skips what it already learned.
            log.warning("offset commit failed, those batches will be replayed: %s", exc)
            return False
        self.stats.checkpoints += 1
        return True

    def _finish_save(self) -> bool:
        """Wait for the staged save in flight; commit what it covers, or rewind if it failed.
        False if it failed or its offsets were not committed."""
        staged = self._await_save()
        if staged is None:
            return True
        if staged.error is not None:
            if not is_transient(staged.error):
                raise staged.error
            self._rewind(f"checkpoint failed: {staged.error}")
            return False
        return self._commit_saved(staged.offsets)

    def _checkpoint(self) -> bool:
        """Save the sink's state, then commit what it covers. False if either failed."""
        if not self._finish_save():
            return False
        now = self.clock()
        try:
            self.sink.checkpoint(now=now)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._rewind(f"checkpoint failed: {exc}")
            return False
        saved, self._pending = self._pending, {}
        self._last_checkpoint = time.monotonic()
        return self._commit_saved(saved)

    def _measure_lag(self) -> None:
        """Messages on our partitions not yet committed: the log end minus the committed offset.

        The log end is the high watermark, or our own position if that is
        further: Tansu answers ListOffsets with the base offset of the last
        record batch plus one (measured), which lags the true end by up to one
        producer batch. Runs on the worker's thread (the consumer is not
        shared), at most every ``lag_interval_s``; readers see the last value,
        or None if it could not be measured.
        """
        if time.monotonic() - self._last_lag < self.lag_interval_s:
            return
        self._last_lag = time.monotonic()
        owned = [TopicPartition(t, p) for t, p in sorted(self.owned)]
        try:
            parts: dict[PartitionKey, int] = {}
            if owned:
                positions = {(tp.topic, tp.partition): tp.offset for tp in self._consumer.position(owned)}
                for tp in self._consumer.committed(owned, timeout=2):
                    low, high = self._watermarks(TopicPartition(tp.topic, tp.partition))
                    end = max(high, positions.get((tp.topic, tp.partition), -1))
                    parts[(tp.topic, tp.partition)] = max(0, end - (tp.offset if tp.offset >= 0 else low))
            self.partition_lag = parts
            self.lag = sum(parts.values())
            self.lag_measured_at = time.monotonic()
        except KafkaException as exc:
            log.debug("lag not measured: %s", exc)
            self.partition_lag = {}
            self.lag = None

    def caught_up(self, within: int) -> bool:
        """No batch held in retries, and at most ``within`` messages of ours not yet committed, as
        measured in the last ``lag_fresh_s``.

        The lag alone said caught up through a store outage: the held batch is all the worker has
        read, so the lag counts only the readings that came meanwhile, far fewer than a batch, while
        every sensor's last stored reading grows old. Freshness covers a loop that stopped measuring.
        """
        lag, at = self.lag, self.lag_measured_at
        if self.holding or lag is None or at is None:
            return False
        return time.monotonic() - at <= self.lag_fresh_s and lag <= within

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        """The partition's low and high watermarks as the last fetch response gave them, or asked of the
        broker if no fetch has given them yet. Asking each time cost a round trip per partition every
        ``lag_interval_s``, a tenth of the worker's time at 5,000 readings/s (py-spy), a pause in which
        no batch is handled."""
        low, high = self._consumer.get_watermark_offsets(tp, cached=True)
        if low < 0 or high < 0:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=2)
        return low, high

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self._rebalanced()
        self.owned = self.owned | {(p.topic, p.partition) for p in partitions}
        log.info("%s: assigned partitions %s", self.topic, [p.partition for p in partitions])

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        """Checkpoint before the partitions go, so their next owner starts where we stopped."""
        self._rebalanced()
        log.info("%s: revoked partitions %s", self.topic, [p.partition for p in partitions])
        staged = self._await_save()
        saved = True  # every batch handled is in the state database: only then may the sink hand over
        if staged is not None and staged.error is not None:
            # What the failed save held is lost, so no later offset may be committed: read again.
            log.warning("checkpoint save failed before a revoke, read again: %s", staged.error)
            self._pending.clear()
            self._lost = True
            saved = False
        elif staged is not None:
            self._commit_saved(staged.offsets)
        if self._pending:
            try:
                self.sink.checkpoint(now=self.clock())
                offsets = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:
                log.warning("checkpoint on revoke failed, the new owner replays: %s", exc)
                saved = False
            self._pending.clear()
            self._last_checkpoint = time.monotonic()
        if saved and not self._closing:
            self._hand_over()
        self._forget(partitions)
        # Series of the remaining partitions reload from the fresh checkpoint.
        self.sink.reset()

    def _hand_over(self) -> None:
        """Let a sink that can (``HandingOverSink``) spare the partitions' next owner its replay."""
        hand_over = getattr(self.sink, "hand_over", None)
        if hand_over is not None:
            hand_over()

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        """Partitions already owned by someone else: committing would be wrong, so just forget."""
        self._rebalanced()
        log.warning("%s: lost partitions %s", self.topic, [p.partition for p in partitions])
        self._await_save()  # its state is saved, its offsets not committed: the replay skips what it learned
        self._forget(partitions)
        self._pending.clear()
        self.sink.reset()
        self._lost = True

    def _forget(self, partitions: list[TopicPartition]) -> None:
        """No longer ours: their next owner, maybe us again, reads them from the committed offsets."""
        gone = {(p.topic, p.partition) for p in partitions}
        self.owned = self.owned - gone
        self._carried = [m for m in self._carried if (m.topic(), m.partition()) not in gone]

    def _rebalanced(self) -> None:
        self._generation += 1
        self.stats.rebalances += 1
