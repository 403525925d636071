"""The audit log: one JSON line per state-changing request, refused ones included, never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.audit import AuditLog
from app.auth.roles import Role
from bench.isolation import isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from models.signals import Signal
from tests.auth_helpers import bearer, new_key
from tests.factories import NOW, signal


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    )


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "citywarn.audit"]


def open_warning(client: TestClient) -> str:
    svc = client.app.state.services  # type: ignore[attr-defined]
    sig: Signal = signal()
    [wid] = svc.warnings.apply_signals([sig], now=NOW, actor="detector:t")
    return str(wid)


def test_a_change_is_one_line_naming_key_role_action_target_and_outcome(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    wid = open_warning(client)
    token = new_key(client.app, Role.OPERATOR, "duty desk")  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="citywarn.audit")
    resp = client.post(f"/v1/warnings/{wid}/acknowledge", json={"note": "crew sent"}, headers=bearer(token))
    assert resp.status_code == 200
    [line] = audit_lines(caplog)
    assert line["key_id"] == token.split("_")[1]
    assert (line["label"], line["role"]) == ("duty desk", "operator")
    assert line["action"] == "POST /v1/warnings/{warning_id}/acknowledge"
    assert line["target"] == {"warning_id": wid}
    assert (line["status"], line["outcome"]) == (200, "ok")
    assert line["time"].endswith("+00:00")


def test_reads_are_not_audited(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="citywarn.audit")
    assert client.get("/v1/warnings").status_code == 200
    assert audit_lines(caplog) == []


def test_refused_requests_are_logged_with_why(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    wid = open_warning(client)
    viewer = new_key(client.app, Role.VIEWER, "wall screen")  # type: ignore[arg-type]
    operator = new_key(client.app, Role.OPERATOR, "duty desk")  # type: ignore[arg-type]
    wrong = f"cwk_{operator.split('_')[1]}_{'x' * 43}"
    caplog.set_level(logging.INFO, logger="citywarn.audit")
    path = f"/v1/warnings/{wid}/resolve"
    client.post(path, headers={"Authorization": ""})
    client.post(path, headers=bearer(wrong))
    client.post(path, headers=bearer(viewer))
    client.post(path, json={"actor": "someone else"}, headers=bearer(operator))
    client.post(f"/v1/warnings/{'n' * 500}/resolve", headers=bearer(operator))
    lines = audit_lines(caplog)
    assert [(x["status"], x["outcome"]) for x in lines] == [
        (401, "refused"),
        (401, "refused"),
        (403, "refused"),
        (422, "refused"),
        (422, "refused"),  # an id past 128 characters is refused before it is looked up
    ]
    assert (lines[0]["key_id"], lines[0]["label"], lines[0]["auth"]) == (None, None, "missing")
    # A refused key's id is named (it is no secret); its secret never is.
    assert (lines[1]["key_id"], lines[1]["label"], lines[1]["auth"]) == (
        operator.split("_")[1],
        None,
        "unknown",
    )
    assert (lines[2]["label"], lines[2]["role"]) == ("wall screen", "viewer")
    assert lines[3]["label"] == "duty desk" and lines[3]["target"] == {"warning_id": wid}
    assert len(lines[4]["target"]["warning_id"]) <= 200
    text = caplog.text
    assert operator.split("_", 2)[2] not in text and viewer.split("_", 2)[2] not in text


def test_making_and_revoking_keys_is_audited_without_the_token(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="citywarn.audit")
    made = client.post("/v1/keys", json={"role": "viewer", "label": "wall screen"}).json()
    client.delete(f"/v1/keys/{made['id']}")
    lines = audit_lines(caplog)
    assert [(x["action"], x["target"], x["role"]) for x in lines] == [
        ("POST /v1/keys", {}, "admin"),
        ("DELETE /v1/keys/{key_id}", {"key_id": made["id"]}, "admin"),
    ]
    assert made["token"] not in caplog.text


def test_a_request_that_crashes_is_logged_as_failed(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    app.add_middleware(AuditLog)

    @app.put("/boom/{thing}")
    def boom(thing: str) -> None:
        raise RuntimeError("injected")

    caplog.set_level(logging.INFO, logger="citywarn.audit")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.put("/boom/x").status_code == 500
    [line] = audit_lines(caplog)
    assert (line["action"], line["target"], line["status"], line["outcome"]) == (
        "PUT /boom/{thing}",
        {"thing": "x"},
        500,
        "failed",
    )
