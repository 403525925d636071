"""Reports, areas and map views over the REST API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.isolation import isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from models.signals import Signal
from store.schemas import ReportRecord
from tests.pipeline_harness import read_topic

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        max_report_text_chars=500,
    )


def report(**overrides: object) -> dict[str, object]:
    return {
        "report_id": "r-1",
        "source": "app",
        "category": "waterlogging",
        "text": "积水很深",
        "ts": NOW.isoformat(),
        "area": "g-riverside-05",
        **overrides,
    }


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"area": None}, "body.reports[1].area"),
        ({"category": "volcano"}, "body.reports[1].category"),
        ({"text": "x" * 501}, "body.reports[1].text"),
        ({"area": None, "lat": 91.0, "lon": 114.3}, "body.reports[1].lat"),
        ({"area": None, "lat": 30.55}, "body.reports[1].lon"),
        ({"source": "pigeon"}, "body.reports[1].source"),
        ({"area": "atlantis"}, "body.reports[1].area"),
    ],
)
def test_bad_report_gets_422_naming_the_field_and_the_rest_is_kept(
    client: TestClient,
    settings: Settings,
    bad: dict[str, object],
    field: str,
) -> None:
    body = {"reports": [report(report_id="a"), report(report_id="b", **bad), report(report_id="c")]}
    resp = client.post("/v1/reports", json=body)
    assert resp.status_code == 422
    assert resp.json()["accepted"] == 2
    [rejected] = resp.json()["rejected"]
    assert rejected["index"] == 1 and field in {e["field"] for e in rejected["errors"]}
    assert len(read_topic(settings.kafka_bootstrap, settings.topic_reports, 2)) == 2


def test_reports_list_filters_and_inferred_category(client: TestClient) -> None:
    svc = client.app.state.services  # type: ignore[attr-defined]
    checked = svc.report_validator.check
    from ingest.schemas import Report

    text_only = checked(
        Report.model_validate(report(report_id="t", category=None, text="燃气泄漏 闻到很重的煤气味")), NOW
    )
    assert isinstance(text_only, ReportRecord)
    assert (text_only.category, text_only.category_inferred) == ("gas_leak", True)
    outside = checked(Report.model_validate(report(report_id="o", area=None, lat=10.0, lon=10.0)), NOW)
    assert isinstance(outside, ReportRecord) and outside.outside_areas and outside.area == "unassigned"
    svc.reports.save([text_only, outside, text_only])
    page = client.get("/v1/reports").json()
    assert page["total"] == 2
    assert client.get("/v1/reports", params={"category": "gas_leak"}).json()["items"][0]["report_id"] == "t"
    assert client.get("/v1/reports", params={"area": "g-riverside-05"}).json()["total"] == 1


def test_areas_are_geojson_and_risk_shows_open_warnings(client: TestClient) -> None:
    areas = client.get("/v1/areas").json()
    assert areas["type"] == "FeatureCollection"
    levels = [f["properties"]["level"] for f in areas["features"]]
    assert levels.count("district") >= 3 and levels.count("grid") >= 12
    assert all(f["geometry"]["type"] in {"Polygon", "MultiPolygon"} for f in areas["features"])

    svc = client.app.state.services  # type: ignore[attr-defined]
    svc.warnings.apply_signals(
        [
            Signal(
                sensor_id="wl-riverside-04",
                kind="water_level",
                area="g-riverside-05",
                hazard="flood",
                ts_ns=int((NOW - timedelta(minutes=1)).timestamp()) * 10**9,
                value=0.45,
                score=1.0,
                detector="test",
                level="orange",
                evidence={"warning_line": 0.4},
            )
        ],
        now=NOW,
        actor="test",
    )
    risk = client.get("/v1/areas/g-riverside-05/risk").json()
    assert risk["highest_level"] == "orange" and len(risk["open_warnings"]) == 1
    assert risk["recent_signals"][0]["sensor_id"] == "wl-riverside-04"
    district = client.get("/v1/areas/d-riverside/risk").json()
    assert district["highest_level"] == "orange"
    assert client.get("/v1/areas/g-oldtown-01/risk").json()["open_warnings"] == []
    assert client.get("/v1/areas/nope/risk").status_code == 404

    geo = client.get("/v1/warnings", params={"format": "geojson"}).json()
    assert geo["type"] == "FeatureCollection"
    [feature] = geo["features"]
    assert feature["properties"]["area"] == "g-riverside-05"
    assert feature["geometry"]["type"] in {"Polygon", "MultiPolygon"}


def test_a_grid_whose_gauge_joined_a_neighbours_warning_shows_it_as_its_risk(client: TestClient) -> None:
    """Neighbour fusion files one flood under the grid where it began; the neighbour grid whose gauge
    is past its line must still show that warning, in its risk and in the list by area."""
    svc = client.app.state.services  # type: ignore[attr-defined]

    def gauge(sensor: str, area: str, minutes_ago: int) -> Signal:
        return Signal(
            sensor_id=sensor,
            kind="water_level",
            area=area,
            hazard="flood",
            ts_ns=int((NOW - timedelta(minutes=minutes_ago)).timestamp()) * 10**9,
            value=0.45,
            score=1.0,
            detector="test",
            level="orange",
            evidence={"warning_line": 0.4},
        )

    svc.warnings.apply_signals([gauge("wl-riverside-04", "g-riverside-05", 3)], now=NOW, actor="test")
    svc.warnings.apply_signals([gauge("wl-riverside-03", "g-riverside-07", 2)], now=NOW, actor="test")
    [warning] = svc.warnings.list(scope="grid", open_only=True).items
    assert warning.area == "g-riverside-05" and "g-riverside-07" in warning.covers

    risk = client.get("/v1/areas/g-riverside-07/risk").json()
    assert [w["id"] for w in risk["open_warnings"] if w["scope"] == "grid"] == [warning.id]
    assert risk["highest_level"] == "orange"
    listed = client.get("/v1/warnings", params={"area": "g-riverside-07", "scope": "grid"}).json()
    assert [w["id"] for w in listed["items"]] == [warning.id]
    # A grid nothing reached stays clear.
    assert client.get("/v1/areas/g-oldtown-01/risk").json()["open_warnings"] == []
