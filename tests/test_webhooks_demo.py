"""Webhooks on `citywarn run --demo` (issue 11, what must hold): an admin subscribes a loopback
receiver through the API and gets the demo's warning events, each signed under the secret the
create answered; an integrator subscribed to red floods in one district gets those and nothing
else, and another integrator's key cannot see that subscription."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from alerts.subscriptions import EVENT_TYPES
from config.areas import load_areas
from config.catalog import LEVELS
from tests.auth_helpers import cli_key
from tests.pipeline_harness import demo_run
from tests.webhook_receiver import Received, Receiver

DISTRICT = "d-riverside"  # where the demo's river and underpass flood
AREAS = load_areas()


@dataclass(frozen=True)
class Demo:
    base: str
    admin: dict[str, str]
    cwd: Path
    env: dict[str, str]
    receiver: Receiver

    def key(self, role: str, label: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {cli_key(role, label, cwd=self.cwd, env=self.env)}"}

    def subscribe(self, headers: dict[str, str], path: str, **body: Any) -> dict[str, Any]:
        url = f"{self.receiver.url}{path}"
        resp = httpx.post(
            f"{self.base}/v1/subscriptions", json={"url": url, **body}, headers=headers, timeout=10
        )
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def at(self, path: str) -> list[Received]:
        return [r for r in self.receiver.received() if r.path == path]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`citywarn run --demo` with private targets allowed (the receiver is on loopback)."""
    cwd = tmp_path_factory.mktemp("webhooks-demo")
    receiver = Receiver()
    try:
        with demo_run(cwd, {"CITYWARN_WEBHOOK_ALLOW_PRIVATE": "true"}) as run:
            yield Demo(run.base, run.admin, cwd, run.env, receiver)
    finally:
        receiver.close()


def poll(what: str, condition: Callable[[], Any], timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.2)
    return found


def verified(secret: str, got: Received) -> dict[str, Any]:
    """The body, once its Standard Webhooks signature checks out under ``secret`` (else it raises)."""
    return Webhook(secret).verify(got.body, got.headers)  # type: ignore[no-any-return]


def within(area: str, district: str) -> bool:
    return area == district or (area in AREAS and AREAS.parent_of(area) == district)


def red_flood_in_district(body: dict[str, Any]) -> bool:
    """The matching rule for hazards [flood], min_level red, areas [DISTRICT]: the warning's level
    before or after the change (a recommendation: the warning's level) is red."""
    warning = body["data"]["warning"]
    change = body["data"].get("change")
    levels = [change["from_level"], change["to_level"]] if change else [warning["level"]]
    return warning["hazard"] == "flood" and within(warning["area"], DISTRICT) and "red" in levels


def test_an_admins_subscription_receives_the_demos_warning_events_signed(demo: Demo) -> None:
    made = demo.subscribe(demo.admin, "/everything", description="EOC wall")
    got = demo.receiver.wait_for(
        lambda r: len([x for x in r if x.path == "/everything"]) >= 10, timeout_s=120
    )
    mine = [r for r in got if r.path == "/everything"]
    bodies = [verified(made["secret"], r) for r in mine]
    assert {b["type"] for b in bodies} <= set(EVENT_TYPES)
    assert "warning.opened" in {b["type"] for b in bodies}
    assert all(r.headers["webhook-id"].startswith("msg_") for r in mine)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(mine[0].body, mine[0].headers)

    deliveries = httpx.get(
        f"{demo.base}/v1/subscriptions/{made['id']}/deliveries", headers=demo.admin, timeout=10
    ).json()
    delivered = {d["message_id"] for d in deliveries["items"] if d["status"] == "delivered"}
    received_by_now = {r.headers["webhook-id"] for r in demo.at("/everything")}  # read after the list
    assert delivered and delivered <= received_by_now


def test_a_ping_after_a_rotation_verifies_under_the_new_secret_and_the_old(demo: Demo) -> None:
    made = demo.subscribe(demo.admin, "/pinged", event_types=["warning.resolved"], hazards=["fire"])
    sub = f"{demo.base}/v1/subscriptions/{made['id']}"
    rotated = httpx.post(f"{sub}/rotate-secret", headers=demo.admin, timeout=10)
    assert rotated.status_code == 200, rotated.text
    queued = httpx.post(f"{sub}/test", headers=demo.admin, timeout=10)
    assert queued.status_code == 202, queued.text
    got = demo.receiver.wait_for(lambda r: any(x.path == "/pinged" for x in r))
    [ping] = [x for x in got if x.path == "/pinged"]  # its filters match nothing the demo does
    assert ping.headers["webhook-id"] == queued.json()["message_id"]
    for secret in (rotated.json()["secret"], made["secret"]):
        body = verified(secret, ping)
        assert body["type"] == "ping" and body["data"] == {"subscription_id": made["id"]}
    shown = poll(
        "the ping shown delivered",
        lambda: [
            d
            for d in httpx.get(f"{sub}/deliveries", headers=demo.admin, timeout=10).json()["items"]
            if d["status"] == "delivered"
        ],
    )
    assert [(d["event_type"], d["attempts"][-1]["status_code"]) for d in shown] == [("ping", 204)]


def test_an_integrator_subscribed_to_red_floods_in_a_district_gets_those_only(demo: Demo) -> None:
    riverside = demo.key("integrator", "riverside district command")
    stranger = demo.key("integrator", "lakeside district command")
    operator = demo.key("operator", "duty officer")
    # The filtered subscription first, then a control that hears everything: every event the
    # control hears, the filtered one could have heard too.
    flood = demo.subscribe(riverside, "/red-floods", hazards=["flood"], min_level="red", areas=[DISTRICT])
    control = demo.subscribe(demo.admin, "/control")

    seen = httpx.get(f"{demo.base}/v1/subscriptions/{flood['id']}", headers=stranger, timeout=10)
    assert seen.status_code == 404
    listed = httpx.get(f"{demo.base}/v1/subscriptions", headers=stranger, timeout=10).json()
    assert listed["total"] == 0
    assert (
        httpx.get(f"{demo.base}/v1/subscriptions/{flood['id']}", headers=riverside, timeout=10).status_code
        == 200
    )

    # An operator takes a riverside flood up to red and back down below it: the step up and the
    # step down from red must reach the integrator, the step from orange to yellow must not; and
    # acknowledges another hazard's warning, which only the control hears.
    warning = poll("an open riverside flood warning", lambda: _open_flood(demo))
    level = warning["level"]
    if level == "red":  # the step up must be ours
        level = _act(demo, operator, warning["id"], "deescalate")
    while level != "red":
        level = _act(demo, operator, warning["id"], "escalate")
    while level not in ("yellow", "blue"):
        level = _act(demo, operator, warning["id"], "deescalate")
    other = poll("an active warning of another hazard", lambda: _active_other_than_flood(demo))
    _act(demo, operator, other["id"], "acknowledge")

    def change_of(body: dict[str, Any], warning_id: str) -> dict[str, Any]:
        change = body["data"].get("change")
        return change if body["data"]["warning"]["id"] == warning_id and change is not None else {}

    def control_bodies() -> list[dict[str, Any]]:
        return [verified(control["secret"], r) for r in demo.at("/control")]

    def flood_bodies() -> list[dict[str, Any]]:
        return [verified(flood["secret"], r) for r in demo.at("/red-floods")]

    poll(
        "the control hears the flood's step to yellow and the acknowledgement",
        lambda: (
            {"yellow", "acknowledged"}
            <= {change_of(b, warning["id"]).get("to_level") for b in control_bodies()}
            | {change_of(b, other["id"]).get("action") for b in control_bodies()}
        ),
    )
    heard = control_bodies()
    expected = {json.dumps(b, sort_keys=True) for b in heard if red_flood_in_district(b)}
    poll(
        "the integrator hears every red riverside flood event the control heard",
        lambda: expected <= {json.dumps(b, sort_keys=True) for b in flood_bodies()},
    )
    received = flood_bodies()
    steps = [(c["from_level"], c["to_level"]) for b in received if (c := change_of(b, warning["id"]))]
    assert ("orange", "red") in steps and ("red", "orange") in steps, steps
    assert [b for b in received if not red_flood_in_district(b)] == [], "only red floods in the district"
    left_out = [b for b in heard if not red_flood_in_district(b)]
    assert any(change_of(b, warning["id"]).get("to_level") == "yellow" for b in left_out)
    assert any(change_of(b, other["id"]).get("action") == "acknowledged" for b in left_out)


def _active_other_than_flood(demo: Demo) -> dict[str, Any] | None:
    page = httpx.get(
        f"{demo.base}/v1/warnings", params={"status": "active", "limit": 500}, headers=demo.admin, timeout=10
    ).json()
    return next((w for w in page["items"] if w["hazard"] != "flood" and not w.get("muted_by")), None)


def _open_flood(demo: Demo) -> dict[str, Any] | None:
    page = httpx.get(
        f"{demo.base}/v1/warnings",
        params={"hazard": "flood", "scope": "grid", "limit": 500},
        headers=demo.admin,
        timeout=10,
    ).json()
    return next(
        (
            w
            for w in page["items"]
            if within(w["area"], DISTRICT)
            and w["status"] in ("active", "acknowledged")
            and not w.get("muted_by")
        ),
        None,
    )


def _act(demo: Demo, headers: dict[str, str], warning_id: str, verb: str) -> str:
    resp = httpx.post(
        f"{demo.base}/v1/warnings/{warning_id}/{verb}",
        json={"note": "webhook test"},
        headers=headers,
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    level: str = resp.json()["level"]
    assert level in LEVELS
    return level
