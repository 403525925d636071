"""Settings for a pipeline that shares the real servers with others but no data.

Every caller gets its own topics, consumer group and (through the URLs it
passes) store and state database; the tests and the benchmarks both use it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from config.settings import Settings

FAST_GROUP_JOIN = {"kafka_max_poll_interval_ms": 10_000, "kafka_session_timeout_ms": 6_000}


def isolated_settings(*, bootstrap: str, store_url: str, database_url: str, **extra: Any) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_readings=f"readings-{tag}",
        topic_reports=f"reports-{tag}",
        topic_deadletter=f"deadletter-{tag}",
        consumer_group=f"group-{tag}",
        topic_partitions=3,
        store_url=store_url,
        database_url=database_url,
        batch_max_wait_s=0.2,
        **{**FAST_GROUP_JOIN, **extra},
    )


def as_json(messages: list[dict[str, Any]]) -> list[tuple[bytes, bytes, None]]:
    return [(str(m["sensor_id"]).encode(), json.dumps(m).encode(), None) for m in messages]
