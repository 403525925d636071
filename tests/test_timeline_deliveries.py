"""Webhook deliveries in a warning's timeline, over HTTP on SQLite and PostgreSQL: staged by the real
outbox as the app wires it, shown after the transition they tell of with how they are going, never
with the target URL or body; an integrator's key sees only its own subscriptions' deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alerts import db
from app.auth.keys import KeyStore
from app.auth.roles import Role
from app.main import create_app
from app.services import Services
from bench.isolation import isolated_settings
from ingest.broker import EmbeddedBroker
from tests.auth_helpers import bearer, new_key
from tests.factories import signal

NOW = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
SECRET_URL = "http://127.0.0.1:9/hook?token=never-shown"


@pytest.fixture
def app_client(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=state_url,
        rate_limits_enabled=False,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def integrator(app: FastAPI, label: str) -> tuple[str, dict[str, str]]:
    """An integrator key's id (what owns its subscriptions) and its headers."""
    record, token = KeyStore(app.state.services.engine).create(
        Role.INTEGRATOR, label, expires=None, created_by="tests", now=datetime.now(UTC)
    )
    return record.id, bearer(token)


def subscribe(engine: sa.Engine, owner: str, *, created_at: datetime = NOW) -> str:
    sid = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            db.subscriptions.insert().values(
                id=sid,
                owner=owner,
                owner_label=owner,
                url=SECRET_URL,
                description="",
                event_types=[],
                hazards=[],
                min_level=None,
                areas=[],
                include_exercises=False,
                enabled=True,
                secret="whsec_" + "B" * 32,
                failures=0,
                created_at=created_at,
                updated_at=created_at,
            )
        )
    return sid


def timeline(client: TestClient, wid: str, headers: dict[str, str], limit: int = 500) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        resp = client.get(
            f"/v1/warnings/{wid}/timeline", params={"limit": limit, "offset": len(items)}, headers=headers
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items += body["items"]
        if not body["items"]:
            assert body["total"] == len(items)
            return items


def test_deliveries_follow_the_transition_they_tell_of_and_show_how_they_went(app_client: TestClient) -> None:
    app = app_client.app
    svc: Services = app.state.services  # type: ignore[attr-defined]
    district_id, district = integrator(app, "district command")  # type: ignore[arg-type]
    gateway_id, gateway = integrator(app, "sms gateway")  # type: ignore[arg-type]
    mine = subscribe(svc.engine, district_id)
    # The outbox stages for subscriptions oldest first; made at one instant, their order would be their
    # random ids'.
    theirs = subscribe(svc.engine, gateway_id, created_at=NOW + timedelta(seconds=1))
    [wid] = svc.warnings.apply_signals([signal(level="red", ts=NOW)], now=NOW, actor="detector")
    d = db.deliveries.c
    with svc.engine.begin() as conn:  # what the delivery worker records of a first answer
        conn.execute(
            db.deliveries.update()
            .where(d.subscription_id == mine, d.event_type == "warning.opened")
            .values(
                status="delivered", attempts=1, last_status_code=204, last_attempt_at=NOW, delivered_at=NOW
            )
        )
    viewer = bearer(new_key(app, Role.VIEWER, "wall screen"))  # type: ignore[arg-type]

    items = timeline(app_client, wid, viewer)
    kinds = [(i["type"], i.get("action") or i.get("event_type")) for i in items]
    opened = kinds.index(("transition", "opened"))
    # Right after the transition, at its instant, in the order staged: per subscription, the event then
    # the advice (another transition of the same instant, if any, comes before them).
    shown = [i for i in items if i["type"] == "delivery"]
    assert kinds.index(("delivery", "warning.opened")) > opened
    assert [(s["subscription_id"], s["event_type"]) for s in shown] == [
        (mine, "warning.opened"),
        (theirs, "warning.opened"),
        (mine, "recommendation.issued"),
        (theirs, "recommendation.issued"),
    ]
    assert all(s["at"] == items[opened]["at"] for s in shown)
    first = shown[0]
    assert (first["status"], first["attempts"], first["last_status_code"]) == ("delivered", 1, 204)
    assert first["message_id"].startswith("msg_") and first["event_id"] is not None
    assert (shown[1]["status"], shown[1]["attempts"], shown[1]["last_status_code"]) == ("pending", 0, None)
    text = str(items)
    assert "never-shown" not in text and "payload" not in shown[0] and "url" not in shown[0]

    # Each integrator sees its own subscription's deliveries, and nothing of the other's.
    own = [i for i in timeline(app_client, wid, district) if i["type"] == "delivery"]
    assert {i["subscription_id"] for i in own} == {mine} and len(own) == 2
    other = [i for i in timeline(app_client, wid, gateway, limit=1) if i["type"] == "delivery"]
    assert {i["subscription_id"] for i in other} == {theirs}
    # Pages of any size hold the same entries.
    assert timeline(app_client, wid, viewer, limit=1) == items
