"""Silences through the real app on SQLite and PostgreSQL: set, list, read, end; who may; what is refused;
a silenced signal kept as evidence while its warning is muted; the unmuting when the silence ends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerts.mutes import lift_mutes
from app.auth.roles import Role
from app.main import create_app
from app.services import Services
from bench.isolation import isolated_settings
from ingest.broker import EmbeddedBroker
from tests.auth_helpers import bearer, new_key
from tests.factories import signal

GRID = "g-oldtown-05"  # where gas-oldtown-01 is
SENSOR = "gas-oldtown-01"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def client(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=state_url,
        rate_limits_enabled=False,
    )
    with TestClient(create_app(settings)) as c:
        c.headers.update(bearer(new_key(c.app, Role.OPERATOR, "night shift")))  # type: ignore[arg-type]
        yield c


def services(client: TestClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined, no-any-return]


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "matchers": {"hazard": "gas_leak", "area": GRID},
        "starts_at": (NOW - timedelta(hours=1)).isoformat(),
        "ends_at": (NOW + timedelta(hours=1)).isoformat(),
        "comment": "valve replacement, crew on site",
        **overrides,
    }


def gas(ts: datetime) -> Any:
    return signal(
        hazard="gas_leak", kind="gas", sensor_id=SENSOR, area=GRID, level="yellow", value=1.0, ts=ts
    )


def test_set_list_read_and_end_a_silence(client: TestClient) -> None:
    resp = client.post("/v1/silences", json={**body(), "created_by": "someone else"})
    assert resp.status_code == 422, "the creator is the key's label, never the body's"
    resp = client.post("/v1/silences", json=body())
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["created_by"] == "night shift"
    assert made["state"] == "active"
    assert made["matchers"] == {"sensor": None, "area": GRID, "hazard": "gas_leak", "level": None}
    sid = made["id"]
    assert [s["id"] for s in client.get("/v1/silences").json()] == [sid]
    assert client.get(f"/v1/silences/{sid}").json()["comment"] == "valve replacement, crew on site"

    ended = client.delete(f"/v1/silences/{sid}")
    assert ended.status_code == 200
    assert ended.json()["state"] == "expired" and ended.json()["ended_by"] == "night shift"
    again = client.delete(f"/v1/silences/{sid}")
    assert again.status_code == 200 and again.json()["ended_at"] == ended.json()["ended_at"], "idempotent"
    assert client.get("/v1/silences").json() == []
    assert [s["id"] for s in client.get("/v1/silences", params={"ended": True}).json()] == [sid]
    assert client.get(f"/v1/silences/{sid}").status_code == 404
    assert client.get(f"/v1/silences/{sid}", params={"ended": True}).json()["state"] == "expired"
    missing = client.delete("/v1/silences/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_a_weekly_maintenance_window(client: TestClient) -> None:
    window = {"weekdays": ["tue"], "start": "23:00", "end": "01:00", "timezone": "Asia/Shanghai"}
    resp = client.post(
        "/v1/silences",
        json={"matchers": {"sensor": SENSOR}, "recurrence": window, "comment": "weekly calibration"},
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["recurrence"] == window and made["ends_at"] is None
    assert made["state"] in ("active", "pending")
    assert client.get("/v1/silences").json()[0]["id"] == made["id"]


def test_who_may_set_and_read_silences(client: TestClient) -> None:
    viewer = bearer(new_key(client.app, Role.VIEWER))  # type: ignore[arg-type]
    integrator = bearer(new_key(client.app, Role.INTEGRATOR))  # type: ignore[arg-type]
    assert client.post("/v1/silences", json=body(), headers={"Authorization": ""}).status_code == 401
    assert client.post("/v1/silences", json=body(), headers=viewer).status_code == 403
    assert client.get("/v1/silences", headers=viewer).status_code == 200
    assert client.get("/v1/silences", headers=integrator).status_code == 403
    sid = client.post("/v1/silences", json=body()).json()["id"]
    assert client.delete(f"/v1/silences/{sid}", headers=viewer).status_code == 403
    assert client.get(f"/v1/silences/{sid}", headers=viewer).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"matchers": {"sensor": "gas-nowhere-99"}}, "body.matchers.sensor"),
        ({"matchers": {"area": "g-atlantis-01"}}, "body.matchers.area"),
        ({"matchers": {"hazard": "dragons"}}, "body.matchers.hazard"),
        ({"matchers": {"level": "purple"}}, "body.matchers.level"),
        ({"matchers": {}}, "body.matchers"),
        ({"matchers": {"hazard": "gas_leak", "sensor": None}}, "body.matchers.sensor"),
        ({"ends_at": (NOW - timedelta(hours=2)).isoformat()}, "body.ends_at"),
        ({"ends_at": (NOW + timedelta(days=31)).isoformat()}, "body.ends_at"),
        ({"ends_at": None}, "body.ends_at"),
        ({"comment": "   "}, "body.comment"),
        (
            {"recurrence": {"weekdays": ["tue"], "start": "02:00", "end": "02:00", "timezone": "UTC"}},
            "body.recurrence",
        ),
        (
            {
                "recurrence": {
                    "weekdays": ["tue"],
                    "start": "02:00",
                    "end": "04:00",
                    "timezone": "Mars/Olympus",
                }
            },
            "body.recurrence.timezone",
        ),
        (
            {"recurrence": {"weekdays": ["someday"], "start": "02:00", "end": "04:00", "timezone": "UTC"}},
            None,
        ),
    ],
)
def test_refused_silences_name_the_field(
    client: TestClient, overrides: dict[str, Any], field: str | None
) -> None:
    sent = body(**overrides)
    if "comment" not in overrides and overrides.get("ends_at", 0) is None:
        sent.pop("ends_at")
    resp = client.post("/v1/silences", json=sent)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert resp.headers["content-type"] == "application/problem+json"
    fields = [e["field"] for e in problem["errors"]]
    if field is not None:
        assert any(f == field or f.startswith(field + ".") for f in fields), fields
    assert client.get("/v1/silences").json() == []


def test_a_silenced_signal_is_evidence_and_its_warning_is_muted_until_the_silence_ends(
    client: TestClient,
) -> None:
    svc = services(client)
    sid = client.post("/v1/silences", json=body()).json()["id"]
    [wid] = svc.warnings.apply_signals([gas(NOW - timedelta(minutes=10))], now=NOW, actor="detector:t")
    warning = client.get(f"/v1/warnings/{wid}").json()
    assert warning["muted_by"] == f"silence:{sid}"
    assert warning["signal_count"] == 1, "stored and scored all the same"
    assert "muted" in [e["action"] for e in warning["events"]]

    # A signal after the silence's end, in event time, is not silenced: a replay decides the same.
    outside = svc.silences.get(sid)
    assert outside is not None and outside.ends_at is not None
    assert (
        svc.mutes.mute_for(
            hazard="gas_leak", area=GRID, level="yellow", sensors=[SENSOR], at=outside.ends_at, exercise=False
        )
        is None
    )

    assert client.delete(f"/v1/silences/{sid}").status_code == 200
    warning = client.get(f"/v1/warnings/{wid}").json()
    assert warning["muted_by"] is None
    unmuted = [e for e in warning["events"] if e["action"] == "unmuted"]
    assert [e["note"] for e in unmuted] == [f"silence {sid} ended"]


def test_the_sweep_unmutes_a_warning_still_open_when_its_silence_runs_out(client: TestClient) -> None:
    svc = services(client)
    sid = client.post("/v1/silences", json=body()).json()["id"]
    [wid] = svc.warnings.apply_signals([gas(NOW)], now=NOW, actor="detector:t")
    assert lift_mutes(svc.engine, svc.silences, svc.warnings, now=NOW + timedelta(minutes=30)) == []
    assert client.get(f"/v1/warnings/{wid}").json()["muted_by"] == f"silence:{sid}"

    assert lift_mutes(svc.engine, svc.silences, svc.warnings, now=NOW + timedelta(hours=1)) == [wid]
    warning = client.get(f"/v1/warnings/{wid}").json()
    assert warning["muted_by"] is None
    assert [e["note"] for e in warning["events"] if e["action"] == "unmuted"] == [f"silence {sid} ended"]
    assert lift_mutes(svc.engine, svc.silences, svc.warnings, now=NOW + timedelta(hours=2)) == [], "once"


def test_a_silence_for_lower_levels_does_not_hide_a_red(client: TestClient) -> None:
    svc = services(client)
    client.post("/v1/silences", json=body(matchers={"area": GRID, "level": "yellow"}))
    red = signal(hazard="gas_leak", kind="gas", sensor_id=SENSOR, area=GRID, level="red", value=9.0, ts=NOW)
    [wid] = svc.warnings.apply_signals([red], now=NOW, actor="detector:t")
    warning = client.get(f"/v1/warnings/{wid}").json()
    assert warning["level"] == "red" and warning["muted_by"] is None


def test_a_silence_set_during_an_incident_mutes_its_open_warning_at_once(client: TestClient) -> None:
    svc = services(client)
    [wid] = svc.warnings.apply_signals([gas(NOW - timedelta(minutes=5))], now=NOW, actor="detector:t")
    assert client.get(f"/v1/warnings/{wid}").json()["muted_by"] is None
    sid = client.post("/v1/silences", json=body(matchers={"sensor": SENSOR})).json()["id"]
    warning = client.get(f"/v1/warnings/{wid}").json()
    assert warning["muted_by"] == f"silence:{sid}"
    assert [e["note"] for e in warning["events"] if e["action"] == "muted"] == [f"silence:{sid}"]
    assert svc.mutes.sweep(svc.warnings, now=NOW) == ([], []), "nothing more to do"


def test_the_sweep_mutes_when_a_weekly_window_opens_and_unmutes_when_it_closes(client: TestClient) -> None:
    svc = services(client)
    [wid] = svc.warnings.apply_signals([gas(NOW - timedelta(minutes=5))], now=NOW, actor="detector:t")
    opens = (NOW + timedelta(hours=2)).replace(minute=0, second=0)
    window = {
        "weekdays": [("mon", "tue", "wed", "thu", "fri", "sat", "sun")[opens.weekday()]],
        "start": opens.strftime("%H:%M"),
        "end": (opens + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    made = client.post(
        "/v1/silences", json={"matchers": {"area": "d-oldtown"}, "recurrence": window, "comment": "w"}
    )
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    assert client.get(f"/v1/warnings/{wid}").json()["muted_by"] is None, "the window has not opened"
    assert svc.mutes.sweep(svc.warnings, now=opens + timedelta(minutes=1)) == ([wid], [])
    assert svc.mutes.sweep(svc.warnings, now=opens + timedelta(hours=1)) == ([], [wid])
    warning = client.get(f"/v1/warnings/{wid}").json()
    assert [e["note"] for e in warning["events"] if e["action"] == "unmuted"] == [
        f"silence {sid}: its maintenance window ended"
    ]
