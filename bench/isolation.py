"""Settings for a pipeline that shares the real servers with others but no data.

Every caller gets its own topics, consumer group and (through the URLs it
passes) store and state database; the tests and the benchmarks both use it.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from config.catalog import Catalog, load_catalog
from config.settings import CITY_DIR, Settings
from ingest.keys import keyed_readings, sensor_areas

FAST_GROUP_JOIN = {"kafka_max_poll_interval_ms": 10_000, "kafka_session_timeout_ms": 6_000}


def isolated_settings(*, bootstrap: str, store_url: str, database_url: str, **extra: Any) -> Settings:
    tag = uuid.uuid4().hex[:10]
    defaults: dict[str, Any] = {"topic_partitions": 3, "batch_max_wait_s": 0.2, **FAST_GROUP_JOIN}
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_readings=f"readings-{tag}",
        topic_reports=f"reports-{tag}",
        topic_deadletter=f"deadletter-{tag}",
        consumer_group=f"group-{tag}",
        store_url=store_url,
        database_url=database_url,
        **{**defaults, **extra},
    )


@cache
def _bundled_areas() -> dict[str, str]:
    return sensor_areas(load_catalog(CITY_DIR / "sensors.yaml"))


def as_json(
    messages: list[dict[str, Any]], catalog: Catalog | None = None
) -> list[tuple[bytes, bytes, None]]:
    """Readings as messages keyed as every producer keys them (``ingest.keys``), by ``catalog``'s areas.

    The bundled catalog by default, which is the one the callers' readings come from.
    """
    areas = _bundled_areas() if catalog is None else sensor_areas(catalog)
    return list(keyed_readings(messages, areas))
