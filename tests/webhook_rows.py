"""Subscription and delivery rows written straight into the state database, as the API and outbox would."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from alerts import db
from alerts.subscriptions import new_secret


def add_subscription(
    engine: sa.Engine,
    url: str,
    *,
    secret: str | None = None,
    previous_secret: str | None = None,
    previous_secret_until: datetime | None = None,
) -> tuple[str, str]:
    """A new enabled subscription to ``url``; its id and signing secret."""
    sub_id, secret = str(uuid.uuid4()), secret or new_secret()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            db.subscriptions.insert().values(
                id=sub_id,
                owner="key-test",
                owner_label="test integrator",
                url=url,
                secret=secret,
                previous_secret=previous_secret,
                previous_secret_until=previous_secret_until,
                created_at=now,
                updated_at=now,
            )
        )
    return sub_id, secret


def add_delivery(
    engine: sa.Engine,
    subscription_id: str,
    *,
    warning_id: str | None,
    event_type: str = "warning.updated",
    data: dict[str, object] | None = None,
    due: datetime | None = None,
) -> int:
    """A pending delivery due at ``due`` (now by default), as the outbox writes it; its id."""
    now = datetime.now(UTC)
    message_id = f"msg_{secrets.token_hex(12)}"
    payload = json.dumps(
        {"type": event_type, "timestamp": now.isoformat(), "data": {"warning_id": warning_id, **(data or {})}}
    )
    with engine.begin() as conn:
        return int(
            conn.execute(
                db.deliveries.insert()
                .values(
                    message_id=message_id,
                    subscription_id=subscription_id,
                    warning_id=warning_id,
                    event_type=event_type,
                    payload=payload,
                    created_at=now,
                    status="pending",
                    attempts=0,
                    next_attempt_at=due or now,
                )
                .returning(db.deliveries.c.id)
            ).scalar_one()
        )


def delivery_rows(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(db.deliveries).order_by(db.deliveries.c.id)).all())


def subscription_row(engine: sa.Engine, sub_id: str) -> sa.Row[tuple[object, ...]]:
    with engine.connect() as conn:
        return conn.execute(sa.select(db.subscriptions).where(db.subscriptions.c.id == sub_id)).one()


def attempt_rows(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(db.attempts).order_by(db.attempts.c.id)).all())


def subscription_events(engine: sa.Engine, sub_id: str) -> list[sa.Row[tuple[object, ...]]]:
    e = db.subscription_events.c
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(db.subscription_events).where(e.subscription_id == sub_id).order_by(e.id)
            ).all()
        )
