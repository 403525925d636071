"""A warning's timeline over HTTP, on SQLite and PostgreSQL: a gas warning opened by a burst of
residents' reports (through the report sink's real burst detector) and raised by a gas sensor's
signals (through the real WarningService), acknowledged and resolved with operator keys; then the
paging of the timeline, pure, against a brute-force merge."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import db, timeline
from alerts.lifecycle import new_warning
from alerts.recommendation_log import RecommendationStep
from alerts.schemas import Evidence, WarningEvent, WarningOut
from alerts.sinks import ReportSink
from app.auth.roles import Role
from app.main import create_app
from app.services import Services
from bench.isolation import isolated_settings
from config.timeutil import from_ns
from ingest.broker import EmbeddedBroker
from models.report_burst import ReportBurstDetector
from models.signals import Signal
from store.schemas import ReportRecord
from tests.auth_helpers import bearer, new_key
from tests.factories import CATALOG, signal

GRID = "g-oldtown-05"  # where gas-oldtown-01 is
T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
ORDER = {"report": 0, "reading": 1, "report_burst": 1, "transition": 2, "recommendation": 3}


@pytest.fixture
def app_client(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    url = state_url
    settings_ = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=url,
        rate_limits_enabled=False,  # the paging walk sends hundreds of requests
    )
    with TestClient(create_app(settings_)) as client:
        yield client


def gas_signal(*, level: str | None, value: float, ts: datetime) -> Signal:
    return signal(
        hazard="gas_leak", kind="gas", sensor_id="gas-oldtown-01", area=GRID, level=level, value=value, ts=ts
    )


def gas_report(i: int, minute: int) -> ReportRecord:
    return ReportRecord(
        report_id=f"call-{i}",
        source="hotline" if i % 2 else "app",
        category="gas_leak",
        category_inferred=False,
        text=f"Caller {i}: strong smell of gas in the stairwell 楼道煤气味很重 " + "x" * 300,
        ts_ns=int((T0 + timedelta(minutes=minute)).timestamp()) * 1_000_000_000,
        area=GRID,
    )


@dataclass
class Built:
    warning_id: str
    reports: list[ReportRecord]
    readings: int


def build_gas_warning(svc: Services) -> Built:
    """Five calls in three batches (a burst that grows, so its evidence rows cite calls again), a gas
    sensor's yellow reading at the third call's instant, then 60 of its readings; each batch is
    processed at the time of its latest observation, as a live service would."""
    sink = ReportSink(
        detector_factory=lambda: ReportBurstDetector(svc.taxonomy, window_s=1800),
        warnings=svc.warnings,
        checkpoints=svc.checkpoints,
    )
    reports = [gas_report(i, 2 * i) for i in range(5)]
    tie = T0 + timedelta(minutes=4)  # the third call, the burst it makes, a reading, their transitions
    for batch in (reports[:3], reports[3:4], reports[4:]):
        svc.reports.save(batch)
        made = from_ns(max(r.ts_ns for r in batch))
        sink.process(batch, [(0, i) for i in range(len(batch))], now=made)
        if made == tie:
            reading = gas_signal(level="yellow", value=12.0, ts=tie)
            assert svc.warnings.apply_signals([reading], now=tie, actor="d")
    [wid] = {w.id for w in svc.warnings.list(hazard="gas_leak").items}
    later = [
        gas_signal(
            level="red" if i == 30 else None, value=20.0 + i, ts=T0 + timedelta(minutes=20, seconds=30 * i)
        )
        for i in range(60)
    ]
    for i in range(0, 60, 20):
        svc.warnings.apply_signals(later[i : i + 20], now=T0 + timedelta(minutes=60 + i), actor="detector:t")
    return Built(wid, reports, readings=61)


def whole(
    client: TestClient, wid: str, headers: dict[str, str], limit: int
) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        resp = client.get(
            f"/v1/warnings/{wid}/timeline", params={"limit": limit, "offset": offset}, headers=headers
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["limit"], body["offset"]) == (limit, offset)
        items += body["items"]
        if not body["items"]:
            return items, body["total"]
        offset += limit


def test_the_timeline_holds_every_report_reading_and_transition_in_order(app_client: TestClient) -> None:
    app = app_client.app
    svc: Services = app.state.services  # type: ignore[attr-defined]
    built = build_gas_warning(svc)
    wid = built.warning_id
    operator = bearer(new_key(app, Role.OPERATOR, "EOC duty officer"))  # type: ignore[arg-type]
    viewer = bearer(new_key(app, Role.VIEWER, "wall screen"))  # type: ignore[arg-type]
    ack = app_client.post(f"/v1/warnings/{wid}/acknowledge", json={"note": "crew sent"}, headers=operator)
    assert ack.status_code == 200, ack.text
    done = app_client.post(f"/v1/warnings/{wid}/resolve", json={"note": "valve closed"}, headers=operator)
    assert done.status_code == 200, done.text

    resp = app_client.get(f"/v1/warnings/{wid}/timeline", params={"limit": 500}, headers=viewer)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    items = body["items"]
    assert body["warning"]["id"] == wid and body["warning"]["status"] == "resolved"
    assert body["total"] == len(items)

    # Every evidence row, every event, every report: what the database holds.
    with svc.engine.connect() as conn:
        evidence = conn.execute(
            sa.select(db.evidence.c.sensor_id, db.evidence.c.source, db.evidence.c.report_ids).where(
                db.evidence.c.warning_id == wid
            )
        ).all()
    detail = svc.warnings.get(wid)
    assert detail is not None
    by_type: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_type.setdefault(item["type"], []).append(item)
    bursts = [e for e in evidence if e.source == "reports"]
    assert len(by_type["reading"]) == built.readings == len(evidence) - len(bursts)
    assert len(by_type["report_burst"]) == len(bursts) >= 2  # the burst grew: calls are cited again
    assert sum(len(b["report_ids"]) for b in by_type["report_burst"]) > len(built.reports)
    assert [r["report_id"] for r in by_type["report"]] == [r.report_id for r in built.reports]
    transitions = [(t["action"], t["actor"], t["actor_role"], t["note"]) for t in by_type["transition"]]
    assert transitions == [(e.action, e.actor, e.actor_role, e.note) for e in detail.events]
    # The lifecycle's own changes carry the readings' time they happened at; an operator's, none.
    clocks = [t["event_time"] for t in by_type["transition"]]
    assert clocks == [None if e.event_time is None else _iso(e.event_time) for e in detail.events]
    assert clocks[-2:] == [None, None] and any(c is not None for c in clocks[:-2])
    assert transitions[-2:] == [
        ("acknowledged", "EOC duty officer", "operator", "crew sent"),
        ("resolved", "EOC duty officer", "operator", "valve closed"),
    ]
    assert ("escalated", "detector:t", None) in [t[:3] for t in transitions]

    # What each entry says.
    call = by_type["report"][1]
    assert call["stored"] is True and call["source"] == "hotline" and call["category"] == "gas_leak"
    assert call["excerpt"].startswith("Caller 1: strong smell of gas in the stairwell 楼道煤气味很重")
    assert len(call["excerpt"]) == timeline.EXCERPT_CHARS
    assert call["at"] == (T0 + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    red = next(r for r in by_type["reading"] if r["level"] == "red")
    assert (red["sensor_id"], red["kind"], red["unit"], red["value"]) == (
        "gas-oldtown-01",
        "gas",
        "%LEL",
        50.0,
    )
    assert red["detector"] == "test" and red["score"] == 0.95 and CATALOG.kinds["gas"].unit == "%LEL"
    assert all(b["detector"] == "reportburst" and 0 < b["score"] <= 1 for b in by_type["report_burst"])

    # In time order; at one instant reports, then evidence, then the transitions it caused.
    keys = [(datetime.fromisoformat(i["at"]), ORDER[i["type"]]) for i in items]
    assert keys == sorted(keys)
    tie = (T0 + timedelta(minutes=4)).isoformat().replace("+00:00", "Z")
    at_tie = [(i["type"], i.get("action")) for i in items if i["at"] == tie]
    assert at_tie[:4] == [
        ("report", None),
        ("report_burst", None),
        ("reading", None),
        ("transition", "opened"),
    ]
    assert {kind for kind, _ in at_tie[4:]} <= {"transition"}

    # Pages of any size cover the same entries exactly once, in the same order.
    for limit in (1, 7, 50):
        paged, total = whole(app_client, wid, viewer, limit)
        assert total == len(items)
        assert paged == items


def test_recommendation_steps_appear_in_time_order_with_their_actors(app_client: TestClient) -> None:
    app = app_client.app
    svc: Services = app.state.services  # type: ignore[attr-defined]
    wid = build_gas_warning(svc).warning_id
    recs = sorted(svc.warnings.get(wid).recommendations, key=lambda r: r["rank"])  # type: ignore[union-attr]
    first, second = recs[0]["rid"], recs[1]["rid"]
    officer = bearer(new_key(app, Role.OPERATOR, "EOC duty officer"))  # type: ignore[arg-type]
    chief = bearer(new_key(app, Role.ADMIN, "EOC chief"))  # type: ignore[arg-type]
    base = f"/v1/warnings/{wid}/recommendations"
    for path, headers, note in (
        (f"{base}/{first}/accept", officer, "crew on the way"),
        (f"{base}/{second}/reject", chief, "not needed"),
        (f"{base}/{first}/done", officer, "valve closed"),
    ):
        resp = app_client.post(path, json={"note": note}, headers=headers)
        assert resp.status_code == 200, resp.text

    items = app_client.get(f"/v1/warnings/{wid}/timeline", params={"limit": 500}, headers=officer).json()[
        "items"
    ]
    steps = [i for i in items if i["type"] == "recommendation"]
    assert [(s["rid"], s["state"], s["actor"], s["actor_role"], s["note"]) for s in steps] == [
        (first, "accepted", "EOC duty officer", "operator", "crew on the way"),
        (second, "rejected", "EOC chief", "admin", "not needed"),
        (first, "done", "EOC duty officer", "operator", "valve closed"),
    ]
    assert steps[0]["what"] == recs[0]["what"]
    keys = [(datetime.fromisoformat(i["at"]), ORDER[i["type"]]) for i in items]
    assert keys == sorted(keys)
    # Acted on after the last signal, so the steps close the record.
    assert [i["type"] for i in items[-3:]] == ["recommendation"] * 3
    for limit in (1, 7):
        paged, total = whole(app_client, wid, officer, limit)
        assert (paged, total) == (items, len(items))


def test_an_unknown_warning_is_a_404_problem_and_the_page_is_bounded(app_client: TestClient) -> None:
    viewer = bearer(new_key(app_client.app, Role.VIEWER))  # type: ignore[arg-type]
    resp = app_client.get("/v1/warnings/no-such-warning/timeline", headers=viewer)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["status"] == 404 and "no-such-warning" in resp.json()["detail"]
    too_many = app_client.get("/v1/warnings/no-such-warning/timeline", params={"limit": 501}, headers=viewer)
    assert too_many.status_code == 422
    assert [e["field"] for e in too_many.json()["errors"]] == ["query.limit"]
    ingest = bearer(new_key(app_client.app, Role.INGEST))  # type: ignore[arg-type]
    assert app_client.get("/v1/warnings/no-such-warning/timeline", headers=ingest).status_code == 403


def test_a_report_the_store_no_longer_holds_is_shown_by_its_id_when_first_cited() -> None:
    at = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)

    def burst(minutes: int, ids: list[str]) -> Evidence:
        return Evidence(
            observed_at=at + timedelta(minutes=minutes),
            source="reports",
            sensor_id="",
            kind="report:gas_leak",
            value=float(len(ids)),
            score=0.99,
            detector="reportburst",
            level=None,
            details={},
            report_ids=ids,
        )

    cited = timeline.cited_reports([burst(5, ["a", "b", "c"]), burst(2, ["a", "b"])])
    assert cited == {
        "a": at + timedelta(minutes=2),
        "b": at + timedelta(minutes=2),
        "c": at + timedelta(minutes=5),
    }
    call = ReportRecord(
        "b", "app", "gas_leak", False, "gas smell", int((at + timedelta(minutes=3)).timestamp() * 1e9), GRID
    )
    entries = timeline.report_entries(cited, {"b": call})
    assert [(e.report_id, e.stored, e.at, e.excerpt) for e in entries] == [
        ("a", False, at + timedelta(minutes=2), None),
        ("b", True, at + timedelta(minutes=3), "gas smell"),
        ("c", False, at + timedelta(minutes=5), None),
    ]


class ListHistory:
    """The history port over a list already in (time, rank, stored) order."""

    def __init__(self, rows: list[Evidence | WarningEvent]) -> None:
        self.rows = rows
        self.counts = 0

    def history_count(self, warning_id: str, *, before: datetime | None = None) -> int:
        self.counts += 1
        return sum(1 for r in self.rows if before is None or _at(r) < before)

    def history_slice(self, warning_id: str, *, offset: int, limit: int) -> list[Evidence | WarningEvent]:
        return self.rows[offset : offset + limit]


def _at(row: Evidence | WarningEvent) -> datetime:
    return row.at if isinstance(row, WarningEvent) else row.observed_at


def _row(i: int, minute: int, is_event: bool) -> Evidence | WarningEvent:
    at = datetime(2026, 11, 29, tzinfo=UTC) + timedelta(minutes=minute)
    if is_event:
        return WarningEvent(
            at=at,
            actor="a",
            action=f"e{i}",
            from_status=None,
            to_status="active",
            from_level=None,
            to_level="red",
            note="",
        )
    return Evidence(
        observed_at=at,
        source="sensor",
        sensor_id=f"s{i}",
        kind="gas",
        value=1.0,
        score=0.5,
        detector="d",
        level=None,
        details={},
        report_ids=[],
    )


@settings(max_examples=200, deadline=None)
@given(
    history=st.lists(st.tuples(st.integers(0, 20), st.booleans()), max_size=40),
    report_minutes=st.lists(st.integers(0, 20), max_size=25),
    step_minutes=st.lists(st.integers(0, 20), max_size=10),
    limit=st.integers(1, 12),
)
def test_pages_of_the_merged_timeline_are_the_brute_force_merge_cut_in_pieces(
    history: list[tuple[int, bool]], report_minutes: list[int], step_minutes: list[int], limit: int
) -> None:
    rows = sorted(
        (_row(i, m, ev) for i, (m, ev) in enumerate(history)),
        key=lambda r: (_at(r), isinstance(r, WarningEvent)),
    )
    reports = timeline.report_entries(
        {
            f"r{i:02d}": datetime(2026, 11, 29, tzinfo=UTC) + timedelta(minutes=m)
            for i, m in enumerate(report_minutes)
        },
        {},
    )
    steps = timeline.recommendation_entries(
        {
            f"a{i}": [
                RecommendationStep(
                    state="accepted",
                    at=datetime(2026, 11, 29, tzinfo=UTC) + timedelta(minutes=m),
                    actor="op",
                    actor_role="operator",
                    note="",
                )
            ]
            for i, m in enumerate(step_minutes)
        },
        [],
    )
    everything = sorted(
        [*reports, *(timeline.entry_of(r, {}) for r in rows), *steps],
        key=lambda e: (e.at, timeline.rank_of(e)),
    )
    source = ListHistory(rows)
    warning = _warning()
    paged = []
    for offset in range(0, len(everything) + limit, limit):
        page = timeline.page(
            warning, history=source, reports=reports, units={}, offset=offset, limit=limit, steps=steps
        )
        assert page.total == len(everything)
        paged += page.items
    assert paged == everything


def _warning() -> WarningOut:
    at = datetime(2026, 11, 29, tzinfo=UTC)
    return new_warning("gas_leak", GRID, "red", first=at, last=at, now=at)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")
