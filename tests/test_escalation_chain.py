"""The escalation chain (issue 10 item 2), operators' lifecycle actions over HTTP, and the lifecycle's
configuration; on SQLite and the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerts.service import WarningService
from app.auth.roles import Role
from app.main import create_app
from bench.isolation import isolated_settings
from config.check import check
from config.lifecycle import REMINDER_INTERVAL_MIN
from config.settings import CITY_DIR, Settings
from ingest.broker import EmbeddedBroker
from models.decision import DecisionRule
from models.engine import ScoringEngine
from tests.auth_helpers import bearer, new_key
from tests.factories import NOW, signal

MIN = timedelta(minutes=1)


def gas(level: str, at: datetime = NOW) -> object:
    return signal(sensor_id="gas-oldtown-01", kind="gas", hazard="gas_leak", level=level, value=55.0, ts=at)


def tiers(service: WarningService, wid: str) -> list[str]:
    w = service.get(wid)
    assert w is not None
    return [e.note.split(":")[0] for e in w.events if e.action == "handed_up"]


def test_an_unacknowledged_red_warning_climbs_the_chain_one_tier_per_ack_within(
    service: WarningService,
) -> None:
    [wid] = service.apply_signals([gas("red")], now=NOW, actor="d")
    w = service.get(wid)
    assert w is not None and (w.status, w.responder) == ("active", "grid duty officer")
    assert service.hand_up(now=NOW + 4 * MIN) == []  # red: 5 min to acknowledge
    assert service.hand_up(now=NOW + 5 * MIN) == [wid]
    assert service.hand_up(now=NOW + 9 * MIN) == []  # the district has its own 5 min
    assert service.hand_up(now=NOW + 10 * MIN) == [wid]
    assert service.hand_up(now=NOW + 60 * MIN) == []  # the city EOC is the last tier
    assert tiers(service, wid) == ["grid duty officer -> district EOC", "district EOC -> city EOC"]
    w = service.get(wid)
    assert w is not None and (w.responder, w.responder_since) == ("city EOC", NOW + 10 * MIN)
    last = w.events[-1]
    assert (last.actor, last.from_status, last.to_status, last.at) == (
        "citywarn",
        "active",
        "active",
        NOW + 10 * MIN,
    )


def test_acknowledged_blue_pending_and_muted_warnings_stay_with_their_responder(
    service: WarningService,
) -> None:
    [acked] = service.apply_signals([gas("orange")], now=NOW, actor="d")
    service.acknowledge(acked, now=NOW + MIN, actor="li")
    [blue] = service.apply_signals([signal(hazard="fire", kind="smoke", level="blue")], now=NOW, actor="d")
    [pending] = service.apply_signals([signal(level="yellow")], now=NOW, actor="d")  # flood: holds 15 min
    strain = signal(sensor_id="sg-1", hazard="structural_damage", kind="strain", level="red")
    [muted] = service.apply_signals([strain], now=NOW, actor="d")
    service.set_muted(muted, "silence:s-1", now=NOW, note="maintenance")
    assert service.hand_up(now=NOW + 600 * MIN) == []
    assert service.get(pending).responder is None  # type: ignore[union-attr]
    assert service.get(blue).responder == "grid duty officer"  # type: ignore[union-attr]


def test_an_escalated_acknowledged_warning_is_active_again_and_its_responder_timed_anew(
    service: WarningService,
) -> None:
    [wid] = service.apply_signals([gas("orange")], now=NOW, actor="d")
    service.acknowledge(wid, now=NOW + MIN, actor="li", actor_role="operator")
    after = service.escalate(
        wid, now=NOW + 20 * MIN, actor="li", actor_role="operator", note="smell spreading"
    )
    assert (after.status, after.level, after.responder_since) == ("active", "red", NOW + 20 * MIN)
    assert service.hand_up(now=NOW + 24 * MIN) == []
    assert service.hand_up(now=NOW + 25 * MIN) == [wid]


# ---- operators over HTTP ---------------------------------------------------------------------


@pytest.fixture
def app_client(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    settings = isolated_settings(
        bootstrap=broker.bootstrap, store_url=f"file://{tmp_path}/store.sqlite3", database_url=state_url
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_operators_assign_annotate_escalate_and_deescalate_with_their_key(app_client: TestClient) -> None:
    app = app_client.app
    svc = app.state.services  # type: ignore[attr-defined]
    at = datetime.now(UTC).replace(microsecond=0)
    [wid] = svc.warnings.apply_signals([gas("yellow", at)], now=at, actor="d")
    op = bearer(new_key(app, Role.OPERATOR, "duty officer Li"))  # type: ignore[arg-type]
    viewer = bearer(new_key(app, Role.VIEWER, "wall screen"))  # type: ignore[arg-type]
    base = f"/v1/warnings/{wid}"

    assert app_client.post(f"{base}/escalate", json={"note": "x"}, headers=viewer).status_code == 403
    grid = app_client.get("/v1/warnings", params={"scope": "grid"}, headers=viewer).json()
    assert [w["id"] for w in grid["items"]] == [wid] and grid["items"][0]["scope"] == "grid"
    assert app_client.get("/v1/warnings", params={"scope": "town"}, headers=viewer).status_code == 422
    assigned = app_client.post(f"{base}/assign", json={"assignee": "crew 7"}, headers=op)
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"] == "crew 7"
    noted = app_client.post(f"{base}/annotate", json={"note": "valve crew on the way"}, headers=op)
    up = app_client.post(f"{base}/escalate", json={"note": "smell spreading"}, headers=op)
    assert (noted.status_code, up.status_code) == (200, 200)
    assert up.json()["level"] == "orange"
    down = app_client.post(f"{base}/deescalate", json={"note": "valve closed"}, headers=op).json()
    assert down["level"] == "yellow"
    done = app_client.post(f"{base}/deescalate", headers=op).json()
    assert done["level"] == "blue"
    refused = app_client.post(f"{base}/deescalate", headers=op)
    assert refused.status_code == 409 and refused.headers["content-type"].startswith(
        "application/problem+json"
    )
    ops = [
        (e["action"], e["actor"], e["actor_role"], e["from_level"], e["to_level"], e["note"])
        for e in down["events"]
        if e["actor"] == "duty officer Li"
    ]
    assert ops == [
        ("assigned", "duty officer Li", "operator", "yellow", "yellow", "assigned to crew 7"),
        ("annotated", "duty officer Li", "operator", "yellow", "yellow", "valve crew on the way"),
        ("escalated", "duty officer Li", "operator", "yellow", "orange", "smell spreading"),
        ("deescalated", "duty officer Li", "operator", "orange", "yellow", "valve closed"),
    ]
    assert app_client.post(f"{base}/assign", json={"assignee": ""}, headers=op).status_code == 422
    assert (
        app_client.post(f"{base}/annotate", json={"note": "x", "actor": "me"}, headers=op).status_code == 422
    )
    assert app_client.post("/v1/warnings/nope/escalate", headers=op).status_code == 404
    resolved = app_client.post(f"{base}/resolve", headers=op).json()
    assert resolved["status"] == "resolved"
    assert app_client.post(f"{base}/escalate", headers=op).status_code == 409  # nothing leaves resolved
    late = app_client.post(f"{base}/annotate", json={"note": "after-action: valve seal replaced"}, headers=op)
    assert late.status_code == 200 and late.json()["status"] == "resolved"


# ---- configuration ---------------------------------------------------------------------------------


def test_the_release_must_outlast_the_detectors_reminder_interval(tmp_path: Path) -> None:
    assert DecisionRule().repeat_s == REMINDER_INTERVAL_MIN * 60
    assert ScoringEngine.__init__.__kwdefaults__["repeat_s"] == DecisionRule().repeat_s  # type: ignore[index]
    text = (CITY_DIR / "lifecycle.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "lifecycle.yaml"
    broken.write_text(text.replace("release: 45     # rivers", "release: 15     # rivers"), encoding="utf-8")
    problems = check(Settings(lifecycle_path=broken)).problems
    assert [(p.source.endswith("lifecycle.yaml"), p.where) for p in problems] == [
        (True, "hazards[flood].release")
    ]
    assert "reminder interval" in problems[0].message
    assert check(Settings()).problems == []


def test_a_warning_whose_readings_stopped_is_left_as_it_is_and_says_so_once(service: WarningService) -> None:
    [wid] = service.apply_signals([gas("red")], now=NOW, actor="d")
    assert service.note_stale(now=NOW + 179 * MIN) == []
    assert service.note_stale(now=NOW + 181 * MIN) == [wid]
    assert service.note_stale(now=NOW + 300 * MIN) == []  # said once
    w = service.get(wid)
    assert w is not None and (w.status, w.level) == ("active", "red")
    assert w.events[-1].action == "stale" and "left active at red" in w.events[-1].note


def test_a_pending_warning_an_operator_raises_to_red_is_active_at_once(service: WarningService) -> None:
    [wid] = service.apply_signals([signal(level="orange")], now=NOW, actor="d")  # flood: pending
    service.escalate(wid, now=NOW + MIN, actor="li", actor_role="operator", note="levee seeping")
    w = service.get(wid)
    assert w is not None and (w.status, w.level, w.events[-1].action) == ("active", "red", "activated")
    assert (w.events[-1].actor, w.responder, w.activated_at) == ("citywarn", "grid duty officer", NOW)
