"""Drills through the real app, on SQLite and PostgreSQL: the demo day replayed as an exercise opens
exercise warnings (flood and gas) in the live warning service and nothing real; lists, the CAP feed
and area risk leave them out unless asked; their CAP documents say Exercise and validate; a drill
stops when told, and one cut short by a stop of the service is interrupted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from alerts.drill_store import Drill, DrillStore
from alerts.drills import ScenarioData, steps
from app.auth.roles import Role
from app.main import create_app
from app.services import Services
from bench.isolation import isolated_settings
from config.settings import Settings
from demo.city import GAS_GRID
from ingest.broker import EmbeddedBroker
from store.schemas import Point, ReportRecord
from tests.auth_helpers import admin_client, bearer, new_key
from tests.test_cap import CAP_DIR, NS, text

DRILL_TIMEOUT_S = 120


@pytest.fixture
def settings(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=state_url,
        rate_limits_enabled=False,
    )


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    with admin_client(create_app(settings)) as client:
        yield client


def services_of(client: TestClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined,no-any-return]


def finished(client: TestClient, drill_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + DRILL_TIMEOUT_S
    while time.monotonic() < deadline:
        body = client.get(f"/v1/drills/{drill_id}").json()
        if body["state"] != "running":
            return body  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"drill {drill_id} still running after {DRILL_TIMEOUT_S} s")


def test_a_drill_of_the_demo_day_opens_exercise_warnings_and_nothing_real(app_client: TestClient) -> None:
    app = app_client.app
    officer = bearer(new_key(app, Role.OPERATOR, "EOC duty officer"))  # type: ignore[arg-type]
    began = time.monotonic()
    resp = app_client.post(
        "/v1/drills", json={"scenario": "demo-day", "note": "Tuesday drill"}, headers=officer
    )
    assert resp.status_code == 202, resp.text
    started = resp.json()
    assert (started["scenario"], started["state"], started["requested_by"], started["note"]) == (
        "demo-day",
        "running",
        "EOC duty officer",
        "Tuesday drill",
    )
    drill = finished(app_client, started["id"])
    elapsed = time.monotonic() - began
    assert drill["state"] == "finished", drill
    assert drill["readings"] > 10_000 and drill["reports"] > 40 and drill["signals"] > 0
    assert elapsed < 60, f"the demo day took {elapsed:.0f} s"

    # Exercise warnings, all of this drill, flood and gas among them.
    drills_only = app_client.get("/v1/warnings", params={"exercise": "true", "limit": 500}).json()
    assert drills_only["total"] == len(drills_only["items"]) > 0
    assert all(w["exercise"] for w in drills_only["items"])
    opened = [w for w in drills_only["items"] if w["id"] in drill["warning_ids"]]
    assert len(opened) == len(drill["warning_ids"]) and all(w["drill_id"] == drill["id"] for w in opened)
    # The rest are the district and city roll-ups of the drill's grid warnings, exercises too.
    assert {w["scope"] for w in drills_only["items"] if w not in opened} <= {"district", "city"}
    hazards = {w["hazard"] for w in drills_only["items"]}
    assert {"flood", "gas_leak"} <= hazards, hazards
    assert any(w["hazard"] == "gas_leak" and w["area"] == GAS_GRID for w in drills_only["items"])
    # The drill's own clock runs its warnings' lives as the live day's does: its gas leak, over hours
    # before the scenario ends, resolved on its own (released) within the drill.
    gas_grid = [w for w in opened if w["hazard"] == "gas_leak" and w["scope"] == "grid"]
    released = [
        e
        for w in gas_grid
        for e in app_client.get(f"/v1/warnings/{w['id']}").json()["events"]
        if e["to_status"] == "resolved" and e["actor"] == "citywarn" and e["event_time"] is not None
    ]
    assert released and released[0]["note"].startswith("released"), [w["status"] for w in gas_grid]

    # Nothing real: the default list, and area risk, show none of them; "any" shows them all.
    assert app_client.get("/v1/warnings").json()["total"] == 0
    assert app_client.get("/v1/warnings", params={"exercise": "false"}).json()["total"] == 0
    assert app_client.get("/v1/warnings", params={"exercise": "any"}).json()["total"] == drills_only["total"]
    risk = app_client.get(f"/v1/areas/{GAS_GRID}/risk").json()
    assert risk["open_warnings"] == [] and risk["highest_level"] is None

    # Marked in every response: detail, GeoJSON, timeline, CAP.
    gas = next(w for w in drills_only["items"] if w["hazard"] == "gas_leak")
    assert app_client.get(f"/v1/warnings/{gas['id']}").json()["exercise"] is True
    geojson = app_client.get("/v1/warnings", params={"exercise": "true", "format": "geojson"}).json()
    assert geojson["features"] and all(f["properties"]["exercise"] for f in geojson["features"])
    assert app_client.get(f"/v1/warnings/{gas['id']}/timeline").json()["warning"]["exercise"] is True
    schema = etree.XMLSchema(etree.parse(str(CAP_DIR / "CAP-v1.2.xsd")))
    published = 0
    for w in drills_only["items"]:
        doc = app_client.get(f"/v1/warnings/{w['id']}/cap")
        if doc.status_code == 404:  # never public (still pending): no CAP message
            continue
        root = etree.fromstring(doc.content)
        assert schema.validate(root), schema.error_log
        assert text(root, "cap:status") == "Exercise"
        published += 1
    assert published > 0
    feed = etree.fromstring(app_client.get("/v1/cap/feed").content)
    assert feed.findall("atom:entry", NS) == []
    asked = etree.fromstring(app_client.get("/v1/cap/feed", params={"exercise": "true"}).content)
    titles = [text(e, "atom:title") for e in asked.findall("atom:entry", NS)]
    assert titles and all(t.startswith("[Exercise] ") for t in titles)

    # The live service's state is untouched: no reading stored, no report, no detector checkpoint.
    svc = services_of(app_client)
    assert svc.store.count() == 0
    assert svc.reports.list(area=None, start_ns=0, limit=10)[1] == 0
    assert svc.checkpoints.last_saved() == {}

    listed = app_client.get("/v1/drills").json()
    assert [d["id"] for d in listed["items"]] == [drill["id"]] and listed["total"] == 1


def test_a_drill_stops_when_told_and_one_scenario_runs_once_at_a_time(app_client: TestClient) -> None:
    # One scenario second per second: the first hour of the day would take an hour.
    slow = {"scenario": "demo-day", "speed": 1}
    first = app_client.post("/v1/drills", json=slow)
    assert first.status_code == 202, first.text
    again = app_client.post("/v1/drills", json=slow)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")

    stopped = app_client.delete(f"/v1/drills/{first.json()['id']}")
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["state"] == "stopped" and body["ended_at"] is not None
    assert (body["readings"], body["signals"], body["warning_ids"]) == (0, 0, [])
    assert app_client.app.state.drills.wait(body["id"], 5)  # type: ignore[attr-defined]
    time.sleep(0.3)
    assert app_client.get(f"/v1/drills/{body['id']}").json() == body  # nothing moves after the stop
    assert app_client.delete(f"/v1/drills/{body['id']}").json() == body  # stopping again changes nothing

    second = app_client.post("/v1/drills", json=slow)
    assert second.status_code == 202, second.text
    assert app_client.delete(f"/v1/drills/{second.json()['id']}").json()["state"] == "stopped"
    assert app_client.delete("/v1/drills/00000000-0000-0000-0000-000000000000").status_code == 404


def test_an_unknown_scenario_is_a_422_naming_the_known_ones_and_a_viewer_may_not_drill(
    app_client: TestClient,
) -> None:
    resp = app_client.post("/v1/drills", json={"scenario": "zombie-day"})
    assert resp.status_code == 422
    problem = resp.json()
    assert problem["known"] == ["demo-day"]
    assert [(e["field"], e["value"]) for e in problem["errors"]] == [("body.scenario", "zombie-day")]
    assert "demo-day" in problem["errors"][0]["reason"]
    declared = app_client.get("/openapi.json").json()["components"]["schemas"]["DrillIn"]["properties"]
    assert declared["scenario"]["enum"] == ["demo-day"]  # the names offered, for clients and schemathesis

    viewer = bearer(new_key(app_client.app, Role.VIEWER, "wall screen"))  # type: ignore[arg-type]
    assert app_client.post("/v1/drills", json={"scenario": "demo-day"}, headers=viewer).status_code == 403
    assert app_client.get("/v1/drills", headers=viewer).status_code == 200
    integrator = bearer(new_key(app_client.app, Role.INTEGRATOR, "district system"))  # type: ignore[arg-type]
    assert app_client.get("/v1/drills", headers=integrator).status_code == 403
    assert app_client.get("/v1/drills").json()["total"] == 0


def test_a_drill_running_when_the_service_stops_is_interrupted(settings: Settings) -> None:
    with admin_client(create_app(settings)) as client:
        started = client.post("/v1/drills", json={"scenario": "demo-day", "speed": 1}).json()
    with admin_client(create_app(settings)) as client:
        after = client.get(f"/v1/drills/{started['id']}").json()
    assert after["state"] == "interrupted" and after["ended_at"] is not None


def test_a_drill_left_running_by_a_crash_is_interrupted_at_the_next_start(settings: Settings) -> None:
    with admin_client(create_app(settings)) as client:
        store = DrillStore(services_of(client).engine)
        crashed = store.start("demo-day", speed=None, note="", requested_by="t", now=datetime.now(UTC))
    with admin_client(create_app(settings)) as client:
        after = Drill.model_validate(client.get(f"/v1/drills/{crashed.id}").json())
    assert after.state == "interrupted"


def test_steps_cut_the_scenario_into_event_time_spans_in_order() -> None:
    t0 = datetime(2026, 11, 29, tzinfo=UTC)

    def ns(minutes: float) -> int:
        return int((t0 + timedelta(minutes=minutes)).timestamp() * 1e9)

    readings = [Point("s", "gas", "g", ns(m), 1.0) for m in (0, 5, 59, 60, 130)]
    reports = [ReportRecord(f"r{m}", "app", "gas_leak", False, "x", ns(m), "g") for m in (1, 61, 62)]
    spans = list(steps(ScenarioData(readings, reports), 3600))
    assert [([p.ts_ns for p in r], [x.report_id for x in rep]) for _, r, rep in spans] == [
        ([ns(0), ns(5), ns(59)], ["r1"]),
        ([ns(60)], ["r61", "r62"]),
        ([ns(130)], []),
    ]
    assert [end for end, _, _ in spans] == [t0.timestamp() + h * 3600 for h in (1, 2, 3)]
    assert list(steps(ScenarioData([], []), 3600)) == []
