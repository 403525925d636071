"""The service's own figures for Prometheus: ``GET /metrics``, open like /healthz (counts, never payloads).

Two registries are served together. Counters and histograms of this process
live on prometheus-client's default registry, created once here: many apps may
run in one process (the tests) and a metric can be registered only once. What
belongs to one app (consumer lag of its consumers, open warnings and
checkpoint age read from its state database when scraped) is a collector on
that app's own registry (``install_metrics``).

Layers below ``app`` never import this module: the ingest loop reports through
``ingest.consumer.IngestObserver`` and the sinks through ``on_signals``.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from alerts import db
from alerts.lifecycle import OPEN
from config.areas import AreaIndex
from ingest.consumer import IngestWorker
from ingest.schemas import Reading, Report
from models.signals import Signal
from store.schemas import Point

log = logging.getLogger(__name__)

# Batches, store writes and requests take from about a millisecond to seconds (a store retrying).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

INGEST_CONSUMED = Counter(
    "citywarn_ingest_consumed",
    "Messages consumed from a topic and handled (stored, or dead-lettered).",
    ["stream"],
)
INGEST_STORED = Counter(
    "citywarn_ingest_stored", "Items written to the store (readings) or state database (reports).", ["stream"]
)
INGEST_DEAD_LETTERED = Counter(
    "citywarn_ingest_dead_lettered",
    "Messages sent to the dead-letter topic: reason invalid (field: the first field validation named) "
    "or store_refused.",
    ["stream", "reason", "field"],
)
INGEST_BATCH_SECONDS = Histogram(
    "citywarn_ingest_batch_duration_seconds",
    "Time to validate, store, dead-letter and score one consumed batch.",
    ["stream"],
    buckets=LATENCY_BUCKETS_S,
)
STORE_WRITE_SECONDS = Histogram(
    "citywarn_store_write_duration_seconds",
    "Time of one write to the store (readings) or state database (reports), failed ones included.",
    ["stream"],
    buckets=LATENCY_BUCKETS_S,
)
READINGS_STORED_BY_DISTRICT = Counter(
    "citywarn_readings_stored_by_district",
    "Readings written to the store, by the district of their sensor's area (written again on a replay).",
    ["district"],
)
SIGNALS = Counter(
    "citywarn_signals",
    "Signals the detectors emitted, by hazard and warning level (none: below every line).",
    ["hazard", "level"],
)
SERIES_RESTORED = Counter(
    "citywarn_series_restored",
    "Series whose scoring state a worker loaded from its checkpoint (at its start, or handed over).",
)
RESTORE_SECONDS = Counter(
    "citywarn_restore_seconds",
    "Time workers spent loading checkpoints and replaying the points logged since (wall clock).",
)
WEBHOOK_DELIVERIES = Counter(
    "citywarn_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, retry, failed, overtaken.",
    ["outcome"],
)
STREAM_CLIENTS = Gauge("citywarn_stream_clients", "GET /v1/stream connections open in this process.")
STREAM_DROPPED = Counter(
    "citywarn_stream_dropped",
    "GET /v1/stream clients disconnected for falling too far behind (they resume by Last-Event-ID).",
)

# Validation names fields of the message models, or "body" when the message is no JSON object; anything
# else would be a new label value per message, so it is counted as "other".
_KNOWN_FIELDS = frozenset({"", "body", *Reading.model_fields, *Report.model_fields})


class IngestMetrics:
    """An ``ingest.consumer.IngestObserver`` for one stream ("readings" or "reports")."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._consumed = INGEST_CONSUMED.labels(stream)
        self._stored = INGEST_STORED.labels(stream)
        self._batch = INGEST_BATCH_SECONDS.labels(stream)
        self._write = STORE_WRITE_SECONDS.labels(stream)

    def batch_handled(
        self, *, consumed: int, stored: int, dead_lettered: Sequence[tuple[str, str]], seconds: float
    ) -> None:
        self._consumed.inc(consumed)
        self._stored.inc(stored)
        for reason, field in dead_lettered:
            INGEST_DEAD_LETTERED.labels(
                self.stream, reason, field if field in _KNOWN_FIELDS else "other"
            ).inc()
        self._batch.observe(seconds)

    def store_written(self, seconds: float) -> None:
        self._write.observe(seconds)


def counting_districts(
    write: Callable[[list[Point]], None], areas: AreaIndex
) -> Callable[[list[Point]], None]:
    """The store's write, counting what it wrote by district, so "no readings from a district" can be
    alerted on. Districts are few, so the label stays small; each starts at 0, because an alert cannot
    see a series that never appeared. Costs one pass over the batch after the write."""
    district_of = {a.id: a.id for a in areas.districts()} | {g.id: g.parent or g.id for g in areas.grids()}
    for district in sorted(set(district_of.values())):
        READINGS_STORED_BY_DISTRICT.labels(district)

    def write_counted(points: list[Point]) -> None:
        write(points)
        for area, n in Tally(p.area for p in points).items():
            READINGS_STORED_BY_DISTRICT.labels(district_of.get(area, "unknown")).inc(n)

    return write_counted


def count_signals(signals: Sequence[Signal]) -> None:
    """The sinks' ``on_signals``: hazards come from the city's files and levels from four colours."""
    for s in signals:
        SIGNALS.labels(s.hazard, s.level or "none").inc()


def count_restored(series: int, seconds: float) -> None:
    """The readings sink's ``on_restored``."""
    SERIES_RESTORED.inc(series)
    RESTORE_SECONDS.inc(seconds)


def count_delivery(outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome).inc()


class AppStateCollector(Collector):
    """One process's gauges, computed when scraped: consumer lag, open warnings, checkpoint age.

    ``consumers`` and ``engine`` are read lazily: before the services are built, or when the
    database does not answer, the database's gauges are left out (and the failure logged) rather
    than failing the whole scrape.
    """

    def __init__(
        self,
        consumers: Callable[[], Mapping[str, IngestWorker[Any]]],
        engine: Callable[[], sa.Engine | None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.consumers = consumers
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        yield self._lag()
        engine = self.engine()
        if engine is None:
            return
        try:
            with engine.connect() as conn:
                open_rows = conn.execute(OPEN_WARNINGS).all()
                newest = conn.execute(sa.select(sa.func.max(db.checkpoints.c.updated_at))).scalar()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics: the state database did not answer: %s", exc)
            return
        warnings = GaugeMetricFamily(
            "citywarn_open_warnings",
            "Warnings open now (pending, active, acknowledged), drills left out.",
            labels=["hazard", "level", "status"],
        )
        for hazard, level, status, count in open_rows:
            warnings.add_metric([hazard, level, status], count)
        yield warnings
        if newest is not None:
            newest = newest if newest.tzinfo is not None else newest.replace(tzinfo=UTC)  # SQLite: naive UTC
            yield GaugeMetricFamily(
                "citywarn_checkpoint_age_seconds",
                "Seconds since the newest detector checkpoint was saved (by any ingest worker).",
                value=max(0.0, (self.clock() - newest).total_seconds()),
            )

    def _lag(self) -> GaugeMetricFamily:
        lag = GaugeMetricFamily(
            "citywarn_consumer_lag_messages",
            "Messages on a partition this process consumes that are not committed yet (log end minus "
            "committed offset), measured by the consumer every few seconds.",
            labels=["stream", "topic", "partition"],
        )
        for stream, worker in self.consumers().items():
            for (topic, partition), behind in sorted(worker.partition_lag.items()):
                lag.add_metric([stream, topic, str(partition)], behind)
        return lag


# One GROUP BY per scrape; drills' warnings (exercise) would read as a real emergency, so they are left out.
OPEN_WARNINGS = (
    sa.select(db.warnings.c.hazard, db.warnings.c.level, db.warnings.c.status, sa.func.count())
    .where(db.warnings.c.status.in_(sorted(OPEN)), db.warnings.c.exercise.is_(False))
    .group_by(db.warnings.c.hazard, db.warnings.c.level, db.warnings.c.status)
)

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """The process's metrics and this app's, in Prometheus' text format."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(REGISTRY) + generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> None:
    """``GET /metrics`` on ``app``, with the app's own collector on a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    services = lambda: getattr(app.state, "services", None)  # noqa: E731 - read at scrape time
    registry.register(
        AppStateCollector(
            consumers=lambda: getattr(app.state, "consumers", {}),
            engine=lambda: getattr(services(), "engine", None),
        )
    )
    app.state.metrics_registry = registry
    app.include_router(router)


def serve_headless(port: int, host: str, collector: AppStateCollector) -> None:
    """``/metrics`` on ``host:port`` for a process without the API (``citywarn ingest``, ``deliver``).

    One collector per such process, so it joins the default registry that the server shows.
    """
    REGISTRY.register(collector)
    start_http_server(port, addr=host)
    log.info("metrics on http://%s:%d/metrics", host, port)
