"""Who may call what: the ``require`` dependency, and every route of the app walked with every kind of key."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from alerts import db
from alerts.lifecycle import new_warning
from alerts.recommendation_log import RecommendationLog
from alerts.recommendations import recommend
from alerts.service import WarningService
from alerts.silences import Matchers
from alerts.subscription_store import SubscriptionStore
from alerts.subscriptions import Filters
from app.auth.deps import require
from app.auth.keys import KeyStore
from app.auth.roles import GRANTS, Permission, Principal, Role
from app.main import create_app
from bench.isolation import isolated_settings
from config.catalog import Sensor
from ingest.broker import EmbeddedBroker
from tests.auth_helpers import bearer, new_key
from tests.factories import NOW as FIXED
from tests.factories import gas_reading, signal
from tests.test_http_ingest import report as report_message
from tests.test_sensor_registry import NEW_GAS

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


# ---- every route, every kind of caller -----------------------------------------------------------

Request = tuple[str, dict[str, Any]]  # path, and keyword arguments of TestClient.request


@dataclass(frozen=True)
class ForCaller:
    """A request on an object the caller owns (its own webhook subscription): ``make`` gets the
    caller's key id (None for a refused caller), since another key's object would be a 404."""

    make: Callable[[TestClient, str | None], Request]


# A route any valid key may call, whatever its role (GET /v1/me): refused keys still get a 401.
ANY_KEY = "any key"


@dataclass(frozen=True)
class RouteCase:
    """What a route needs (None: open to anyone) and how a permitted call is made and answered."""

    permission: Permission | Literal["any key"] | None
    ok: int
    request: Callable[[TestClient], Request] | ForCaller


def _get(path: str, **kw: Any) -> Callable[[TestClient], Request]:
    return lambda _client: (path, kw)


def _fresh_warning(action: str) -> Callable[[TestClient], Request]:
    """A new open warning for each call, so every permitted caller's transition is allowed."""

    def make(client: TestClient) -> Request:
        svc = client.app.state.services  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        warning = new_warning(
            "flood", f"g-test-{uuid.uuid4().hex[:8]}", "yellow", first=now, last=now, now=now
        )
        with svc.warnings.repository.writing() as tx:
            tx.insert(warning)
        return f"/v1/warnings/{warning.id}/{action}", {"json": {"note": "checked"}}

    return make


def _fresh_assignment(client: TestClient) -> Request:
    """A new open warning for each call, assigned by name (the lifecycle's assign)."""
    url, _ = _fresh_warning("assign")(client)
    return url, {"json": {"assignee": "crew 7"}}


def _fresh_recommendation(verb: str) -> Callable[[TestClient], Request]:
    """A new warning with its playbook's recommendations for each call; for done, the first accepted."""

    def make(client: TestClient) -> Request:
        svc = client.app.state.services  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        area = f"g-test-{uuid.uuid4().hex[:8]}"
        warning = new_warning("flood", area, "yellow", first=now, last=now, now=now)
        recs = recommend(
            playbooks=svc.playbooks, hazard="flood", level="yellow", area=area, sensors=[], now=now, why="t"
        )
        with svc.warnings.repository.writing() as tx:
            tx.insert(warning)
            tx.update(warning.id, {"recommendations": recs})
        rid = recs[0]["rid"]
        if verb == "done":
            RecommendationLog(svc.engine).record(
                warning.id, rid, "accepted", now=now, actor="t", actor_role=None
            )
        return f"/v1/warnings/{warning.id}/recommendations/{rid}/{verb}", {"json": {"note": "checked"}}

    return make


def _fresh_key(client: TestClient) -> Request:
    return f"/v1/keys/{new_key(client.app, Role.VIEWER, 'to revoke').split('_')[1]}", {}  # type: ignore[arg-type]


def _new_sensor() -> dict[str, Any]:
    return {**NEW_GAS, "id": f"gas-test-{uuid.uuid4().hex[:8]}"}


def _registered_sensor(method: str) -> Callable[[TestClient], Request]:
    """A newly registered sensor for each call, so every permitted caller may change or retire it."""

    def make(client: TestClient) -> Request:
        svc = client.app.state.services  # type: ignore[attr-defined]
        sensor = Sensor.model_validate(_new_sensor())
        svc.registry.add(sensor, actor="tests", now=datetime.now(UTC))
        svc.live_catalog.refresh()
        return f"/v1/sensors/{sensor.id}", ({"json": {"name": "renamed"}} if method == "PATCH" else {})

    return make


def _silence_body() -> dict[str, Any]:
    return {
        "matchers": {"hazard": "flood", "area": "g-oldtown-05"},
        "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "comment": "pump maintenance",
    }


def _fresh_silence(client: TestClient) -> Request:
    """A new silence for each call, so every permitted caller has one to read or end."""
    now = datetime.now(UTC)
    silence = client.app.state.services.silences.create(  # type: ignore[attr-defined]
        Matchers(hazard="flood"),
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        recurrence=None,
        comment="t",
        created_by="tests",
        now=now,
    )
    return f"/v1/silences/{silence.id}", {}


def _public_warning_cap(client: TestClient) -> Request:
    """A red warning's CAP: red is public at once (a warning still pending has no CAP message)."""
    svc = client.app.state.services  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    red = signal(level="red", value=4.5, sensor_id="wl-cap-01", area="g-oldtown-02", ts=now)
    [wid] = svc.warnings.apply_signals([red], now=now, actor="t")
    return f"/v1/warnings/{wid}/cap", {}


def _own_subscription(suffix: str = "", **kw: Any) -> ForCaller:
    """A new subscription owned by the caller's key for each call, and a request on it."""

    def make(client: TestClient, owner: str | None) -> Request:
        sub = SubscriptionStore(client.app.state.services.engine).create(  # type: ignore[attr-defined]
            url="http://93.184.216.34/hook",
            description="",
            filters=Filters(),
            owner=owner or "nobody",
            owner_label="t",
            now=datetime.now(UTC),
        )
        return f"/v1/subscriptions/{sub.id}{suffix}", kw

    return ForCaller(make)


def _own_pending_delivery(client: TestClient, owner: str | None) -> Request:
    """A ping queued on a new subscription of the caller's: a delivery one may retry."""
    path, _ = _own_subscription().make(client, owner)
    store = SubscriptionStore(client.app.state.services.engine)  # type: ignore[attr-defined]
    delivery = store.ping(path.rsplit("/", 1)[1], actor="t", now=datetime.now(UTC))
    return f"{path}/deliveries/{delivery.id}/retry", {}


def _existing_warning(client: TestClient) -> Request:
    return f"/v1/warnings/{client.app.state.first_warning}", {}  # type: ignore[attr-defined]


ROUTES: dict[tuple[str, str], RouteCase] = {
    ("GET", "/healthz"): RouteCase(None, 200, _get("/healthz")),
    ("GET", "/readyz"): RouteCase(None, 200, _get("/readyz")),
    ("GET", "/metrics"): RouteCase(None, 200, _get("/metrics")),  # counts only: Prometheus scrapes it
    ("GET", "/openapi.json"): RouteCase(None, 200, _get("/openapi.json")),
    ("GET", "/docs"): RouteCase(None, 200, _get("/docs")),
    ("GET", "/docs/oauth2-redirect"): RouteCase(None, 200, _get("/docs/oauth2-redirect")),
    ("GET", "/redoc"): RouteCase(None, 200, _get("/redoc")),
    # The operator console's page and assets hold no data: every call the page makes sends the key.
    ("GET", "/console"): RouteCase(None, 200, _get("/console")),
    ("GET", "/console/assets/{asset:path}"): RouteCase(None, 200, _get("/console/assets/js/main.js")),
    ("POST", "/v1/readings"): RouteCase(
        Permission.INGEST, 202, lambda _c: ("/v1/readings", {"json": {"readings": [gas_reading()]}})
    ),
    ("POST", "/v1/reports"): RouteCase(
        Permission.INGEST,
        202,
        lambda _c: ("/v1/reports", {"json": {"reports": [report_message()]}}),
    ),
    ("GET", "/v1/reports"): RouteCase(Permission.READ, 200, _get("/v1/reports")),
    ("GET", "/v1/warnings"): RouteCase(Permission.READ_WARNINGS, 200, _get("/v1/warnings")),
    ("GET", "/v1/warnings/{warning_id}"): RouteCase(Permission.READ_WARNINGS, 200, _existing_warning),
    ("GET", "/v1/warnings/{warning_id}/timeline"): RouteCase(
        Permission.READ_WARNINGS, 200, lambda c: (f"{_existing_warning(c)[0]}/timeline", {})
    ),
    ("GET", "/v1/warnings/{warning_id}/cap"): RouteCase(Permission.READ_WARNINGS, 200, _public_warning_cap),
    ("GET", "/v1/warnings/{warning_id}/recommendations"): RouteCase(
        Permission.READ_WARNINGS, 200, lambda c: (f"{_existing_warning(c)[0]}/recommendations", {})
    ),
    ("POST", "/v1/warnings/{warning_id}/recommendations/{rid}/accept"): RouteCase(
        Permission.ACT, 200, _fresh_recommendation("accept")
    ),
    ("POST", "/v1/warnings/{warning_id}/recommendations/{rid}/reject"): RouteCase(
        Permission.ACT, 200, _fresh_recommendation("reject")
    ),
    ("POST", "/v1/warnings/{warning_id}/recommendations/{rid}/done"): RouteCase(
        Permission.ACT, 200, _fresh_recommendation("done")
    ),
    ("GET", "/v1/cap/feed"): RouteCase(Permission.READ_WARNINGS, 200, _get("/v1/cap/feed")),
    ("POST", "/v1/warnings/{warning_id}/acknowledge"): RouteCase(
        Permission.ACT, 200, _fresh_warning("acknowledge")
    ),
    ("POST", "/v1/warnings/{warning_id}/resolve"): RouteCase(Permission.ACT, 200, _fresh_warning("resolve")),
    ("POST", "/v1/warnings/{warning_id}/escalate"): RouteCase(
        Permission.ACT, 200, _fresh_warning("escalate")
    ),
    ("POST", "/v1/warnings/{warning_id}/deescalate"): RouteCase(
        Permission.ACT, 200, _fresh_warning("deescalate")
    ),
    ("POST", "/v1/warnings/{warning_id}/annotate"): RouteCase(
        Permission.ACT, 200, _fresh_warning("annotate")
    ),
    ("POST", "/v1/warnings/{warning_id}/assign"): RouteCase(Permission.ACT, 200, _fresh_assignment),
    ("GET", "/v1/sensors"): RouteCase(Permission.READ, 200, _get("/v1/sensors")),
    ("POST", "/v1/sensors"): RouteCase(
        Permission.ADMINISTER, 201, lambda _c: ("/v1/sensors", {"json": _new_sensor()})
    ),
    ("GET", "/v1/sensors/{sensor_id}"): RouteCase(Permission.READ, 200, _get("/v1/sensors/gas-oldtown-01")),
    ("PATCH", "/v1/sensors/{sensor_id}"): RouteCase(Permission.ADMINISTER, 200, _registered_sensor("PATCH")),
    ("DELETE", "/v1/sensors/{sensor_id}"): RouteCase(
        Permission.ADMINISTER, 204, _registered_sensor("DELETE")
    ),
    ("GET", "/v1/sensors/{sensor_id}/series"): RouteCase(
        Permission.READ, 200, _get("/v1/sensors/gas-oldtown-01/series")
    ),
    ("GET", "/v1/sensor-health"): RouteCase(Permission.READ, 200, _get("/v1/sensor-health")),
    ("GET", "/v1/me"): RouteCase(ANY_KEY, 200, _get("/v1/me")),
    # Ends after stream_max_s (set short in app_client): TestClient reads a response to its end.
    ("GET", "/v1/stream"): RouteCase(Permission.READ_WARNINGS, 200, _get("/v1/stream")),
    ("GET", "/v1/areas"): RouteCase(Permission.READ, 200, _get("/v1/areas")),
    ("GET", "/v1/areas/{area_id}/risk"): RouteCase(Permission.READ, 200, _get("/v1/areas/g-oldtown-05/risk")),
    ("POST", "/v1/keys"): RouteCase(
        Permission.ADMINISTER, 201, lambda _c: ("/v1/keys", {"json": {"role": "viewer", "label": "new"}})
    ),
    ("GET", "/v1/keys"): RouteCase(Permission.ADMINISTER, 200, _get("/v1/keys")),
    ("DELETE", "/v1/keys/{key_id}"): RouteCase(Permission.ADMINISTER, 200, _fresh_key),
    ("POST", "/v1/silences"): RouteCase(
        Permission.ACT, 201, lambda _c: ("/v1/silences", {"json": _silence_body()})
    ),
    ("GET", "/v1/silences"): RouteCase(Permission.READ, 200, _get("/v1/silences")),
    ("GET", "/v1/silences/{silence_id}"): RouteCase(Permission.READ, 200, _fresh_silence),
    ("DELETE", "/v1/silences/{silence_id}"): RouteCase(Permission.ACT, 200, _fresh_silence),
    ("POST", "/v1/drills"): RouteCase(Permission.DRILL, 202, lambda c: _no_drill_running(c)),
    ("GET", "/v1/drills"): RouteCase(Permission.READ, 200, _get("/v1/drills")),
    ("GET", "/v1/drills/{drill_id}"): RouteCase(Permission.READ, 200, lambda c: _fresh_drill(c)),
    ("DELETE", "/v1/drills/{drill_id}"): RouteCase(Permission.DRILL, 200, lambda c: _fresh_drill(c)),
    ("POST", "/v1/subscriptions"): RouteCase(
        Permission.SUBSCRIBE,
        201,
        lambda _c: ("/v1/subscriptions", {"json": {"url": "http://93.184.216.34/h"}}),
    ),
    ("GET", "/v1/subscriptions"): RouteCase(Permission.SUBSCRIBE, 200, _get("/v1/subscriptions")),
    ("GET", "/v1/subscriptions/{subscription_id}"): RouteCase(Permission.SUBSCRIBE, 200, _own_subscription()),
    ("PATCH", "/v1/subscriptions/{subscription_id}"): RouteCase(
        Permission.SUBSCRIBE, 200, _own_subscription(json={"description": "changed"})
    ),
    ("DELETE", "/v1/subscriptions/{subscription_id}"): RouteCase(
        Permission.SUBSCRIBE, 204, _own_subscription()
    ),
    ("POST", "/v1/subscriptions/{subscription_id}/rotate-secret"): RouteCase(
        Permission.SUBSCRIBE, 200, _own_subscription("/rotate-secret")
    ),
    ("GET", "/v1/subscriptions/{subscription_id}/deliveries"): RouteCase(
        Permission.SUBSCRIBE, 200, _own_subscription("/deliveries")
    ),
    ("POST", "/v1/subscriptions/{subscription_id}/deliveries/{delivery_id}/retry"): RouteCase(
        Permission.SUBSCRIBE, 202, ForCaller(_own_pending_delivery)
    ),
    ("POST", "/v1/subscriptions/{subscription_id}/replay"): RouteCase(
        Permission.SUBSCRIBE, 202, _own_subscription("/replay", params={"since": "2026-01-01T00:00:00Z"})
    ),
    ("POST", "/v1/subscriptions/{subscription_id}/test"): RouteCase(
        Permission.SUBSCRIBE, 202, _own_subscription("/test")
    ),
}


def _no_drill_running(client: TestClient) -> Request:
    """A drill start that is allowed: any drill of the scenario stopped first; paced so it waits."""
    drills = client.app.state.drills  # type: ignore[attr-defined]
    for drill in drills.store.page(limit=500, offset=0)[0]:
        if drill.state == "running":
            drills.stop(drill.id)
    return "/v1/drills", {"json": {"scenario": "demo-day", "speed": 1}}


def _fresh_drill(client: TestClient) -> Request:
    drills = client.app.state.drills  # type: ignore[attr-defined]
    _no_drill_running(client)
    drill = drills.start("demo-day", speed=1, note="", requested_by="t")
    return f"/v1/drills/{drill.id}", {}


REFUSED_CALLERS = [
    "no key",
    "not bearer",
    "malformed",
    "unknown id",
    "right id, wrong secret",
    "expired",
    "revoked",
]


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, as its router sees them (HEAD goes with GET)."""
    return {
        (method, str(r.path))
        for r in iter_route_contexts(app.routes)
        for method in (r.methods or set())
        if method != "HEAD"
    }


@pytest.fixture
def app_client(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    """The whole app, with no key of its own, on either state database."""
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=state_url,
        rate_limits_enabled=False,  # tested on their own (test_rate_limits); the table sends ~600 requests
        stream_max_s=0.2,  # GET /v1/stream ends, so TestClient, which reads to the end, can answer
    )
    with TestClient(create_app(settings)) as client:
        svc = client.app.state.services  # type: ignore[attr-defined]
        [wid] = svc.warnings.apply_signals([signal(ts=datetime.now(UTC))], now=datetime.now(UTC), actor="t")
        client.app.state.first_warning = wid  # type: ignore[attr-defined]
        yield client


def callers(client: TestClient) -> dict[str, dict[str, str]]:
    """The headers of every kind of caller: the refused ones, then one key per role."""
    app: FastAPI = client.app  # type: ignore[assignment]
    keys = KeyStore(app.state.services.engine)
    admin = new_key(app, Role.ADMIN)
    key_id = admin.split("_")[1]
    revoked = new_key(app, Role.ADMIN, "revoked")
    keys.revoke(revoked.split("_")[1], at=datetime.now(UTC))
    expired = new_key(
        app, Role.ADMIN, "expired", expires=timedelta(hours=1), now=datetime.now(UTC) - timedelta(hours=2)
    )
    refused = {
        "no key": {},
        "not bearer": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "malformed": bearer("not-a-key"),
        "unknown id": bearer(f"cwk_{'0' * 12}_{'A' * 43}"),
        "right id, wrong secret": bearer(f"cwk_{key_id}_{'A' * 43}"),
        "expired": bearer(expired),
        "revoked": bearer(revoked),
    }
    assert list(refused) == REFUSED_CALLERS
    return {**refused, **{role.value: bearer(new_key(app, role)) for role in Role}}


def _key_id(headers: dict[str, str]) -> str | None:
    """The id in ``Authorization: Bearer cwk_<id>_<secret>``, if the caller sent a key of that shape."""
    parts = headers.get("Authorization", "").removeprefix("Bearer ").split("_", 2)  # the secret may hold _
    return parts[1] if len(parts) == 3 and parts[0] == "cwk" else None


def expected(case: RouteCase, caller: str) -> int:
    if case.permission is None:
        return case.ok
    if caller in REFUSED_CALLERS:
        return 401
    if case.permission == ANY_KEY:
        return case.ok
    return case.ok if case.permission in GRANTS[Role(caller)] else 403


def test_the_table_names_every_route_of_the_app(app_client: TestClient) -> None:
    """A route added without an entry here fails: each route must say who may call it."""
    assert app_routes(app_client.app) == set(ROUTES)  # type: ignore[arg-type]


def test_every_route_answers_every_caller_as_its_permission_says(app_client: TestClient) -> None:
    got: dict[tuple[str, str, str], int] = {}
    want: dict[tuple[str, str, str], int] = {}
    challenges: dict[tuple[str, str, str], str | None] = {}
    refusals: dict[tuple[str, str, str], str] = {}
    for caller, headers in callers(app_client).items():
        for (method, template), case in ROUTES.items():
            if isinstance(case.request, ForCaller):
                path, kw = case.request.make(app_client, _key_id(headers))
            else:
                path, kw = case.request(app_client)
            resp = app_client.request(method, path, headers=headers, **kw)
            got[(method, template, caller)] = resp.status_code
            want[(method, template, caller)] = expected(case, caller)
            if resp.status_code == 401:
                challenges[(method, template, caller)] = resp.headers.get("WWW-Authenticate")
            if resp.status_code in (401, 403):
                refusals[(method, template, caller)] = resp.headers.get("Content-Type", "")
    assert got == want
    assert challenges and all(c is not None and c.startswith("Bearer") for c in challenges.values())
    assert refusals and all(c.startswith("application/problem+json") for c in refusals.values())
