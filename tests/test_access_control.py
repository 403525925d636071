"""Who may call what: the ``require`` dependency, and every route of the app walked with every kind of key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient

from alerts import db
from alerts.service import WarningService
from app.auth.deps import require
from app.auth.keys import KeyStore
from app.auth.roles import Permission, Principal, Role
from tests.auth_helpers import bearer
from tests.factories import NOW as FIXED
from tests.factories import signal

NOW = datetime.now(UTC)


class CountingLimiter:
    def __init__(self, refuse: str | None = None) -> None:
        self.hits: list[tuple[str, str]] = []
        self.refuse = refuse

    def hit(self, bucket: str, identity: str) -> None:
        self.hits.append((bucket, identity))
        if bucket == self.refuse:
            raise HTTPException(429, detail="slow down", headers={"Retry-After": "7"})


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[tuple[TestClient, KeyStore]]:
    """An app with one route per permission, over a real state database and no broker."""
    engine = db.connect(f"sqlite:///{tmp_path}/state.sqlite3")
    app = FastAPI()
    app.state.services = SimpleNamespace(engine=engine)

    @app.post("/act")
    def act(who: Annotated[Principal, Depends(require(Permission.ACT))]) -> dict[str, str]:
        return {"label": who.label, "role": who.role.value, "key_id": who.key_id}

    @app.post("/ingest")
    def ingest(who: Annotated[Principal, Depends(require(Permission.INGEST))]) -> dict[str, str]:
        return {"label": who.label}

    with TestClient(app) as client:
        yield client, KeyStore(engine)
    engine.dispose()


def make(
    keys: KeyStore, role: Role, *, expires: timedelta | None = None, now: datetime = NOW
) -> tuple[str, str]:
    record, token = keys.create(role, f"a {role.value}", expires=expires, created_by="t", now=now)
    return record.id, token


def test_a_granted_key_is_the_principal(tiny: tuple[TestClient, KeyStore]) -> None:
    client, keys = tiny
    key_id, token = make(keys, Role.OPERATOR)
    resp = client.post("/act", headers=bearer(token))
    assert resp.status_code == 200
    assert resp.json() == {"label": "a operator", "role": "operator", "key_id": key_id}


def test_no_key_is_401_with_a_bare_bearer_challenge(tiny: tuple[TestClient, KeyStore]) -> None:
    client, _ = tiny
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        resp = client.post("/act", headers=headers)
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_a_refused_key_is_401_invalid_token(tiny: tuple[TestClient, KeyStore]) -> None:
    client, keys = tiny
    key_id, token = make(keys, Role.ADMIN)
    expired = make(keys, Role.ADMIN, expires=timedelta(hours=1), now=NOW - timedelta(hours=2))[1]
    revoked_id, revoked = make(keys, Role.ADMIN)
    keys.revoke(revoked_id, at=NOW - timedelta(seconds=1))
    wrong_secret = f"cwk_{key_id}_{'x' * 43}"
    for presented, detail in [
        ("cwk_nothex", "malformed"),
        (wrong_secret, "not valid"),
        (expired, "expired"),
        (revoked, "revoked"),
    ]:
        resp = client.post("/act", headers=bearer(presented))
        assert resp.status_code == 401, presented
        assert resp.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        assert detail in resp.json()["detail"]
    assert client.post("/act", headers=bearer(token)).status_code == 200


def test_a_valid_key_without_the_permission_is_403(tiny: tuple[TestClient, KeyStore]) -> None:
    client, keys = tiny
    viewer = make(keys, Role.VIEWER)[1]
    resp = client.post("/act", headers=bearer(viewer))
    assert resp.status_code == 403 and "viewer" in resp.json()["detail"]
    assert "WWW-Authenticate" not in resp.headers


def test_the_rate_limiter_counts_keys_by_bucket_and_strangers_by_address(
    tiny: tuple[TestClient, KeyStore],
) -> None:
    client, keys = tiny
    limiter = CountingLimiter()
    client.app.state.rate_limiter = limiter  # type: ignore[attr-defined]
    ingest_id, ingest = make(keys, Role.INGEST)
    operator_id, operator = make(keys, Role.OPERATOR)
    client.post("/ingest", headers=bearer(ingest))
    client.post("/act", headers=bearer(operator))
    client.post("/act", headers=bearer(ingest))  # 403, still counted against the key
    client.post("/act")
    assert limiter.hits == [
        ("ingest", ingest_id),
        ("api", operator_id),
        ("api", ingest_id),
        ("anonymous", "testclient"),
    ]


def test_a_limiter_refusal_is_answered_before_the_401(tiny: tuple[TestClient, KeyStore]) -> None:
    client, keys = tiny
    client.app.state.rate_limiter = CountingLimiter(refuse="anonymous")  # type: ignore[attr-defined]
    resp = client.post("/act")
    assert (resp.status_code, resp.headers["Retry-After"]) == (429, "7")
    assert client.post("/act", headers=bearer(make(keys, Role.OPERATOR)[1])).status_code == 200


# ---- the actor is the key ---------------------------------------------------------------------


def test_the_service_records_the_keys_label_and_role_and_none_for_its_own(service: WarningService) -> None:
    [wid] = service.apply_signals([signal()], now=FIXED, actor="detector:t")
    service.acknowledge(wid, now=FIXED, actor="duty desk", actor_role="operator", note="crew sent")
    w = service.get(wid)
    assert w is not None
    assert [(e.action, e.actor, e.actor_role, e.note) for e in w.events] == [
        ("opened", "detector:t", None, "1 signal(s)"),
        ("acknowledged", "duty desk", "operator", "crew sent"),
    ]
