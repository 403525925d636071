"""SQL over the webhook tables for the subscription API: subscriptions, their history, their deliveries.

Every read and change is owner-scoped: ``scope`` is the API key id an integrator's rows carry, or
None for an admin, who sees all. A row outside the scope is answered exactly like a row that does
not exist, so one integrator cannot learn another's subscription ids. Deleting is soft
(``deleted_at``): the deliveries and attempts keep pointing at a row, for the record, and a deleted
subscription is gone from every answer. Each change writes a ``webhook_subscription_events`` row
naming who made it, in the same transaction.

The outbox rows this module writes (a retry, a replay, a ping) are ordinary pending deliveries:
the delivery worker sends them as it sends the outbox's own.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from alerts.db import attempts, deliveries, subscription_events, subscriptions
from alerts.subscriptions import PING, Filters, Subscription, new_secret, rotated
from alerts.webhook_payloads import PingData, PingPayload
from config.timeutil import as_utc

# What a PATCH may change; ``enabled`` is handled on its own (it also clears or sets the reason).
EDITABLE = ("url", "description", "event_types", "hazards", "min_level", "areas", "include_exercises")
RETRYABLE = ("pending", "failed")


class NotRetryable(Exception):
    """A delivery that was delivered or cancelled: retrying it by hand would send it again for nothing."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the delivery is {status}; only a pending or failed one can be retried")
        self.status = status


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    started_at: datetime
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None
    worker: str


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    message_id: str
    subscription_id: str
    warning_id: str | None
    event_id: int | None
    event_type: str
    payload: str
    created_at: datetime
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    delivered_at: datetime | None
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionEvent:
    at: datetime
    actor: str
    action: str
    note: str


class SubscriptionStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # ---- subscriptions -----------------------------------------------------------------------

    def create(
        self,
        *,
        url: str,
        description: str,
        filters: Filters,
        owner: str,
        owner_label: str,
        now: datetime,
    ) -> Subscription:
        now = as_utc(now)
        sub = Subscription(
            id=str(uuid.uuid4()),
            owner=owner,
            owner_label=owner_label,
            url=url,
            description=description,
            filters=filters,
            enabled=True,
            disabled_reason=None,
            disabled_at=None,
            secret=new_secret(),
            previous_secret=None,
            previous_secret_until=None,
            failures=0,
            failing_since=None,
            created_at=now,
            updated_at=now,
        )
        with self.engine.begin() as conn:
            conn.execute(subscriptions.insert().values(**_row(sub)))
            _record(conn, sub.id, now, owner_label, "created", f"to {url}")
        return sub

    def get(self, subscription_id: str, *, scope: str | None) -> Subscription | None:
        """The subscription if it exists, is not deleted and lies in ``scope``."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(_visible(scope).where(subscriptions.c.id == subscription_id)).mappings().first()
            )
        return None if row is None else _subscription(row)

    def page(self, *, scope: str | None, limit: int, offset: int) -> tuple[list[Subscription], int]:
        """A page of the subscriptions in ``scope``, newest first, and how many there are."""
        c = subscriptions.c
        query = _visible(scope).order_by(c.created_at.desc(), c.id).limit(limit).offset(offset)
        count = sa.select(sa.func.count()).select_from(_visible(scope).subquery())
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            total = conn.execute(count).scalar_one()
        return [_subscription(r) for r in rows], int(total)

    def update(
        self,
        subscription_id: str,
        changes: Mapping[str, Any],
        *,
        scope: str | None,
        actor: str,
        now: datetime,
    ) -> Subscription | None:
        """Apply a PATCH: fields of ``EDITABLE``, and ``enabled``. Enabling clears the reason it was
        disabled and the run of failures, so the endpoint starts afresh; None if not in scope."""
        unknown = set(changes) - {*EDITABLE, "enabled"}
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        now = as_utc(now)
        with self.engine.begin() as conn:
            current = _locked(conn, subscription_id, scope)
            if current is None:
                return None
            given = {
                k: list(v) if isinstance(v, list | tuple) else v for k, v in changes.items() if k in EDITABLE
            }
            values: dict[str, Any] = {k: v for k, v in given.items() if current[k] != v}
            changed = sorted(values)
            if "enabled" in changes and bool(changes["enabled"]) != current["enabled"]:
                if changes["enabled"]:
                    values.update(
                        enabled=True, disabled_reason=None, disabled_at=None, failures=0, failing_since=None
                    )
                    _record(conn, subscription_id, now, actor, "enabled", "")
                else:
                    values.update(enabled=False, disabled_reason=f"disabled by {actor}", disabled_at=now)
                    _record(conn, subscription_id, now, actor, "disabled", "")
            if changed:
                _record(conn, subscription_id, now, actor, "updated", ", ".join(changed))
            if values:  # a PATCH that changes nothing leaves updated_at as it was
                values["updated_at"] = now
                conn.execute(
                    subscriptions.update().where(subscriptions.c.id == subscription_id).values(values)
                )
        return self.get(subscription_id, scope=scope)

    def delete(self, subscription_id: str, *, scope: str | None, actor: str, now: datetime) -> bool:
        """Soft-delete; its pending deliveries are cancelled. False if it was not there to delete."""
        now = as_utc(now)
        with self.engine.begin() as conn:
            if _locked(conn, subscription_id, scope) is None:
                return False
            conn.execute(
                subscriptions.update()
                .where(subscriptions.c.id == subscription_id)
                .values(deleted_at=now, updated_at=now, enabled=False)
            )
            cancelled = conn.execute(
                deliveries.update()
                .where(deliveries.c.subscription_id == subscription_id, deliveries.c.status == "pending")
                .values(status="cancelled", next_attempt_at=None, lease_until=None, claimed_by=None)
            ).rowcount
            _record(
                conn, subscription_id, now, actor, "deleted", f"{cancelled} pending delivery(ies) cancelled"
            )
        return True

    def rotate_secret(
        self,
        subscription_id: str,
        *,
        scope: str | None,
        actor: str,
        now: datetime,
        grace: timedelta,
        note: str = "",
    ) -> Subscription | None:
        """A new secret; the replaced one keeps signing until ``now + grace``. None if not in scope."""
        now = as_utc(now)
        with self.engine.begin() as conn:
            row = _locked(conn, subscription_id, scope)
            if row is None:
                return None
            sub = rotated(_subscription(row), now=now, grace=grace)
            conn.execute(
                subscriptions.update()
                .where(subscriptions.c.id == subscription_id)
                .values(
                    secret=sub.secret,
                    previous_secret=sub.previous_secret,
                    previous_secret_until=sub.previous_secret_until,
                    updated_at=now,
                )
            )
            _record(
                conn,
                subscription_id,
                now,
                actor,
                "secret_rotated",
                _noted(f"the old secret signs until {now + grace}", note),
            )
        return sub

    def history(self, subscription_id: str, *, latest: int | None = None) -> list[SubscriptionEvent]:
        """What was done to a subscription, and by whom, oldest first; with ``latest``, only the last ones."""
        e = subscription_events.c
        query = (
            sa.select(subscription_events).where(e.subscription_id == subscription_id).order_by(e.id.desc())
        )
        if latest is not None:
            query = query.limit(latest)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            SubscriptionEvent(as_utc(r["at"]), r["actor"], r["action"], r["note"]) for r in reversed(rows)
        ]

    # ---- deliveries --------------------------------------------------------------------------

    def deliveries(self, subscription_id: str, *, limit: int, offset: int) -> tuple[list[Delivery], int]:
        """A page of a subscription's deliveries, newest first, each with its attempts (oldest first)."""
        d = deliveries.c
        where = d.subscription_id == subscription_id
        query = sa.select(deliveries).where(where).order_by(d.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            total = conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(where)).scalar_one()
            tried = _attempts_of(conn, [r["id"] for r in rows])
        return [replace(_delivery(r), attempts=tuple(tried.get(r["id"], []))) for r in rows], int(total)

    def delivery(self, subscription_id: str, delivery_id: int) -> Delivery | None:
        with self.engine.connect() as conn:
            row = conn.execute(_delivery_of(subscription_id, delivery_id)).mappings().first()
            if row is None:
                return None
            tried = _attempts_of(conn, [delivery_id])
        return replace(_delivery(row), attempts=tuple(tried.get(delivery_id, [])))

    def retry(
        self, subscription_id: str, delivery_id: int, *, actor: str, now: datetime, note: str = ""
    ) -> Delivery | None:
        """Send a pending or failed delivery again from the start of the schedule, now.

        Raises :class:`NotRetryable` for a delivered or cancelled one; None if it is not this
        subscription's. The lease is cleared too, so a delivery held by a stuck worker goes now."""
        now = as_utc(now)
        d = deliveries.c
        with self.engine.begin() as conn:
            row = (
                conn.execute(_delivery_of(subscription_id, delivery_id).with_for_update()).mappings().first()
            )
            if row is None:
                return None
            if row["status"] not in RETRYABLE:
                raise NotRetryable(row["status"])
            conn.execute(
                deliveries.update()
                .where(d.id == delivery_id)
                .values(status="pending", attempts=0, next_attempt_at=now, lease_until=None, claimed_by=None)
            )
            _record(
                conn, subscription_id, now, actor, "delivery_retried", _noted(f"delivery {delivery_id}", note)
            )
        return self.delivery(subscription_id, delivery_id)

    def replay(
        self,
        subscription_id: str,
        *,
        since: datetime,
        until: datetime | None,
        actor: str,
        now: datetime,
        note: str = "",
    ) -> list[Delivery]:
        """Queue again every message of the subscription created in [since, until), oldest first.

        A copy keeps its message's ``message_id`` and payload, so a receiver that has a message
        already can drop it by its ``webhook-id``; each message is queued once, however many
        copies earlier replays made of it.
        """
        now = as_utc(now)
        d = deliveries.c
        first_of_each = (
            sa.select(sa.func.min(d.id))
            .where(d.subscription_id == subscription_id, d.created_at >= as_utc(since))
            .group_by(d.message_id)
        )
        if until is not None:
            first_of_each = first_of_each.where(d.created_at < as_utc(until))
        with self.engine.begin() as conn:
            originals = (
                conn.execute(sa.select(deliveries).where(d.id.in_(first_of_each)).order_by(d.id))
                .mappings()
                .all()
            )
            ids = [_insert_pending(conn, {**_copied(r), "created_at": now}) for r in originals]
            shown_until = "now" if until is None else str(as_utc(until))
            _record(
                conn,
                subscription_id,
                now,
                actor,
                "replayed",
                _noted(f"{len(ids)} message(s) from {as_utc(since)} to {shown_until}", note),
            )
        return [self._must(subscription_id, i) for i in ids]

    def ping(self, subscription_id: str, *, actor: str, now: datetime, note: str = "") -> Delivery:
        """Queue a test message, sent whatever the subscription's filters say."""
        now = as_utc(now)
        body = PingPayload(type="ping", timestamp=now, data=PingData(subscription_id=subscription_id))
        with self.engine.begin() as conn:
            delivery_id = _insert_pending(
                conn,
                {
                    "message_id": f"msg_{uuid.uuid4().hex}",
                    "subscription_id": subscription_id,
                    "warning_id": None,
                    "event_id": None,
                    "event_type": PING,
                    "payload": body.model_dump_json(),  # serialized as the outbox serializes events
                    "created_at": now,
                },
            )
            _record(conn, subscription_id, now, actor, "pinged", _noted(f"delivery {delivery_id}", note))
        return self._must(subscription_id, delivery_id)

    def _must(self, subscription_id: str, delivery_id: int) -> Delivery:
        found = self.delivery(subscription_id, delivery_id)
        assert found is not None, "a delivery just written"
        return found


def _visible(scope: str | None) -> sa.Select[Any]:
    query = sa.select(subscriptions).where(subscriptions.c.deleted_at.is_(None))
    return query if scope is None else query.where(subscriptions.c.owner == scope)


def _locked(conn: sa.Connection, subscription_id: str, scope: str | None) -> sa.RowMapping | None:
    query = _visible(scope).where(subscriptions.c.id == subscription_id).with_for_update()
    return conn.execute(query).mappings().first()


def _noted(what: str, note: str) -> str:
    """The history line's note: what was done, then the caller's reason if it gave one."""
    return f"{what}; {note}" if note else what


def _record(
    conn: sa.Connection, subscription_id: str, at: datetime, actor: str, action: str, note: str
) -> None:
    conn.execute(
        subscription_events.insert().values(
            subscription_id=subscription_id, at=at, actor=actor, action=action, note=note
        )
    )


def _delivery_of(subscription_id: str, delivery_id: int) -> sa.Select[Any]:
    d = deliveries.c
    return sa.select(deliveries).where(d.id == delivery_id, d.subscription_id == subscription_id)


def _copied(row: sa.RowMapping) -> dict[str, Any]:
    keep = ("message_id", "subscription_id", "warning_id", "event_id", "event_type", "payload")
    return {k: row[k] for k in keep}


def _insert_pending(conn: sa.Connection, values: Mapping[str, Any]) -> int:
    pending = {"status": "pending", "attempts": 0, "next_attempt_at": values["created_at"]}
    result = conn.execute(deliveries.insert().values(**values, **pending).returning(deliveries.c.id))
    return int(result.scalar_one())


def _attempts_of(conn: sa.Connection, delivery_ids: list[int]) -> dict[int, list[Attempt]]:
    if not delivery_ids:
        return {}
    a = attempts.c
    query = sa.select(attempts).where(a.delivery_id.in_(delivery_ids)).order_by(a.id)
    out: dict[int, list[Attempt]] = {}
    for r in conn.execute(query).mappings():
        out.setdefault(r["delivery_id"], []).append(
            Attempt(
                attempt=r["attempt"],
                started_at=as_utc(r["started_at"]),
                status_code=r["status_code"],
                latency_ms=r["latency_ms"],
                error=r["error"],
                response_excerpt=r["response_excerpt"],
                worker=r["worker"],
            )
        )
    return out


def _row(s: Subscription) -> dict[str, Any]:
    f = s.filters
    return {
        "id": s.id,
        "owner": s.owner,
        "owner_label": s.owner_label,
        "url": s.url,
        "description": s.description,
        "event_types": list(f.event_types),
        "hazards": list(f.hazards),
        "min_level": f.min_level,
        "areas": list(f.areas),
        "include_exercises": f.include_exercises,
        "enabled": s.enabled,
        "disabled_reason": s.disabled_reason,
        "disabled_at": s.disabled_at,
        "secret": s.secret,
        "previous_secret": s.previous_secret,
        "previous_secret_until": s.previous_secret_until,
        "failures": s.failures,
        "failing_since": s.failing_since,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "deleted_at": s.deleted_at,
    }


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _subscription(row: sa.RowMapping) -> Subscription:
    return Subscription(
        id=row["id"],
        owner=row["owner"],
        owner_label=row["owner_label"],
        url=row["url"],
        description=row["description"],
        filters=Filters(
            event_types=tuple(row["event_types"]),
            hazards=tuple(row["hazards"]),
            min_level=row["min_level"],
            areas=tuple(row["areas"]),
            include_exercises=bool(row["include_exercises"]),
        ),
        enabled=bool(row["enabled"]),
        disabled_reason=row["disabled_reason"],
        disabled_at=_utc(row["disabled_at"]),
        secret=row["secret"],
        previous_secret=row["previous_secret"],
        previous_secret_until=_utc(row["previous_secret_until"]),
        failures=int(row["failures"]),
        failing_since=_utc(row["failing_since"]),
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
        deleted_at=_utc(row["deleted_at"]),
    )


def _delivery(row: sa.RowMapping) -> Delivery:
    return Delivery(
        id=int(row["id"]),
        message_id=row["message_id"],
        subscription_id=row["subscription_id"],
        warning_id=row["warning_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        payload=row["payload"],
        created_at=as_utc(row["created_at"]),
        status=row["status"],
        attempt_count=int(row["attempts"]),
        next_attempt_at=_utc(row["next_attempt_at"]),
        last_attempt_at=_utc(row["last_attempt_at"]),
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        last_latency_ms=row["last_latency_ms"],
        delivered_at=_utc(row["delivered_at"]),
    )
