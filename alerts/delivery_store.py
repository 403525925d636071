"""The delivery outbox's SQL: claiming due deliveries, and recording what each attempt came to.

Several workers (threads, processes, machines) share the outbox. A worker *claims* rows before it
sends anything: it sets ``lease_until`` and ``claimed_by`` and commits, so no other worker attempts
them until the lease runs out (as a killed worker's does). On PostgreSQL the claim reads with
``FOR UPDATE SKIP LOCKED``, so claimers pass each other instead of queueing; on SQLite the database
write lock, taken first, serialises them. Recording checks the claim is still this worker's: one
whose lease ran out and whose row was claimed again writes nothing, so an attempt is recorded once.

Order per warning: only the head of each (subscription, warning) queue, its oldest pending row, is
ever claimed, so a warning's events reach an endpoint in the order they happened, each after the
one before it was delivered or given up on.

Fairness between endpoints: a claim may be given a cap on one subscription's rows in flight, so an
endpoint that hangs until the timeout, with a storm's worth of due rows, cannot take every slot of a
worker while the other integrators' events wait behind it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa

from alerts import db
from alerts.webhook_targets import AttemptResult
from config.timeutil import as_utc

log = logging.getLogger("citywarn.webhooks")

# With a per-subscription cap, a claim reads this many candidates per row wanted, so the rows of
# subscriptions below their cap are found behind one that has many due (a storm's worth of heads).
CANDIDATES_PER_SLOT = 4
JITTER = 0.2  # each retry's wait is stretched or shrunk by up to this fraction
ACTOR = "citywarn"
GONE = "410 Gone"


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds until ``lease_until``, with its subscription's URL and secrets as
    they were at claim time (so a rotation or a new URL applies from the next attempt)."""

    delivery_id: int
    message_id: str
    subscription_id: str
    warning_id: str | None
    event_type: str
    payload: str
    attempts: int  # made before this one
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    claimed_by: str
    lease_until: datetime  # with claimed_by, the claim's token


@dataclass(frozen=True)
class Backoff:
    """When retries happen and when an endpoint that keeps failing is disabled (from the settings)."""

    schedule: Sequence[float]  # seconds before each attempt; [0] is the first, counted from the event
    disable_after_failures: int
    disable_after_s: float


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # pending again, due after the next wait of the schedule
    FAILED = "failed"  # the schedule is spent, or the endpoint said 410 Gone
    OVERTAKEN = "overtaken"  # the lease ran out and another claim replaced ours: nothing written


d = db.deliveries.c
s = db.subscriptions.c


class DeliveryStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def claim(
        self,
        *,
        now: datetime,
        worker: str,
        limit: int,
        lease: timedelta,
        per_subscription: int | None = None,
        in_flight: Mapping[str, int] | None = None,
    ) -> list[Claimed]:
        """Claim up to ``limit`` due deliveries, oldest first, each the head of its queue; committed
        before this returns, so no HTTP happens inside the transaction.

        With ``per_subscription``, a subscription's rows claimed here and its ``in_flight`` ones (the
        caller's attempts under way) come to no more than that: one slow endpoint cannot take every
        slot. The oldest due rows may all be one subscription's, so more candidates than ``limit``
        are read (and on PostgreSQL locked, until the commit) and the first within the caps kept.
        """
        now = as_utc(now)
        lease_until = now + lease
        in_flight = in_flight or {}
        at_cap = (
            [] if per_subscription is None else [x for x, n in in_flight.items() if n >= per_subscription]
        )
        candidate_count = limit if per_subscription is None else limit * CANDIDATES_PER_SLOT
        earlier = db.deliveries.alias("earlier")
        e = earlier.c
        query = (
            sa.select(
                d.id,
                d.message_id,
                d.subscription_id,
                d.warning_id,
                d.event_type,
                d.payload,
                d.attempts,
                s.url,
                s.secret,
                s.previous_secret,
                s.previous_secret_until,
            )
            .join(db.subscriptions, s.id == d.subscription_id)
            .where(
                d.status == "pending",
                d.next_attempt_at <= now,
                sa.or_(d.lease_until.is_(None), d.lease_until < now),
                s.enabled.is_(True),
                s.deleted_at.is_(None),
                d.subscription_id.not_in(at_cap),
                # The head of its queue: no earlier pending row for the same subscription and warning.
                # A ping (warning_id NULL) compares unequal to everything, so it is a queue of its own.
                ~sa.exists().where(
                    e.subscription_id == d.subscription_id,
                    e.warning_id == d.warning_id,
                    e.status == "pending",
                    e.id < d.id,
                ),
            )
            .order_by(d.id)
            .limit(candidate_count)
        )
        with self._writing() as conn:
            if conn.dialect.name == "postgresql":
                # No window function to rank rows per subscription here: PostgreSQL refuses them
                # beside FOR UPDATE, so the caps are applied to the candidates below.
                query = query.with_for_update(of=db.deliveries, skip_locked=True)
            candidates = [
                Claimed(
                    delivery_id=r.id,
                    message_id=r.message_id,
                    subscription_id=r.subscription_id,
                    warning_id=r.warning_id,
                    event_type=r.event_type,
                    payload=r.payload,
                    attempts=r.attempts,
                    url=r.url,
                    secret=r.secret,
                    previous_secret=r.previous_secret,
                    previous_secret_until=(
                        as_utc(r.previous_secret_until) if r.previous_secret_until is not None else None
                    ),
                    claimed_by=worker,
                    lease_until=lease_until,
                )
                for r in conn.execute(query)
            ]
            claimed = _within_caps(candidates, limit, per_subscription, in_flight)
            if claimed:
                conn.execute(
                    db.deliveries.update()
                    .where(d.id.in_([c.delivery_id for c in claimed]))
                    .values(lease_until=lease_until, claimed_by=worker)
                )
        return claimed

    def record(
        self,
        claimed: Claimed,
        result: AttemptResult,
        *,
        started_at: datetime,
        now: datetime,
        backoff: Backoff,
        rng: random.Random,
    ) -> Outcome:
        """Write the attempt and what follows from it, if the claim is still ours."""
        now, started_at = as_utc(now), as_utc(started_at)
        attempt = claimed.attempts + 1
        gone = result.status_code == 410
        if result.succeeded:
            outcome, next_at = Outcome.DELIVERED, None
        elif gone or attempt >= len(backoff.schedule):
            outcome, next_at = Outcome.FAILED, None
        else:
            wait = backoff.schedule[attempt] * (1 + rng.uniform(-JITTER, JITTER))
            outcome, next_at = Outcome.RETRY, now + timedelta(seconds=wait)
        with self._writing() as conn:
            mine = conn.execute(
                db.deliveries.update()
                .where(
                    d.id == claimed.delivery_id,
                    d.status == "pending",
                    d.claimed_by == claimed.claimed_by,
                    d.lease_until == claimed.lease_until,
                )
                .values(
                    status="pending" if outcome is Outcome.RETRY else outcome.value,
                    attempts=attempt,
                    next_attempt_at=next_at,
                    lease_until=None,
                    claimed_by=None,
                    last_attempt_at=started_at,
                    last_status_code=result.status_code,
                    last_error=_error_text(result),
                    last_latency_ms=result.latency_ms,
                    delivered_at=now if outcome is Outcome.DELIVERED else None,
                )
            ).rowcount
            if mine != 1:
                return Outcome.OVERTAKEN
            conn.execute(
                db.attempts.insert().values(
                    delivery_id=claimed.delivery_id,
                    attempt=attempt,
                    started_at=started_at,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    error=result.error,
                    response_excerpt=result.response_excerpt,
                    worker=claimed.claimed_by,
                )
            )
            if result.succeeded:
                _end_failure_run(conn, claimed.subscription_id)
            else:
                _count_failure(conn, claimed, result, now=now, backoff=backoff, gone=gone)
        return outcome

    @contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            # pysqlite would BEGIN only at the first write, after our reads: take the write lock first.
            if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn


def _within_caps(
    candidates: Sequence[Claimed], limit: int, per_subscription: int | None, in_flight: Mapping[str, int]
) -> list[Claimed]:
    """The first ``limit`` candidates, in their order, leaving out those past their subscription's cap."""
    taken: Counter[str] = Counter(in_flight)
    kept: list[Claimed] = []
    for c in candidates:
        if len(kept) == limit:
            break
        if per_subscription is None or taken[c.subscription_id] < per_subscription:
            taken[c.subscription_id] += 1
            kept.append(c)
    return kept


def _error_text(result: AttemptResult) -> str | None:
    if result.error is not None:
        return result.error
    return None if result.succeeded else f"HTTP {result.status_code}"


def _end_failure_run(conn: sa.Connection, subscription_id: str) -> None:
    conn.execute(
        db.subscriptions.update()
        .where(s.id == subscription_id, sa.or_(s.failures != 0, s.failing_since.is_not(None)))
        .values(failures=0, failing_since=None)
    )


def _count_failure(
    conn: sa.Connection,
    claimed: Claimed,
    result: AttemptResult,
    *,
    now: datetime,
    backoff: Backoff,
    gone: bool,
) -> None:
    """One more failed attempt in the endpoint's run; disable it after 410 Gone, or a long enough run."""
    query = sa.select(s.enabled, s.failures, s.failing_since).where(s.id == claimed.subscription_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one()
    failures = row.failures + 1
    failing_since = as_utc(row.failing_since) if row.failing_since is not None else now
    values: dict[str, object] = {"failures": failures, "failing_since": failing_since}
    reason = None
    if gone:
        reason = GONE
    elif failures >= backoff.disable_after_failures and failing_since <= now - timedelta(
        seconds=backoff.disable_after_s
    ):
        since = failing_since.isoformat()
        reason = f"{failures} failed attempts in a row since {since} (last: {_error_text(result)})"
    if reason is not None and row.enabled:
        values |= {"enabled": False, "disabled_reason": reason, "disabled_at": now, "updated_at": now}
        conn.execute(
            db.subscription_events.insert().values(
                subscription_id=claimed.subscription_id,
                at=now,
                actor=ACTOR,
                action="auto_disabled",
                note=reason,
            )
        )
        log.warning(
            "webhook subscription %s disabled: %s; its endpoint %s gets nothing until it is enabled again",
            claimed.subscription_id,
            reason,
            claimed.url,
        )
    conn.execute(db.subscriptions.update().where(s.id == claimed.subscription_id).values(**values))
