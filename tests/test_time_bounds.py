"""Time bounds mean the same instant whatever offset they are written in, on every store.

An EOC in UTC+8 writes ``since=...T16:00:00+08:00``; that is 08:00 UTC, and
SQLite (which keeps naive strings) must not read it as 16:00. A naive bound is
taken as UTC; a bound the stores cannot hold, or a reversed range, is a 422
that names the parameter, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerts import db
from alerts.service import WarningService
from app.api.deps import INSTANT_EXPECTED, INSTANT_PATTERN
from app.main import create_app
from bench.isolation import isolated_settings
from config.settings import Settings
from config.timeutil import as_utc, from_ns, to_ns
from ingest.broker import EmbeddedBroker
from store.schemas import Point
from tests.auth_helpers import admin_client
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal

BEIJING = timezone(timedelta(hours=8))


def test_timeutil_normalises_to_utc_and_round_trips_nanoseconds() -> None:
    assert as_utc(datetime(2026, 11, 29, 16, 0, tzinfo=BEIJING)) == datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    assert as_utc(datetime(2026, 11, 29, 8, 0)).tzinfo is UTC
    ns = 1_764_403_200_123_456_000
    assert to_ns(from_ns(ns)) == ns
    # Exact integers: no float rounding at microsecond precision far from the epoch.
    assert to_ns(datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)) == 9_223_372_036_854_775_000


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarningService]:
    url = (
        f"sqlite:///{tmp_path}/state.sqlite3"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = db.connect(url)
    yield WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS)
    engine.dispose()


def test_list_bounds_with_an_offset_mean_the_same_instant(service: WarningService) -> None:
    service.apply_signals([signal()], now=NOW, actor="a")  # updated at 08:00 UTC
    just_before = (NOW - timedelta(minutes=30)).astimezone(BEIJING)  # 15:30+08:00
    just_after = (NOW + timedelta(minutes=30)).astimezone(BEIJING)
    assert service.list(since=just_before).total == 1
    assert service.list(since=just_after).total == 0
    assert service.list(until=just_after).total == 1
    assert service.list(until=just_before).total == 0


def test_recent_evidence_bound_with_an_offset_means_the_same_instant(service: WarningService) -> None:
    service.apply_signals([signal()], now=NOW, actor="a")
    before = (NOW - timedelta(minutes=30)).astimezone(BEIJING)
    after = (NOW + timedelta(minutes=30)).astimezone(BEIJING)
    assert len(service.recent_evidence_in(["g-riverside-01"], since=before)) == 1
    assert service.recent_evidence_in(["g-riverside-01"], since=after) == []


def test_a_now_given_with_an_offset_is_stored_as_utc(service: WarningService) -> None:
    [wid] = service.apply_signals([signal()], now=NOW.astimezone(BEIJING), actor="a")
    assert service.list(since=NOW - timedelta(seconds=1), until=NOW + timedelta(seconds=1)).total == 1
    w = service.get(wid)
    assert w is not None and w.updated_at == NOW and w.updated_at.utcoffset() == timedelta(0)


# ---- over HTTP ------------------------------------------------------------------------------

API_NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def client(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    settings: Settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    )
    with admin_client(create_app(settings)) as c:
        svc = c.app.state.services  # type: ignore[attr-defined]
        svc.warnings.apply_signals(
            [signal(area="g-oldtown-05", ts=API_NOW)], now=API_NOW, actor="detector:test"
        )
        yield c


def iso(ts: datetime) -> str:
    return ts.isoformat()


def test_warnings_bounds_with_an_offset_or_naive_are_the_same_instant(client: TestClient) -> None:
    before, after = API_NOW - timedelta(minutes=30), API_NOW + timedelta(minutes=30)
    local = {"since": iso(before.astimezone(BEIJING)), "until": iso(after.astimezone(BEIJING))}
    assert client.get("/v1/warnings", params=local).json()["total"] == 1
    later = {"since": iso(after.astimezone(BEIJING))}
    assert client.get("/v1/warnings", params=later).json()["total"] == 0
    # A naive bound is UTC, and may be mixed with an aware one.
    mixed = {"since": iso(before.replace(tzinfo=None)), "until": iso(after.astimezone(BEIJING))}
    resp = client.get("/v1/warnings", params=mixed)
    assert resp.status_code == 200 and resp.json()["total"] == 1
    naive_later = {"since": iso(after.replace(tzinfo=None))}
    assert client.get("/v1/warnings", params=naive_later).json()["total"] == 0


def fields(resp: object) -> set[str]:
    """The query parameters a 422 problem document names (``query.since`` -> ``since``)."""
    assert resp.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    return {e["field"].removeprefix("query.") for e in resp.json()["errors"]}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "0001-01-01T00:00:00"}, "since"),
        ({"since": "0001-01-01T00:00:00+08:00"}, "since"),
        ({"until": "9999-12-31T23:59:59"}, "until"),
        ({"until": "9999-12-31T23:59:59-08:00"}, "until"),
        ({"since": "1600-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "2026-02-30T00:00:00Z"}, "since"),
        ({"until": "2026-01-01"}, "until"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/warnings", "/v1/reports"])
def test_list_bounds_out_of_range_or_not_instants_are_422_naming_the_parameter(
    client: TestClient, path: str, params: dict[str, str], field: str
) -> None:
    resp = client.get(path, params=params)
    assert resp.status_code == 422, resp.text
    assert field in fields(resp)


@pytest.mark.parametrize(
    ("path", "name"),
    [("/v1/warnings", "since"), ("/v1/reports", "until"), ("/v1/sensors/gas-oldtown-01/series", "start")],
)
def test_a_bound_that_is_no_instant_is_refused_in_words_not_by_quoting_the_pattern(
    client: TestClient, path: str, name: str
) -> None:
    resp = client.get(path, params={name: "yesterday"})
    assert resp.status_code == 422, resp.text
    [error] = resp.json()["errors"]
    assert (error["field"], error["reason"], error["value"]) == (
        f"query.{name}",
        INSTANT_EXPECTED,
        "yesterday",
    )
    assert INSTANT_PATTERN not in resp.text


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": "2026-01-01T08:00:00+08:00", "until": "2026-01-01T00:00:00"},
    ],
)
def test_an_empty_or_reversed_range_matches_nothing(client: TestClient, params: dict[str, str]) -> None:
    """Well-formed, so answered (the OpenAPI document cannot say until > since): nothing lies in it."""
    assert client.get("/v1/warnings").json()["total"] == 1
    for path in ("/v1/warnings", "/v1/reports"):
        resp = client.get(path, params=params)
        assert resp.status_code == 200, resp.text
        assert resp.json()["total"] == 0 and resp.json()["items"] == []


def test_series_bounds_are_checked_the_same_way(client: TestClient) -> None:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    t0 = API_NOW - timedelta(hours=1)
    store.write(
        [
            Point("gas-oldtown-01", "gas", "g-oldtown-05", to_ns(t0 + timedelta(minutes=i)), i)
            for i in range(10)
        ]
    )
    url = "/v1/sensors/gas-oldtown-01/series"
    local = {
        "start": iso(t0.astimezone(BEIJING)),
        "end": iso((t0 + timedelta(minutes=3)).replace(tzinfo=None)),
    }
    resp = client.get(url, params=local)
    assert resp.status_code == 200 and [p["value"] for p in resp.json()["points"]] == [0.0, 1.0, 2.0]
    far = {"start": "9999-12-30T00:00:00Z", "end": "9999-12-31T00:00:00Z"}
    resp = client.get(url, params=far)
    assert resp.status_code == 422 and "start" in fields(resp)
    resp = client.get(url, params={"end": "0001-01-01T12:00:00+08:00"})
    assert resp.status_code == 422 and "end" in fields(resp)
    resp = client.get(url, params={"start": iso(t0), "end": iso(t0 - timedelta(minutes=1))})
    assert resp.status_code == 200 and resp.json()["points"] == []


def test_a_series_range_past_31_days_is_served_in_pages(client: TestClient) -> None:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    t0 = API_NOW - timedelta(days=40)
    days = [t0 + timedelta(days=d) for d in range(40)]
    store.write([Point("gas-oldtown-01", "gas", "g-oldtown-05", to_ns(t), i) for i, t in enumerate(days)])
    url = "/v1/sensors/gas-oldtown-01/series"

    first = client.get(url, params={"start": iso(t0), "end": iso(API_NOW)}).json()
    assert first["truncated"] is True
    assert datetime.fromisoformat(first["end"]) == t0 + timedelta(days=31)
    assert [p["value"] for p in first["points"]] == [float(i) for i in range(31)]
    rest = client.get(url, params={"start": first["end"], "end": iso(API_NOW)}).json()
    assert rest["truncated"] is False
    assert [p["value"] for p in rest["points"]] == [float(i) for i in range(31, 40)]


def test_area_risk_since_is_an_instant_and_is_checked(client: TestClient) -> None:
    url = "/v1/areas/g-oldtown-05/risk"
    before = (API_NOW - timedelta(minutes=30)).astimezone(BEIJING)
    after = (API_NOW + timedelta(minutes=30)).astimezone(BEIJING)
    assert len(client.get(url, params={"since": iso(before)}).json()["recent_signals"]) == 1
    assert client.get(url, params={"since": iso(after)}).json()["recent_signals"] == []
    resp = client.get(url, params={"since": "0001-01-01T00:00:00+08:00"})
    assert resp.status_code == 422 and "since" in fields(resp)
