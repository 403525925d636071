"""The state database's tables (warnings, their evidence and history, detector checkpoints).

SQLAlchemy Core, so the same statements run on SQLite (the embedded default)
and PostgreSQL. "One open warning per (hazard, area)" is enforced by the
database, not by hope: ``open_key`` holds ``hazard|area`` (a drill's warning
``exercise|hazard|area``) while a warning is open and NULL once resolved, and
a unique constraint on it lets any number of resolved warnings coexist (NULLs
are distinct in both databases).

The schema is created and changed only by the migrations in
``alerts/migrations`` (which also cover the report and model tables of
``store/``); these definitions are what the code reads and writes, and a test
checks that the two agree.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

from alerts.migrations import upgrade_to_head

metadata = sa.MetaData()

warnings = sa.Table(
    "warnings",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("hazard", sa.String(64), nullable=False),
    sa.Column("area", sa.String(128), nullable=False),
    sa.Column("open_key", sa.String(200), unique=True),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("certainty", sa.String(16), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False, default=0.0),
    sa.Column("exercise", sa.Boolean, nullable=False, default=False),
    sa.Column("headline", sa.String(300), nullable=False),
    sa.Column("explanation", sa.Text, nullable=False, default=""),
    sa.Column("recommendations", sa.JSON, nullable=False, default=list),
    sa.Column("signal_count", sa.Integer, nullable=False, default=0),
    sa.Column("first_signal_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_signal_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    # The lifecycle (migration 0004, alerts.lifecycle): flapping holds a warning at its higher state.
    sa.Column("flapping", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("assignee", sa.String(128)),
    sa.Column("responder", sa.String(64)),  # the escalation chain's current tier
    sa.Column("responder_since", sa.DateTime(timezone=True)),
    sa.Column("activated_at", sa.DateTime(timezone=True)),
    # Event time: the readings' clock the lifecycle last evaluated at, and since when the condition
    # has been below the release line.
    sa.Column("clock_at", sa.DateTime(timezone=True)),
    sa.Column("below_since", sa.DateTime(timezone=True)),
    sa.Column("condition_level", sa.String(8)),  # what the latest evidence earns now
    sa.Column("scope", sa.String(16), nullable=False, default="grid", server_default="grid"),
    sa.Column("parent_id", sa.String(36)),  # the roll-up warning that references this one
    sa.Column("covers", sa.JSON, nullable=False, default=list, server_default="[]"),
    sa.Column("muted_by", sa.String(200)),  # "silence:<id>" or "inhibited:<warning id>"
    sa.Column("drill_id", sa.String(36)),
    sa.Index("warnings_status_updated", "status", "updated_at"),
    sa.Index("warnings_area", "area"),
    sa.Index("warnings_parent", "parent_id"),
)

evidence = sa.Table(
    "warning_evidence",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("warning_id", sa.String(36), sa.ForeignKey("warnings.id"), nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(16), nullable=False, default="sensor"),
    sa.Column("sensor_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("detector", sa.String(64), nullable=False),
    sa.Column("level", sa.String(8)),
    sa.Column("details", sa.JSON, nullable=False, default=dict),
    sa.Column("report_ids", sa.JSON, nullable=False, default=list),
    sa.UniqueConstraint("warning_id", "sensor_id", "observed_at", name="evidence_once"),
)

events = sa.Table(
    "warning_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("warning_id", sa.String(36), sa.ForeignKey("warnings.id"), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    # The role of the API key whose label is ``actor``; NULL when the service itself acted.
    sa.Column("actor_role", sa.String(16)),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("from_level", sa.String(8)),
    sa.Column("to_level", sa.String(8), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    # The readings' clock the transition happened at (alerts.lifecycle); NULL for operators' actions.
    sa.Column("event_time", sa.DateTime(timezone=True)),
    sa.Index("warning_events_warning", "warning_id", "id"),
)

# ---- webhooks (migration 0007): integrators' subscriptions, the outbox, and every attempt ----------

subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner", sa.String(32), nullable=False),  # the API key id that created it
    sa.Column("owner_label", sa.String(128), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    # Filters; an empty list matches everything.
    sa.Column("event_types", sa.JSON, nullable=False, default=list),
    sa.Column("hazards", sa.JSON, nullable=False, default=list),
    sa.Column("min_level", sa.String(8)),
    sa.Column("areas", sa.JSON, nullable=False, default=list),  # each with its sub-areas
    sa.Column("include_exercises", sa.Boolean, nullable=False, default=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
    # Signing secrets ("whsec_..."): after a rotation the previous one also signs until it expires.
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("previous_secret", sa.String(128)),
    sa.Column("previous_secret_until", sa.DateTime(timezone=True)),
    # The current run of failed attempts (reset by any 2xx), for automatic disabling.
    sa.Column("failures", sa.Integer, nullable=False, default=0),
    sa.Column("failing_since", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.Index("webhook_subscriptions_owner", "owner"),
)

subscription_events = sa.Table(
    "webhook_subscription_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.String(36), sa.ForeignKey("webhook_subscriptions.id"), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),  # a key's label, or "citywarn"
    sa.Column("action", sa.String(32), nullable=False),  # created, updated, secret_rotated, disabled, ...
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Index("webhook_subscription_events_sub", "subscription_id", "id"),
)

deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    # The outbox: one row per (event, subscription), written in the transaction of the warning
    # change. ``id`` orders a warning's deliveries; ``message_id`` is the ``webhook-id`` header,
    # the same on every attempt and on a replay, so receivers can drop duplicates.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(40), nullable=False),
    sa.Column("subscription_id", sa.String(36), sa.ForeignKey("webhook_subscriptions.id"), nullable=False),
    sa.Column("warning_id", sa.String(36)),  # NULL for a test ping
    sa.Column("event_id", sa.Integer),  # the warning_events row it tells of, if any
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column(
        "payload", sa.Text, nullable=False
    ),  # the exact JSON body, so every attempt signs the same bytes
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, delivered, failed, cancelled
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    # A worker's claim: nobody else attempts the row until the lease runs out (a killed worker's does).
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_latency_ms", sa.Float),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Index("webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("webhook_deliveries_order", "subscription_id", "warning_id", "id"),
    sa.Index("webhook_deliveries_warning", "warning_id"),
    sa.Index("webhook_deliveries_message", "message_id"),
)

attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("webhook_deliveries.id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),  # 1 for the first
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer),  # NULL when no answer came (refused, timed out, unsafe address)
    sa.Column("latency_ms", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("response_excerpt", sa.Text),  # the start of the body, read up to a small limit
    sa.Column("worker", sa.String(64), nullable=False),
    sa.Index("webhook_attempts_delivery", "delivery_id", "id"),
)

checkpoints = sa.Table(
    "detector_checkpoints",
    metadata,
    sa.Column("sensor_id", sa.String(128), primary_key=True),
    sa.Column("detector", sa.String(64), nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("partition", sa.Integer),
    sa.Column("offset", sa.BigInteger),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# A series' latest whole state (``models.series_checkpoint``), apart from the small row above
# that every checkpoint rewrites: SQLite rewrites a whole row on update, blob included.
snapshots = sa.Table(
    "detector_snapshots",
    metadata,
    sa.Column("sensor_id", sa.String(128), primary_key=True),
    sa.Column("learned", sa.BigInteger, nullable=False),
    sa.Column("snapshot", sa.LargeBinary, nullable=False),
)

# The points each series learned after its snapshot, one row per checkpoint, ordered by ``learned``.
deltas = sa.Table(
    "detector_deltas",
    metadata,
    sa.Column("sensor_id", sa.String(128), primary_key=True),
    sa.Column("learned", sa.BigInteger, primary_key=True),
    sa.Column("points", sa.LargeBinary, nullable=False),
)

# A counter per table that triggers (migration 0009) move in every transaction that changes the table,
# committed with the change: the API keeps a page of warnings while ``warnings`` reads the same
# (app.api.page_cache), however busy the rest of the database is.
table_versions = sa.Table(
    "table_versions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)


def dialect_insert(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ``ON CONFLICT``: both databases have it, but in their own dialect."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# Connections the pool keeps and may add: an API process runs its blocking routes on anyio's 40
# threads, each of which may hold one, beside the ingest, delivery and drill threads. SQLAlchemy's
# default (5 kept, 10 more) made requests queue for a connection under load. A SQLite connection is
# a file handle, so all are kept; a PostgreSQL one is a server process, so most are made only when
# needed and closed after (a few processes of 10 each stay inside the server's default 100).
SQLITE_POOL = {"pool_size": 40, "max_overflow": 20}
SQLITE_BUSY_TIMEOUT_S = 30  # how long a statement waits for another connection's lock
POSTGRES_POOL = {"pool_size": 10, "max_overflow": 40}


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


# Switching a new file to WAL takes a lock that SQLite does not wait for: the connection's busy
# timeout is not used, and a second process or thread opening the same new file at that moment got
# "database is locked" at once (34 of 300 trials of 8 threads opening a new file, measured). Tried
# again for as long as every other statement waits.
@retry(
    retry=retry_if_exception(_locked),
    wait=wait_random_exponential(multiplier=0.005, max=0.2),
    stop=stop_after_delay(SQLITE_BUSY_TIMEOUT_S),
    reraise=True,
)
def _write_ahead_log(cur: sqlite3.Cursor) -> None:
    cur.execute("PRAGMA journal_mode=WAL")


def open_engine(url: str) -> sa.Engine:
    """Engine for the state database, as it is: nothing is created or migrated."""
    if not url.startswith("sqlite:///"):
        pool = POSTGRES_POOL if url.startswith("postgresql") else {}
        return sa.create_engine(url, pool_pre_ping=True, **pool)
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}, **SQLITE_POOL
    )

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
        cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
        _write_ahead_log(cur)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def connect(url: str) -> sa.Engine:
    """Engine for the state database, with pending migrations applied first."""
    engine = open_engine(url)
    upgrade_to_head(engine)
    return engine
