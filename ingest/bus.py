"""The message-bus port: what an ingest worker needs from a Kafka consumer.

confluent-kafka's ``Consumer`` satisfies it as it is; tests may hand the worker
any object that does. Rebalance callbacks run inside ``poll``/``consume``/
``close``, on the worker's own thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from confluent_kafka import Message, TopicPartition

RebalanceCallback = Callable[[Any, list[TopicPartition]], None]


class MessageBus(Protocol):
    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None: ...

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]: ...

    def poll(self, timeout: float = -1) -> Message | None:
        """On a paused consumer: no message, but rebalances and group membership are served."""
        ...

    def assignment(self) -> list[TopicPartition]: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, partition: TopicPartition) -> None: ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The offset of the next message ``consume`` returns, per partition."""
        ...

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]: ...

    def commit(self, *, offsets: list[TopicPartition], asynchronous: Literal[False]) -> list[TopicPartition]:
        """Synchronous: returns when the group coordinator has the offsets."""
        ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]: ...

    def close(self) -> None: ...
