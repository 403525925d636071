"""The API's read path under load: admitted keys kept for a bounded time, pages kept while nothing changed.

Both caches must stay right when other processes write: a key revoked by
another connection is refused within the cache's time to live, and a warning
written by another connection shows on the next page. Each test runs on the
real SQLite file and the real PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from alerts import db
from alerts.service import WarningService
from app.api.page_cache import PageCache, WarningsVersion, page_cache
from app.auth.deps import require
from app.auth.keys import AuthCache, AuthFailure, KeyStore
from app.auth.roles import Permission, Principal, Role
from app.main import create_app
from bench.isolation import isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from models.signals import Signal
from tests.auth_helpers import admin_client, bearer
from tests.factories import CATALOG, PLAYBOOKS

NOW = datetime.now(UTC).replace(microsecond=0)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _admit(keys: KeyStore, cache: AuthCache, token: str, at: datetime) -> Principal | AuthFailure:
    """What ``app.auth.deps.require`` does: the cache first, the database when it has nothing."""
    return cache.lookup(token, now=at) or keys.authenticate(token, now=at)


# ---------------------------------------------------------------------------- admitted keys


def test_a_key_revoked_by_another_process_is_refused_once_the_ttl_has_passed(state_url: str) -> None:
    here, elsewhere = db.connect(state_url), db.open_engine(state_url)
    try:
        clock = Clock()
        cache = AuthCache(ttl_s=5.0, clock=clock)
        keys = KeyStore(here, cache)
        record, token = keys.create(Role.OPERATOR, "console", expires=None, created_by="t", now=NOW)
        assert isinstance(_admit(keys, cache, token, NOW), Principal)
        KeyStore(elsewhere).revoke(record.id, at=NOW)  # as `citywarn keys revoke` would, in its own process
        clock.t += 4.9
        assert isinstance(_admit(keys, cache, token, NOW), Principal)  # within the bound: still trusted
        clock.t += 0.1
        assert _admit(keys, cache, token, NOW) is AuthFailure.REVOKED
    finally:
        here.dispose()
        elsewhere.dispose()


def test_a_key_revoked_in_this_process_or_expired_is_refused_at_once(state_url: str) -> None:
    engine = db.connect(state_url)
    try:
        cache = AuthCache.for_engine(engine, ttl_s=60.0)
        keys = KeyStore(engine, cache)
        record, token = keys.create(Role.VIEWER, "wall", expires=None, created_by="t", now=NOW)
        soon, short = keys.create(Role.VIEWER, "short", expires=timedelta(minutes=1), created_by="t", now=NOW)
        assert isinstance(_admit(keys, cache, token, NOW), Principal)
        assert isinstance(_admit(keys, cache, short, NOW), Principal)
        KeyStore(engine).revoke(record.id, at=NOW)  # another KeyStore on the same engine: the API's
        assert cache.lookup(token, now=NOW) is None
        assert _admit(keys, cache, token, NOW) is AuthFailure.REVOKED
        later = NOW + timedelta(minutes=1)
        assert _admit(keys, cache, short, later) is AuthFailure.EXPIRED
        # A wrong secret for a cached key's id is never a hit.
        assert cache.lookup(f"cwk_{soon.id}_{'x' * 43}", now=NOW) is None
    finally:
        engine.dispose()


def test_the_api_refuses_a_key_revoked_elsewhere_within_its_setting(state_url: str) -> None:
    """Through ``require`` on a real app, with real time: the bound the setting promises."""
    ttl = 0.5
    engine, elsewhere = db.connect(state_url), db.open_engine(state_url)
    app = FastAPI()
    app.state.services = SimpleNamespace(
        engine=engine, settings=SimpleNamespace(auth_cache_ttl_s=ttl, rate_limit_storage_uri="memory://")
    )

    @app.get("/read")
    async def read(who: Annotated[Principal, Depends(require(Permission.READ_WARNINGS))]) -> str:
        return who.label

    record, token = KeyStore(engine).create(Role.VIEWER, "wall", expires=None, created_by="t", now=NOW)
    try:
        with TestClient(app) as client:
            assert client.get("/read", headers=bearer(token)).status_code == 200
            KeyStore(elsewhere).revoke(record.id, at=datetime.now(UTC))
            revoked_at = time.monotonic()
            while (resp := client.get("/read", headers=bearer(token))).status_code == 200:
                assert time.monotonic() - revoked_at < ttl + 1.0, "still admitted past the setting's bound"
                time.sleep(0.02)
            assert resp.status_code == 401 and "revoked" in resp.json()["detail"]
    finally:
        engine.dispose()
        elsewhere.dispose()


# ---------------------------------------------------------------------------- kept pages


def _open_one(engine: sa.Engine, area: str = "g-oldtown-05") -> str:
    """A red gas warning, opened through a service on ``engine`` as an ingest process would."""
    service = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS)
    signal = Signal(
        sensor_id="gas-oldtown-01",
        kind="gas",
        area=area,
        hazard="gas_leak",
        ts_ns=int(NOW.timestamp()) * 10**9,
        value=61.0,
        score=1.0,
        detector="test",
        level="red",
        evidence={"warning_line": 50.0},
    )
    [wid] = service.apply_signals([signal], now=NOW, actor="detector:test")
    return str(wid)


def test_the_warnings_version_moves_with_every_warning_written_from_any_connection(state_url: str) -> None:
    engine, elsewhere = db.connect(state_url), db.open_engine(state_url)
    try:
        version = WarningsVersion(engine)
        before = version.read()
        assert before is not None
        _open_one(elsewhere)
        after_other = version.read()
        assert after_other != before
        _open_one(engine, area="g-riverside-01")  # through this engine's own pool
        assert version.read() != after_other
        with engine.connect() as conn:
            conn.execute(sa.select(db.warnings)).all()
        steady = version.read()
        assert version.read() == steady
        if engine.dialect.name == "sqlite":
            # A checkpoint empties the WAL, and the next commit starts it again from its first frame:
            # the version still moves, so a page kept before is not taken for current.
            with elsewhere.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            truncated = version.read()
            _open_one(elsewhere, area="g-oldtown-01")
            assert version.read() not in {steady, truncated}
    finally:
        engine.dispose()
        elsewhere.dispose()


def test_a_page_is_made_once_while_nothing_changes_and_again_after_a_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    engine, elsewhere = db.connect(url), db.open_engine(url)
    cache = PageCache(WarningsVersion(engine))
    made: list[int] = []

    def make() -> bytes:
        made.append(1)
        with engine.connect() as conn:
            return str(
                conn.execute(sa.select(sa.func.count()).select_from(db.warnings)).scalar_one()
            ).encode()

    async def four_gets() -> list[bytes]:
        return list(await asyncio.gather(*(cache.get("k", make) for _ in range(4))))

    try:
        assert asyncio.run(four_gets()) == [b"0"] * 4
        assert asyncio.run(four_gets()) == [b"0"] * 4
        assert len(made) == 1  # concurrent requests waited for the one page being made
        _open_one(elsewhere)
        assert asyncio.run(four_gets()) == [b"1"] * 4
        assert len(made) == 2
    finally:
        engine.dispose()
        elsewhere.dispose()


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path, state_url: str) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap, store_url=f"file://{tmp_path}/store.sqlite3", database_url=state_url
    )


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    with admin_client(create_app(settings)) as c:
        yield c


def test_the_warnings_page_shows_what_another_process_wrote(
    app_client: TestClient, settings: Settings
) -> None:
    engine = app_client.app.state.services.engine  # type: ignore[attr-defined]
    elsewhere = db.open_engine(settings.database_url)
    try:
        assert app_client.get("/v1/warnings").json()["total"] == 0
        made = page_cache(engine).made
        assert app_client.get("/v1/warnings").json()["total"] == 0
        if engine.dialect.name == "sqlite":
            assert page_cache(engine).made == made  # the second answer came from the kept page

        wid = _open_one(elsewhere)
        page = app_client.get("/v1/warnings").json()
        assert wid in {w["id"] for w in page["items"]}
        assert {w["status"] for w in page["items"] if w["id"] == wid} == {"active"}

        # A change that leaves the count as it was (a status) shows too.
        service = WarningService(elsewhere, catalog=CATALOG, playbooks=PLAYBOOKS)
        service.acknowledge(wid, now=NOW, actor="duty officer", actor_role="operator", note="")
        page = app_client.get("/v1/warnings").json()
        assert {w["status"] for w in page["items"] if w["id"] == wid} == {"acknowledged"}
        # Each filter is a page of its own.
        active = app_client.get("/v1/warnings", params={"status": "active", "scope": "grid"}).json()
        assert wid not in {w["id"] for w in active["items"]}
    finally:
        elsewhere.dispose()


# ---------------------------------------------------------------------------- answered before FastAPI


def test_a_kept_page_is_answered_as_the_route_answers_it(app_client: TestClient) -> None:
    engine = app_client.app.state.services.engine  # type: ignore[attr-defined]
    _open_one(engine)
    query = "limit=50&status=active"
    made = app_client.get(f"/v1/warnings?{query}")
    kept = app_client.get(f"/v1/warnings?{query}")
    assert made.status_code == kept.status_code == 200
    assert kept.content == made.content and kept.json()["total"] >= 1
    for header in ("content-type", "content-length"):
        assert kept.headers[header] == made.headers[header]
    if engine.dialect.name == "sqlite":  # PostgreSQL's snapshot moves with other tests' transactions
        assert asyncio.run(page_cache(engine).kept(query.encode())) == made.content
    # What only the route can judge still reaches it.
    assert app_client.get("/v1/warnings?limit=10000").status_code == 422
    too_deep = "[" * 40 + "]" * 40
    deep = app_client.request(
        "GET", f"/v1/warnings?{query}", content=too_deep, headers={"content-type": "application/json"}
    )
    assert deep.status_code == 422


def test_a_kept_page_is_not_given_to_a_key_that_may_not_read_it(app_client: TestClient) -> None:
    app = app_client.app
    keys = KeyStore(app.state.services.engine)  # type: ignore[attr-defined]
    assert app_client.get("/v1/warnings").status_code == 200  # made and kept, with the admin key
    _, ingest = keys.create(Role.INGEST, "gateway", expires=None, created_by="t", now=NOW)
    assert app_client.post("/v1/readings", json={"readings": []}, headers=bearer(ingest)).status_code == 422
    assert app_client.get("/v1/warnings", headers=bearer(ingest)).status_code == 403
    assert app_client.get("/v1/warnings", headers={"Authorization": "Basic eDp5"}).status_code == 401
    assert app_client.get("/v1/warnings", headers={"Authorization": ""}).status_code == 401


def test_a_kept_page_stops_with_the_key_revoked_elsewhere_and_counts_against_the_rate_limit(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=url,
        auth_cache_ttl_s=0.3,
        rate_limit_api="6/minute",
    )
    app = create_app(settings)
    with TestClient(app) as client:
        elsewhere = db.open_engine(url)
        try:
            keys = KeyStore(app.state.services.engine)
            record, token = keys.create(Role.VIEWER, "wall", expires=None, created_by="t", now=NOW)
            for _ in range(3):
                assert client.get("/v1/warnings", headers=bearer(token)).status_code == 200
            KeyStore(elsewhere).revoke(record.id, at=datetime.now(UTC))
            time.sleep(0.3)  # the setting's bound (polling would use up the allowance tested below)
            assert client.get("/v1/warnings", headers=bearer(token)).status_code == 401

            # Kept pages count against the key's allowance like any other answer.
            _, other = keys.create(Role.VIEWER, "console", expires=None, created_by="t", now=NOW)
            answers = [client.get("/v1/warnings", headers=bearer(other)).status_code for _ in range(8)]
            assert answers == [200] * 6 + [429] * 2
        finally:
            elsewhere.dispose()
