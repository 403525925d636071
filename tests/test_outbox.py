"""The webhook outbox on SQLite and PostgreSQL: warning changes made through the real WarningService
(and roll-up) stage their deliveries in their own transaction, for the subscriptions that match."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter

from alerts import db
from alerts.lifecycle import new_warning, opened_event
from alerts.outbox import Outbox
from alerts.repository import SqlWarningRepository
from alerts.rollup import RollUp
from alerts.service import WarningService
from alerts.webhook_payloads import RecommendationPayload, WarningEventPayload, WebhookPayload
from config.areas import load_areas
from config.settings import Settings
from models.signals import Signal
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal

AREAS = load_areas()
PAYLOAD = TypeAdapter(WebhookPayload)
FIRST_WAIT = Settings.model_fields["webhook_retry_schedule"].default[0]
RIVER = "g-riverside-01"  # wl-riverside-01's grid, in d-riverside


class Silenced:
    """A mutes provider under which every warning is held by one silence."""

    def mute_for(self, **_: Any) -> str | None:
        return "silence:s1"


def warnings_service(engine: sa.Engine, **extra: Any) -> WarningService:
    repository = SqlWarningRepository(engine, outbox=Outbox(areas=AREAS, first_attempt_after_s=FIRST_WAIT))
    return WarningService(
        engine, catalog=CATALOG, playbooks=PLAYBOOKS, areas=AREAS, repository=repository, **extra
    )


def subscribe(engine: sa.Engine, **values: Any) -> str:
    sid = str(uuid.uuid4())
    row = {
        "id": sid,
        "owner": "k-integrator",
        "owner_label": "district system",
        "url": "http://127.0.0.1:9/hook",
        "description": "",
        "event_types": [],
        "hazards": [],
        "min_level": None,
        "areas": [],
        "include_exercises": False,
        "enabled": True,
        "secret": "whsec_" + "A" * 32,
        "failures": 0,
        "created_at": NOW,
        "updated_at": NOW,
    }
    with engine.begin() as conn:
        conn.execute(db.subscriptions.insert().values(**{**row, **values}))
    return sid


def deliveries(engine: sa.Engine, subscription_id: str | None = None) -> list[Any]:
    d = db.deliveries.c
    query = sa.select(db.deliveries).order_by(d.id)
    if subscription_id is not None:
        query = query.where(d.subscription_id == subscription_id)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def types(engine: sa.Engine, subscription_id: str | None = None) -> list[str]:
    return [r.event_type for r in deliveries(engine, subscription_id)]


def flood(
    level: str | None, *, minutes: float = 0, area: str = RIVER, sensor: str = "wl-riverside-01"
) -> Signal:
    return signal(level=level, ts=NOW + timedelta(minutes=minutes), area=area, sensor_id=sensor)


def gas(level: str | None, *, minutes: float = 0) -> Signal:
    return signal(
        hazard="gas_leak",
        kind="gas",
        sensor_id="gas-riverside-01",
        area="g-riverside-04",
        level=level,
        value=55.0,
        ts=NOW + timedelta(minutes=minutes),
    )


def test_a_warning_opened_active_stages_its_opened_event_and_recommendations(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    sid = subscribe(engine)
    [wid] = svc.apply_signals([flood("red")], now=NOW, actor="detector")

    rows = deliveries(engine)
    assert [r.event_type for r in rows] == ["warning.opened", "recommendation.issued"]
    with engine.connect() as conn:
        [opened_id] = conn.execute(sa.select(db.events.c.id).where(db.events.c.warning_id == wid)).scalars()
    opened, issued = rows
    for r in rows:
        assert (r.subscription_id, r.warning_id, r.event_id) == (sid, wid, opened_id)
        assert (r.status, r.attempts) == ("pending", 0)
        assert r.message_id.startswith("msg_") and len(r.message_id) == 36
        at = r.created_at.replace(tzinfo=UTC) if r.created_at.tzinfo is None else r.created_at
        assert at == NOW
        due = r.next_attempt_at.replace(tzinfo=UTC) if r.next_attempt_at.tzinfo is None else r.next_attempt_at
        assert due == NOW + timedelta(seconds=FIRST_WAIT)
        # The exact body every attempt sends: compact JSON, serialized once.
        assert r.payload == json.dumps(json.loads(r.payload), separators=(",", ":"), ensure_ascii=False)
    assert opened.message_id != issued.message_id

    body = PAYLOAD.validate_json(opened.payload)
    assert isinstance(body, WarningEventPayload)
    assert body.type == "warning.opened" and body.timestamp == NOW
    assert body.data.change.sequence == opened_id and body.data.change.action == "opened"
    assert (body.data.warning.id, body.data.warning.level, body.data.warning.status) == (wid, "red", "active")
    assert body.data.warning.recommendations, "the state at commit carries the advice"
    assert "explanation" not in json.loads(opened.payload)["data"]["warning"]
    advice = PAYLOAD.validate_json(issued.payload)
    assert isinstance(advice, RecommendationPayload)
    assert advice.data.recommendations == body.data.warning.recommendations


def test_a_pending_warning_stages_nothing_until_it_is_activated(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    sid = subscribe(engine)
    [wid] = svc.apply_signals([flood("yellow")], now=NOW, actor="detector")
    assert svc.get(wid).status == "pending"  # type: ignore[union-attr]
    assert deliveries(engine) == []

    svc.apply_signals([flood("yellow", minutes=16)], now=NOW + timedelta(minutes=16), actor="detector")
    assert svc.get(wid).status == "active"  # type: ignore[union-attr]
    rows = deliveries(engine, sid)
    assert [r.event_type for r in rows] == ["warning.opened", "recommendation.issued"]
    assert json.loads(rows[0].payload)["data"]["change"]["action"] == "activated"


def test_a_pending_warning_that_did_not_hold_tells_nobody_it_ended(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    subscribe(engine)
    [wid] = svc.apply_signals([flood("yellow")], now=NOW, actor="detector")
    svc.advance({RIVER: NOW + timedelta(hours=2)}, now=NOW + timedelta(hours=2))
    assert svc.get(wid).status == "resolved"  # type: ignore[union-attr]
    assert deliveries(engine) == []


def test_operators_actions_map_to_their_event_types(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    sid = subscribe(engine)
    [wid] = svc.apply_signals([flood("orange")], now=NOW, actor="detector")
    svc.apply_signals([flood("orange", minutes=16)], now=NOW + timedelta(minutes=16), actor="detector")
    later = NOW + timedelta(minutes=20)
    svc.escalate(wid, now=later, actor="duty officer", actor_role="operator")
    svc.acknowledge(wid, now=later, actor="duty officer", actor_role="operator")
    svc.assign(wid, "crew 7", now=later, actor="duty officer", actor_role="operator")
    svc.annotate(wid, now=later, actor="duty officer", note="pumps on the way", actor_role="operator")
    svc.deescalate(wid, now=later, actor="duty officer", actor_role="operator")
    svc.resolve(wid, now=later, actor="duty officer", actor_role="operator")

    assert types(engine, sid) == [
        "warning.opened",
        "recommendation.issued",
        "warning.escalated",
        "recommendation.issued",  # red brings red's steps
        "warning.acknowledged",
        "warning.updated",  # assigned
        "warning.updated",  # annotated
        "warning.deescalated",
        "recommendation.issued",
        "warning.resolved",
    ]
    changes = [json.loads(r.payload)["data"] for r in deliveries(engine, sid)]
    escalated = changes[2]["change"]
    assert (escalated["from_level"], escalated["to_level"], escalated["actor"], escalated["actor_role"]) == (
        "orange",
        "red",
        "duty officer",
        "operator",
    )
    assert changes[2]["warning"]["level"] == "red"
    assert changes[-1]["warning"]["status"] == "resolved" and changes[-1]["change"]["action"] == "resolved"
    sequences = [c["change"]["sequence"] for c in changes if "change" in c]
    assert sequences == sorted(sequences)


def test_a_transaction_that_raises_leaves_neither_its_events_nor_their_deliveries(engine: sa.Engine) -> None:
    subscribe(engine)
    repository = SqlWarningRepository(engine, outbox=Outbox(areas=AREAS))
    warning = new_warning("flood", RIVER, "red", first=NOW, last=NOW, now=NOW)

    with pytest.raises(RuntimeError), repository.writing() as tx:
        tx.insert(warning)
        tx.record(warning.id, opened_event("red", at=NOW, actor="detector", note=""))
        raise RuntimeError("the batch failed after recording")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.events)).scalar_one() == 0
    assert deliveries(engine) == []

    with repository.writing() as tx:  # the same change, committed: its delivery commits with it
        tx.insert(warning)
        tx.record(warning.id, opened_event("red", at=NOW, actor="detector", note=""))
    assert types(engine) == ["warning.opened"]


def test_red_floods_in_one_district_reach_that_subscription_and_nothing_else(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    sid = subscribe(engine, hazards=["flood"], min_level="red", areas=["d-riverside"])
    everything = subscribe(engine)

    svc.apply_signals([flood("yellow"), flood("yellow", minutes=16)], now=NOW, actor="detector")
    svc.apply_signals(
        [flood("red", area="g-lakeside-04", sensor="wl-lakeside-01")], now=NOW, actor="detector"
    )
    svc.apply_signals([gas("red")], now=NOW, actor="detector")
    assert types(engine, sid) == []
    assert types(engine, everything).count("warning.opened") == 3  # each of them was told

    [red] = svc.apply_signals(
        [flood("red", area="g-riverside-07", sensor="wl-riverside-03")], now=NOW, actor="d"
    )
    svc.deescalate(red, now=NOW + timedelta(minutes=1), actor="duty officer")  # red -> orange: told
    svc.deescalate(red, now=NOW + timedelta(minutes=2), actor="duty officer")  # orange -> yellow: not
    rows = deliveries(engine, sid)
    assert [r.event_type for r in rows] == ["warning.opened", "recommendation.issued", "warning.deescalated"]
    assert {r.warning_id for r in rows} == {red}
    step = json.loads(rows[-1].payload)["data"]["change"]
    assert (step["from_level"], step["to_level"]) == ("red", "orange")


def test_a_district_subscription_hears_its_roll_up_but_not_the_city_one(engine: sa.Engine) -> None:
    outbox = Outbox(areas=AREAS)
    rollup = RollUp(SqlWarningRepository(engine, outbox=outbox), areas=AREAS)
    svc = warnings_service(engine, rollup=rollup)
    sid = subscribe(engine, hazards=["flood"], areas=["d-riverside"])
    [grid] = svc.apply_signals([flood("red")], now=NOW, actor="detector")
    scopes = {
        json.loads(r.payload)["data"]["warning"]["scope"]: r.warning_id
        for r in deliveries(engine, sid)
        if r.event_type == "warning.opened"
    }
    assert scopes.keys() == {"grid", "district"} and scopes["grid"] == grid
    city = [w for w in svc.list(scope="city").items]
    assert len(city) == 1 and city[0].id not in {r.warning_id for r in deliveries(engine, sid)}


def test_drills_reach_only_subscriptions_that_include_exercises(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    real_only = subscribe(engine)
    drills_too = subscribe(engine, include_exercises=True)
    drill = replace(flood("red"), exercise=True, drill_id="drill-1")
    [wid] = svc.apply_signals([drill], now=NOW, actor="drill")
    assert types(engine, real_only) == []
    rows = deliveries(engine, drills_too)
    assert [r.event_type for r in rows] == ["warning.opened", "recommendation.issued"]
    warning = json.loads(rows[0].payload)["data"]["warning"]
    assert (warning["id"], warning["exercise"], warning["drill_id"]) == (wid, True, "drill-1")


def test_a_muted_warning_tells_nothing_until_unmuted_then_it_opens(engine: sa.Engine) -> None:
    svc = warnings_service(engine, mutes=Silenced())
    sid = subscribe(engine)
    [wid] = svc.apply_signals([flood("red")], now=NOW, actor="detector")
    assert svc.get(wid).muted_by == "silence:s1"  # type: ignore[union-attr]
    svc.annotate(wid, now=NOW + timedelta(minutes=1), actor="duty officer", note="held")
    assert deliveries(engine) == []

    svc.set_muted(wid, None, now=NOW + timedelta(minutes=2), note="silence ended")
    rows = deliveries(engine, sid)
    assert [r.event_type for r in rows] == ["warning.opened", "recommendation.issued"]
    assert json.loads(rows[0].payload)["data"]["change"]["action"] == "unmuted"


def test_a_told_warning_muted_later_still_tells_that_it_resolved(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    sid = subscribe(engine)
    [wid] = svc.apply_signals([flood("red")], now=NOW, actor="detector")
    svc.set_muted(wid, "silence:s1", now=NOW + timedelta(minutes=1))
    svc.annotate(wid, now=NOW + timedelta(minutes=2), actor="duty officer", note="held")
    svc.resolve(wid, now=NOW + timedelta(minutes=3), actor="duty officer")
    assert types(engine, sid) == ["warning.opened", "recommendation.issued", "warning.resolved"]


def test_disabled_and_deleted_subscriptions_receive_nothing(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    live = subscribe(engine)
    disabled = subscribe(engine, enabled=False, disabled_reason="410 Gone", disabled_at=NOW)
    deleted = subscribe(engine, deleted_at=NOW)
    svc.apply_signals([flood("red")], now=NOW, actor="detector")
    assert types(engine, live) == ["warning.opened", "recommendation.issued"]
    assert types(engine, disabled) == types(engine, deleted) == []


def test_event_type_filters_pick_the_types_asked_for(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    sid = subscribe(engine, event_types=["warning.resolved", "recommendation.issued"])
    [wid] = svc.apply_signals([flood("red")], now=NOW, actor="detector")
    svc.acknowledge(wid, now=NOW, actor="duty officer")
    svc.resolve(wid, now=NOW, actor="duty officer")
    assert types(engine, sid) == ["recommendation.issued", "warning.resolved"]


def test_without_subscriptions_nothing_is_staged_and_without_an_outbox_nothing_either(
    engine: sa.Engine,
) -> None:
    svc = warnings_service(engine)
    svc.apply_signals([flood("red")], now=NOW, actor="detector")
    assert deliveries(engine) == []
    subscribe(engine)
    plain = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS, areas=AREAS)
    plain.apply_signals([gas("red")], now=NOW, actor="detector")
    assert deliveries(engine) == []


def test_a_subscription_with_a_level_the_city_does_not_know_never_blocks_a_warning(engine: sa.Engine) -> None:
    svc = warnings_service(engine)
    odd = subscribe(engine, min_level="purple")  # written around the API's validation
    live = subscribe(engine)
    [wid] = svc.apply_signals([flood("red")], now=NOW, actor="detector")
    assert svc.get(wid) is not None
    assert types(engine, odd) == [] and types(engine, live) == ["warning.opened", "recommendation.issued"]
