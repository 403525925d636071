"""Webhook subscriptions through the real app on SQLite and PostgreSQL: create, read, change, delete;
the secret shown once and rotated with a grace; owner scoping (another integrator's is a 404, an
admin sees all); what is refused; and the delivery operations (list, retry, replay, test) as the
outbox rows they write. No delivery worker runs here: the rows stay as the routes left them."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from alerts.db import attempts, deliveries
from alerts.delivery import DeliveryWorker
from alerts.subscription_store import SubscriptionStore
from alerts.subscriptions import new_secret
from app.auth.roles import Role
from app.main import create_app
from app.services import Services
from bench.isolation import isolated_settings
from config.timeutil import as_utc
from ingest.broker import EmbeddedBroker
from tests.auth_helpers import bearer, new_key
from tests.webhook_receiver import Receiver, reply

RECEIVER = "http://127.0.0.1:9/hooks"  # never called: no delivery worker runs in these tests
PUBLIC = "http://93.184.216.34/hooks"  # a public address literal: passes the check without DNS
GRACE_S = 3600


@contextmanager
def started(
    state_url: str, broker: EmbeddedBroker, tmp_path: Path, *, allow_private: bool
) -> Iterator[TestClient]:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=state_url,
        rate_limits_enabled=False,
        webhook_allow_private=allow_private,
        webhook_secret_grace_s=GRACE_S,
    )
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def client(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    """The app allowing private targets (as tests and the demo do), with no key of its own."""
    with started(state_url, broker, tmp_path, allow_private=True) as c:
        yield c


@pytest.fixture
def guarded(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    """The app at the default: private, loopback, link-local and metadata targets refused."""
    with started(state_url, broker, tmp_path, allow_private=False) as c:
        yield c


def key(client: TestClient, role: Role, label: str) -> dict[str, str]:
    return bearer(new_key(client.app, role, label))  # type: ignore[arg-type]


def services(client: TestClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined, no-any-return]


def create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = client.post("/v1/subscriptions", json={"url": RECEIVER, **body}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def rows(client: TestClient, subscription_id: str) -> list[dict[str, Any]]:
    d = deliveries.c
    query = sa.select(deliveries).where(d.subscription_id == subscription_id).order_by(d.id)
    with services(client).engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def outbox_row(client: TestClient, subscription_id: str, *, created_at: datetime, **values: Any) -> int:
    """A delivery as the outbox writes one for a warning event."""
    row = {
        "message_id": f"msg_{uuid.uuid4().hex}",
        "subscription_id": subscription_id,
        "warning_id": "w-1",
        "event_id": 7,
        "event_type": "warning.opened",
        "payload": json.dumps({"type": "warning.opened", "data": {"n": created_at.isoformat()}}),
        "created_at": created_at,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": created_at,
        **values,
    }
    with services(client).engine.begin() as conn:
        return int(conn.execute(deliveries.insert().values(**row).returning(deliveries.c.id)).scalar_one())


def problems(resp: Any) -> dict[str, str]:
    assert resp.status_code == 422, resp.text
    return {e["field"]: e["reason"] for e in resp.json()["errors"]}


# ---- the life of a subscription -------------------------------------------------------------------


def test_create_read_list_change_and_delete(client: TestClient) -> None:
    district = key(client, Role.INTEGRATOR, "riverside district command")
    made = create(
        client,
        district,
        description="district command system",
        event_types=["warning.opened", "warning.escalated", "warning.opened"],
        hazards=["flood"],
        min_level="orange",
        areas=["d-riverside"],
    )
    sid = made["id"]
    assert made["secret"].startswith("whsec_")
    assert (made["event_types"], made["hazards"], made["min_level"], made["areas"]) == (
        ["warning.opened", "warning.escalated"],
        ["flood"],
        "orange",
        ["d-riverside"],
    )
    assert made["include_exercises"] is False and made["enabled"] is True and made["failures"] == 0
    assert made["owner_label"] == "riverside district command"
    assert made["previous_secret_valid_until"] is None

    read = client.get(f"/v1/subscriptions/{sid}", headers=district)
    assert read.status_code == 200
    assert "secret" not in read.json(), "the secret is shown in the create's answer only"
    shown = read.json()
    assert [(e["action"], e["actor"]) for e in shown.pop("history")] == [
        ("created", "riverside district command")
    ]
    assert shown == {k: v for k, v in made.items() if k != "secret"}
    page = client.get("/v1/subscriptions", headers=district).json()
    assert (page["total"], [s["id"] for s in page["items"]]) == (1, [sid])

    changed = client.patch(
        f"/v1/subscriptions/{sid}",
        json={"description": "new system", "min_level": None, "hazards": [], "include_exercises": True},
        headers=district,
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert (after["description"], after["min_level"], after["hazards"], after["include_exercises"]) == (
        "new system",
        None,
        [],
        True,
    )
    assert after["event_types"] == ["warning.opened", "warning.escalated"], (
        "fields not sent stay as they were"
    )
    assert client.patch(f"/v1/subscriptions/{sid}", json={}, headers=district).status_code == 422
    same = client.patch(f"/v1/subscriptions/{sid}", json={"description": "new system"}, headers=district)
    assert same.json()["updated_at"] == after["updated_at"], "a PATCH that changes nothing changes nothing"

    assert client.delete(f"/v1/subscriptions/{sid}", headers=district).status_code == 204
    assert client.get(f"/v1/subscriptions/{sid}", headers=district).status_code == 404
    assert client.delete(f"/v1/subscriptions/{sid}", headers=district).status_code == 404
    assert client.get("/v1/subscriptions", headers=district).json()["total"] == 0
    history = SubscriptionStore(services(client).engine).history(sid)
    assert [(e.action, e.actor) for e in history] == [
        ("created", "riverside district command"),
        ("updated", "riverside district command"),
        ("deleted", "riverside district command"),
    ]
    assert history[1].note == "description, hazards, include_exercises, min_level", "what changed"


def test_the_secret_is_shown_once_and_rotation_keeps_both_signing_through_the_grace(
    client: TestClient,
) -> None:
    gateway = key(client, Role.INTEGRATOR, "sms gateway")
    made = create(client, gateway)
    sid, first = made["id"], made["secret"]
    before = datetime.now(UTC)
    rotated = client.post(f"/v1/subscriptions/{sid}/rotate-secret", headers=gateway)
    after = datetime.now(UTC)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"]
    assert second.startswith("whsec_") and second != first
    shown = client.get(f"/v1/subscriptions/{sid}", headers=gateway).json()
    until = datetime.fromisoformat(shown["previous_secret_valid_until"])
    assert before + timedelta(seconds=GRACE_S) <= until <= after + timedelta(seconds=GRACE_S)
    assert "secret" not in shown

    sub = SubscriptionStore(services(client).engine).get(sid, scope=None)
    assert sub is not None
    assert sub.signing_secrets(after) == [second, first], "both sign during the grace, the new one first"
    assert sub.signing_secrets(until + timedelta(seconds=1)) == [second]
    assert sub.previous_valid_until(until) is None

    third = client.post(f"/v1/subscriptions/{sid}/rotate-secret", headers=gateway).json()["secret"]
    sub = SubscriptionStore(services(client).engine).get(sid, scope=None)
    assert sub is not None and sub.signing_secrets(datetime.now(UTC)) == [third, second], "at most two sign"
    actions = [e.action for e in SubscriptionStore(services(client).engine).history(sid)]
    assert actions == ["created", "secret_rotated", "secret_rotated"]


def test_secrets_are_standard_webhooks_secrets_and_never_repeat() -> None:
    made = {new_secret() for _ in range(200)}
    assert len(made) == 200
    for secret in made:
        assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32


# ---- who may see what -----------------------------------------------------------------------------


def test_another_integrators_subscription_is_404_and_an_admin_sees_all(client: TestClient) -> None:
    mine = key(client, Role.INTEGRATOR, "north grid platform")
    theirs = key(client, Role.INTEGRATOR, "lakeside district")
    admin = key(client, Role.ADMIN, "eoc admin")
    sid = create(client, mine, hazards=["flood"])["id"]
    create(client, theirs)

    attempts_by_a_stranger: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/v1/subscriptions/{sid}", {}),
        ("PATCH", f"/v1/subscriptions/{sid}", {"json": {"description": "mine now"}}),
        ("PATCH", f"/v1/subscriptions/{sid}", {"json": {"hazards": ["no-such-hazard"]}}),
        ("DELETE", f"/v1/subscriptions/{sid}", {}),
        ("POST", f"/v1/subscriptions/{sid}/test", {}),
        ("POST", f"/v1/subscriptions/{sid}/rotate-secret", {}),
        ("GET", f"/v1/subscriptions/{sid}/deliveries", {}),
        ("POST", f"/v1/subscriptions/{sid}/replay", {"params": {"since": "2026-01-01T00:00:00Z"}}),
    ]
    for method, path, kw in attempts_by_a_stranger:
        resp = client.request(method, path, headers=theirs, **kw)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["detail"] == f"no subscription {sid}", "the same answer as for no such id"
    assert rows(client, sid) == [], "nothing was queued for the stranger"
    theirs_listed = client.get("/v1/subscriptions", headers=theirs).json()
    assert sid not in [s["id"] for s in theirs_listed["items"]] and theirs_listed["total"] == 1

    assert client.get(f"/v1/subscriptions/{sid}", headers=admin).status_code == 200
    assert client.get("/v1/subscriptions", headers=admin).json()["total"] == 2
    patched = client.patch(f"/v1/subscriptions/{sid}", json={"enabled": False}, headers=admin)
    assert patched.status_code == 200 and patched.json()["disabled_reason"] == "disabled by eoc admin"
    assert client.post(f"/v1/subscriptions/{sid}/test", headers=admin).status_code == 202
    assert client.get(f"/v1/subscriptions/{sid}", headers=mine).json()["enabled"] is False

    viewer = key(client, Role.VIEWER, "wall screen")
    assert client.get("/v1/subscriptions", headers=viewer).status_code == 403
    assert client.post("/v1/subscriptions", json={"url": RECEIVER}, headers=viewer).status_code == 403


# ---- what is refused ------------------------------------------------------------------------------


def test_unknown_event_types_hazards_areas_and_levels_are_refused_by_name(client: TestClient) -> None:
    who = key(client, Role.INTEGRATOR, "integrator")

    def refused(**body: Any) -> dict[str, str]:
        return problems(client.post("/v1/subscriptions", json={"url": RECEIVER, **body}, headers=who))

    assert list(refused(event_types=["warning.opened", "warning.exploded"])) == ["body.event_types[1]"]
    assert list(refused(hazards=["flood", "volcano"])) == ["body.hazards[1]"]
    assert "flood" in refused(hazards=["volcano"])["body.hazards[0]"], "the reason lists the known hazards"
    assert list(refused(areas=["d-riverside", "g-atlantis-01"])) == ["body.areas[1]"]
    assert list(refused(min_level="purple")) == ["body.min_level"]
    assert list(refused(owner="someone else")) == ["body.owner"], "the owner is the key, never the body"
    assert list(refused(secret="whsec_mine")) == ["body.secret"], "citywarn makes the secret"
    assert list(refused(min_level=None)) == ["body.min_level"], "leave a field out rather than send null"
    assert problems(client.post("/v1/subscriptions", json={}, headers=who)) == {"body.url": "Field required"}
    assert client.get("/v1/subscriptions", headers=who).json()["total"] == 0

    sid = create(client, who)["id"]
    resp = client.patch(
        f"/v1/subscriptions/{sid}", json={"areas": ["nowhere"], "hazards": ["flood"]}, headers=who
    )
    assert list(problems(resp)) == ["body.areas[0]"]
    assert client.get(f"/v1/subscriptions/{sid}", headers=who).json()["hazards"] == [], (
        "a refused PATCH changes nothing"
    )


REFUSED_TARGETS = {
    "loopback": ("http://127.0.0.1:8000/hooks", "loopback"),
    "loopback v6": ("http://[::1]/hooks", "loopback"),
    "private": ("https://10.20.30.40/hooks", "private"),
    "link-local": ("http://169.254.10.1/hooks", "link-local"),
    "metadata": ("http://169.254.169.254/latest/meta-data/", "metadata"),
    "metadata by name": ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    "credentials in the URL": ("https://user:secret@93.184.216.34/hooks", "credentials"),
    "non-http scheme": ("ftp://93.184.216.34/hooks", "only http and https"),
    "file scheme": ("file:///etc/passwd", "only http and https"),
}


@pytest.mark.parametrize("target", REFUSED_TARGETS)
def test_each_class_of_refused_address_is_a_422_naming_the_url(guarded: TestClient, target: str) -> None:
    url, reason = REFUSED_TARGETS[target]
    who = key(guarded, Role.INTEGRATOR, "integrator")
    refused = problems(guarded.post("/v1/subscriptions", json={"url": url}, headers=who))
    assert list(refused) == ["body.url"] and reason in refused["body.url"], refused
    assert guarded.get("/v1/subscriptions", headers=who).json()["total"] == 0

    sid = create(guarded, who, url=PUBLIC)["id"]
    changed = problems(guarded.patch(f"/v1/subscriptions/{sid}", json={"url": url}, headers=who))
    assert reason in changed["body.url"]
    assert guarded.get(f"/v1/subscriptions/{sid}", headers=who).json()["url"] == PUBLIC


def test_a_loopback_receiver_is_allowed_when_private_targets_are(client: TestClient) -> None:
    assert create(client, key(client, Role.INTEGRATOR, "demo"))["url"] == RECEIVER


# ---- disabling and enabling -----------------------------------------------------------------------


def test_disable_and_enable_and_enabling_clears_the_failure_run(client: TestClient) -> None:
    who = key(client, Role.INTEGRATOR, "community grid app")
    sid = create(client, who)["id"]
    off = client.patch(f"/v1/subscriptions/{sid}", json={"enabled": False}, headers=who).json()
    assert off["enabled"] is False and off["disabled_reason"] == "disabled by community grid app"
    assert off["disabled_at"] is not None

    # As the delivery worker leaves an endpoint it disabled after a run of failures:
    since = datetime.now(UTC) - timedelta(days=2)
    with services(client).engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE webhook_subscriptions SET failures = 12, failing_since = :since, "
                "disabled_reason = 'failed 12 times in a row' WHERE id = :id"
            ),
            {"since": since, "id": sid},
        )
    shown = client.get(f"/v1/subscriptions/{sid}", headers=who).json()
    assert (shown["failures"], shown["disabled_reason"]) == (12, "failed 12 times in a row")

    on = client.patch(f"/v1/subscriptions/{sid}", json={"enabled": True}, headers=who).json()
    assert (on["enabled"], on["disabled_reason"], on["disabled_at"], on["failures"], on["failing_since"]) == (
        True,
        None,
        None,
        0,
        None,
    )
    again = client.patch(f"/v1/subscriptions/{sid}", json={"enabled": True}, headers=who).json()
    assert again["updated_at"] == on["updated_at"], "enabling an enabled subscription changes nothing"
    actions = [e.action for e in SubscriptionStore(services(client).engine).history(sid)]
    assert actions == ["created", "disabled", "enabled"]


# ---- deliveries: list, retry, replay, test --------------------------------------------------------


def test_a_test_queues_a_ping_that_the_deliveries_list_shows_with_its_attempts(client: TestClient) -> None:
    who = key(client, Role.INTEGRATOR, "sms gateway")
    sid = create(client, who, hazards=["gas_leak"], event_types=["warning.resolved"])["id"]
    before = datetime.now(UTC)
    resp = client.post(f"/v1/subscriptions/{sid}/test", headers=who)
    assert resp.status_code == 202, resp.text
    ping = resp.json()
    [row] = rows(client, sid)
    assert row["id"] == ping["id"] and row["message_id"] == ping["message_id"]
    assert row["message_id"].startswith("msg_") and len(row["message_id"]) == 36
    assert (row["event_type"], row["warning_id"], row["status"], row["attempts"]) == (
        "ping",
        None,
        "pending",
        0,
    )
    assert row["next_attempt_at"] is not None
    body = json.loads(row["payload"])
    assert body["type"] == "ping" and body["data"] == {"subscription_id": sid}
    assert before <= datetime.fromisoformat(body["timestamp"]) <= datetime.now(UTC)

    # Two attempts as the worker records them: refused, then a 503.
    with services(client).engine.begin() as conn:
        for n, code, error in [(1, None, "connection refused"), (2, 503, None)]:
            conn.execute(
                attempts.insert().values(
                    delivery_id=row["id"],
                    attempt=n,
                    started_at=before + timedelta(seconds=n),
                    status_code=code,
                    latency_ms=12.5 * n,
                    error=error,
                    worker="w1",
                )
            )
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id == row["id"])
            .values(
                attempts=2,
                last_status_code=503,
                last_latency_ms=25.0,
                next_attempt_at=before + timedelta(minutes=5),
            )
        )
    second = client.post(f"/v1/subscriptions/{sid}/test", headers=who).json()
    page = client.get(f"/v1/subscriptions/{sid}/deliveries", headers=who).json()
    assert page["total"] == 2 and [d["id"] for d in page["items"]] == [second["id"], ping["id"]], (
        "newest first"
    )
    shown = page["items"][1]
    assert [(a["attempt"], a["status_code"], a["latency_ms"], a["error"]) for a in shown["attempts"]] == [
        (1, None, 12.5, "connection refused"),
        (2, 503, 25.0, None),
    ]
    assert (shown["attempt_count"], shown["last_status_code"]) == (2, 503)
    assert datetime.fromisoformat(shown["next_attempt_at"]) == before + timedelta(minutes=5)
    one = client.get(
        f"/v1/subscriptions/{sid}/deliveries", params={"limit": 1, "offset": 1}, headers=who
    ).json()
    assert [d["id"] for d in one["items"]] == [ping["id"]]


def test_retry_sends_a_failed_or_pending_delivery_again_now_and_refuses_a_delivered_one(
    client: TestClient,
) -> None:
    who = key(client, Role.INTEGRATOR, "district command")
    sid = create(client, who)["id"]
    other = create(client, who)["id"]
    long_ago = datetime.now(UTC) - timedelta(hours=30)
    failed = outbox_row(
        client,
        sid,
        created_at=long_ago,
        status="failed",
        attempts=8,
        next_attempt_at=None,
        lease_until=long_ago + timedelta(minutes=1),
        claimed_by="w-gone",
    )
    delivered = outbox_row(client, sid, created_at=long_ago, status="delivered", attempts=1)
    before = datetime.now(UTC)
    resp = client.post(f"/v1/subscriptions/{sid}/deliveries/{failed}/retry", headers=who)
    assert resp.status_code == 202, resp.text
    row = next(r for r in rows(client, sid) if r["id"] == failed)
    assert (row["status"], row["attempts"], row["lease_until"], row["claimed_by"]) == (
        "pending",
        0,
        None,
        None,
    )
    assert before <= as_utc(row["next_attempt_at"]) <= datetime.now(UTC)

    refused = client.post(f"/v1/subscriptions/{sid}/deliveries/{delivered}/retry", headers=who)
    assert refused.status_code == 409 and "delivered" in refused.json()["detail"]
    assert client.post(f"/v1/subscriptions/{other}/deliveries/{failed}/retry", headers=who).status_code == 404
    assert client.post(f"/v1/subscriptions/{sid}/deliveries/999999/retry", headers=who).status_code == 404


def test_replay_queues_each_message_of_the_range_again_with_its_own_id_and_payload(
    client: TestClient,
) -> None:
    who = key(client, Role.INTEGRATOR, "district command")
    sid = create(client, who)["id"]
    t0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    early = outbox_row(client, sid, created_at=t0 - timedelta(hours=1), status="delivered", attempts=1)
    first = outbox_row(client, sid, created_at=t0, status="delivered", attempts=1)
    second = outbox_row(client, sid, created_at=t0 + timedelta(minutes=10), status="failed", attempts=8)
    late = outbox_row(client, sid, created_at=t0 + timedelta(hours=2), status="delivered", attempts=1)
    originals = {r["id"]: r for r in rows(client, sid)}

    params = {"since": "2026-11-30T08:00:00Z", "until": "2026-11-30T16:30:00+08:00"}  # 08:30 UTC
    resp = client.post(f"/v1/subscriptions/{sid}/replay", params=params, headers=who)
    assert resp.status_code == 202, resp.text
    assert resp.json()["queued"] == 2
    copies = [r for r in rows(client, sid) if r["id"] not in originals]
    assert [(c["message_id"], c["payload"], c["warning_id"], c["event_type"]) for c in copies] == [
        (originals[i]["message_id"], originals[i]["payload"], "w-1", "warning.opened")
        for i in (first, second)
    ], "the same webhook-id and bytes, in the original order"
    assert all((c["status"], c["attempts"]) == ("pending", 0) for c in copies)
    assert [d["id"] for d in resp.json()["deliveries"]] == [c["id"] for c in copies]
    assert early not in [c["id"] for c in copies] and late not in [c["id"] for c in copies]

    again = client.post(
        f"/v1/subscriptions/{sid}/replay", params={"since": "2026-11-30T08:00:00Z"}, headers=who
    )
    assert again.json()["queued"] == 3, "each message once (first, second, late), not once per earlier copy"
    assert problems(client.post(f"/v1/subscriptions/{sid}/replay", headers=who)) == {
        "query.since": "Field required"
    }
    replay_doc = client.get("/openapi.json").json()["paths"]["/v1/subscriptions/{subscription_id}/replay"]
    assert {p["name"]: p["required"] for p in replay_doc["post"]["parameters"] if p["in"] == "query"} == {
        "since": True,
        "until": False,
    }, "the document says since is required, as it is"


def test_delete_cancels_pending_deliveries_and_leaves_the_rest_for_the_record(client: TestClient) -> None:
    who = key(client, Role.INTEGRATOR, "district command")
    sid = create(client, who)["id"]
    now = datetime.now(UTC)
    pending = outbox_row(client, sid, created_at=now)
    delivered = outbox_row(client, sid, created_at=now, status="delivered", attempts=1)
    failed = outbox_row(client, sid, created_at=now, status="failed", attempts=8)
    kept = create(client, who)["id"]
    kept_pending = outbox_row(client, kept, created_at=now)

    assert client.delete(f"/v1/subscriptions/{sid}", headers=who).status_code == 204
    status = {r["id"]: r["status"] for r in rows(client, sid) + rows(client, kept)}
    assert status == {pending: "cancelled", delivered: "delivered", failed: "failed", kept_pending: "pending"}
    assert client.get(f"/v1/subscriptions/{sid}/deliveries", headers=who).status_code == 404
    [deleted] = [e for e in SubscriptionStore(services(client).engine).history(sid) if e.action == "deleted"]
    assert deleted.note == "1 pending delivery(ies) cancelled"


def test_an_endpoint_gone_is_disabled_and_its_subscription_says_so_with_who_and_why(
    client: TestClient,
) -> None:
    """The operators' notice of an automatic disabling is in the subscription's own record."""
    receiver = Receiver()
    receiver.answer = lambda handler, _r: reply(handler, 410)
    try:
        who = key(client, Role.INTEGRATOR, "sms gateway")
        sid = create(client, who, url=f"{receiver.url}/hooks")["id"]
        ping = client.post(f"/v1/subscriptions/{sid}/test", json={"note": "after the deploy"}, headers=who)
        assert ping.status_code == 202
        svc = services(client)
        worker = DeliveryWorker(svc.engine, svc.settings, worker_id="t", clock=lambda: datetime.now(UTC))
        try:
            assert worker.deliver_due(datetime.now(UTC)) == 1
        finally:
            worker.close()
        assert len(receiver.received()) == 1
    finally:
        receiver.close()
    shown = client.get(f"/v1/subscriptions/{sid}", headers=who).json()
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "410 Gone")
    assert [(e["action"], e["actor"]) for e in shown["history"]] == [
        ("created", "sms gateway"),
        ("pinged", "sms gateway"),
        ("auto_disabled", "citywarn"),
    ]
    assert shown["history"][1]["note"] == f"delivery {ping.json()['id']}; after the deploy", (
        "the caller's why"
    )
    assert shown["history"][-1]["note"] == "410 Gone"
