"""Recommendations: ranked by urgency, deadlines from the triggering observation, the register's real
assets inside or nearest the warning's area, and operators' accept, reject and done with their key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from alerts.recommendations import named_assets, recommend
from alerts.service import WarningService
from app.auth.roles import Role
from app.main import create_app
from bench.isolation import isolated_settings
from config.areas import AREAS_PATH, load_areas
from config.assets import ASSETS_PATH, Asset, AssetRegister, asset_problems, great_circle_m, load_assets
from config.check import check
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from tests.auth_helpers import bearer, new_key
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal

AREAS = load_areas(AREAS_PATH)
ASSETS = load_assets(ASSETS_PATH, AREAS)
HONGQI = "g-oldtown-05"


def gas(level: str, ts: datetime, value: float = 55.0) -> object:
    return signal(
        sensor_id="gas-oldtown-01",
        kind="gas",
        hazard="gas_leak",
        area=HONGQI,
        level=level,
        value=value,
        ts=ts,
    )


@pytest.fixture
def svc(engine: sa.Engine) -> WarningService:
    return WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS, areas=AREAS, assets=ASSETS)


# ---- ranking, deadlines, reasons --------------------------------------------------------


def test_red_gas_puts_evacuate_before_the_inspector_and_ranks_by_deadline(svc: WarningService) -> None:
    [wid] = svc.apply_signals([gas("red", NOW)], now=NOW, actor="t")
    recs = svc.get(wid).recommendations  # type: ignore[union-attr]
    whats = [r["what"] for r in recs]
    evacuate = next(i for i, w in enumerate(whats) if w.startswith("Evacuate"))
    inspector = next(i for i, w in enumerate(whats) if w.startswith("Dispatch a gas utility inspector"))
    assert evacuate < inspector
    assert [r["within_minutes"] for r in recs] == sorted(r["within_minutes"] for r in recs)
    assert [r["rank"] for r in recs] == list(range(1, len(recs) + 1))
    assert len({r["rid"] for r in recs}) == len(recs)


def test_ties_keep_the_playbooks_order() -> None:
    recs = recommend(
        playbooks=PLAYBOOKS, hazard="flood", level="yellow", area="x", sensors=[], now=NOW, why="w"
    )
    sixty = [r["what"] for r in recs if r["within_minutes"] == 60]
    assert sixty == [
        "Pre-position pumps and sandbags at low-lying underpasses",
        "Notify community grid workers to check vulnerable residents",
    ]


def test_deadlines_count_from_the_observation_not_from_processing(svc: WarningService) -> None:
    observed = NOW - timedelta(hours=3)  # a leak replayed three hours after it happened
    [wid] = svc.apply_signals([gas("red", observed)], now=NOW, actor="t")
    recs = svc.get(wid).recommendations  # type: ignore[union-attr]
    evacuate = next(r for r in recs if r["what"].startswith("Evacuate"))
    assert datetime.fromisoformat(evacuate["by"]) == observed + timedelta(minutes=10)


def test_an_escalation_counts_from_the_reading_that_crossed_the_higher_line(svc: WarningService) -> None:
    [wid] = svc.apply_signals([gas("yellow", NOW, value=25.0)], now=NOW, actor="t")
    crossed = NOW + timedelta(minutes=7)
    later = [gas("yellow", NOW + timedelta(minutes=5), 30.0), gas("red", crossed, 61.5)]
    svc.apply_signals(later, now=NOW + timedelta(hours=1), actor="t")
    recs = svc.get(wid).recommendations  # type: ignore[union-attr]
    evacuate = next(r for r in recs if r["what"].startswith("Evacuate"))
    assert datetime.fromisoformat(evacuate["by"]) == crossed + timedelta(minutes=10)
    # The reason is the trigger, not the whole explanation.
    assert evacuate["why"] == "gas-oldtown-01 read 61.5 %LEL, past the red line"
    assert evacuate["why"] != svc.get(wid).explanation  # type: ignore[union-attr]


def test_an_action_keeps_its_rid_when_the_level_rises(svc: WarningService) -> None:
    [wid] = svc.apply_signals([gas("blue", NOW, 12.0)], now=NOW, actor="t")
    before = {r["what"]: r["rid"] for r in svc.get(wid).recommendations}  # type: ignore[union-attr]
    svc.apply_signals([gas("red", NOW + timedelta(minutes=1))], now=NOW, actor="t")
    after = {r["what"]: r["rid"] for r in svc.get(wid).recommendations}  # type: ignore[union-attr]
    assert before.items() <= after.items() and len(after) > len(before)


# ---- the asset register -------------------------------------------------------------------


def pump(asset_id: str, lat: float, lon: float, area: str) -> Asset:
    return Asset(id=asset_id, kind="pump", name=asset_id, lat=lat, lon=lon, owner="drainage", area=area)


def test_the_nearest_asset_in_a_test_register_is_the_one_recommended() -> None:
    # No pump in Nanhu; three outside it, at growing distances from its centre.
    area = AREAS.area("g-riverside-08")
    assert area is not None
    c = area.geometry.centroid
    register = AssetRegister(
        assets=[
            pump("far", 30.5780, 114.3000, "g-riverside-01"),
            pump("near", 30.5390, 114.2850, "g-oldtown-06"),
            pump("nearer", 30.5526, 114.3136, "g-riverside-06"),
        ]
    )
    assert asset_problems(register, AREAS) == []
    [chosen] = named_assets(register, AREAS, "g-riverside-08", "pump")
    assert chosen["id"] == "nearer" and chosen["inside"] is False
    assert chosen["distance_m"] == round(great_circle_m(c.y, c.x, 30.5526, 114.3136))
    by_distance = sorted(register.assets, key=lambda a: great_circle_m(c.y, c.x, a.lat, a.lon))
    assert by_distance[0].id == "nearer"


def test_assets_inside_the_area_are_all_named_nearest_first() -> None:
    register = AssetRegister(
        assets=[
            pump("in-a", 30.5381, 114.2704, HONGQI),
            pump("in-b", 30.5360, 114.2650, HONGQI),
            pump("next-door", 30.5389, 114.2850, "g-oldtown-06"),
        ]
    )
    named = named_assets(register, AREAS, HONGQI, "pump")
    assert {a["id"] for a in named} == {"in-a", "in-b"} and all(a["inside"] for a in named)
    assert named == sorted(named, key=lambda a: a["distance_m"])
    # A district's assets are those in its grids.
    assert {a["id"] for a in named_assets(register, AREAS, "d-oldtown", "pump")} == {
        "in-a",
        "in-b",
        "next-door",
    }
    assert named_assets(register, AREAS, "nowhere", "pump") == []


def test_a_warning_names_the_real_valve_and_the_population(svc: WarningService) -> None:
    [wid] = svc.apply_signals([gas("orange", NOW, 35.0)], now=NOW, actor="t")
    recs = svc.get(wid).recommendations  # type: ignore[union-attr]
    shut = next(r for r in recs if r["what"].startswith("Shut the section valve"))
    assert [a["id"] for a in shut["where"]["assets"]] == ["valve-hongqi-sv3"]
    assert shut["where"]["area_name"] == "Hongqi" and shut["where"]["population"] == 14300
    assert shut["where"]["sensors"] == ["gas-oldtown-01"]
    inspector = next(r for r in recs if r["what"].startswith("Dispatch"))
    assert "assets" not in inspector["where"]


def test_the_register_refuses_an_asset_outside_its_area(tmp_path: Path) -> None:
    path = tmp_path / "assets.yaml"
    # A point in Xincun, filed under Hongqi.
    entry = "{id: p1, kind: pump, name: P, lat: 30.5526, lon: 114.3136, owner: o, area: g-oldtown-05}"
    path.write_text(f"assets:\n  - {entry}\n")
    with pytest.raises(ValueError, match=r"assets\[p1\]\.lat, lon: .* not in its area .g-oldtown-05."):
        load_assets(path, AREAS)
    path.write_text("assets:\n  - {id: p1, kind: rocket, name: P, lat: 0, lon: 0, owner: o, area: a}\n")
    with pytest.raises(ValueError, match="kind"):
        load_assets(path)


def test_the_demo_register_places_every_asset_inside_its_area() -> None:
    assert asset_problems(ASSETS, AREAS) == []
    kinds = {a.kind for a in ASSETS.assets}
    assert {"pump", "shelter", "underpass", "school", "hospital", "valve"} <= kinds
    # Every asset kind a playbook names exists in the register.
    named = {a.asset for by_level in PLAYBOOKS.hazards.values() for acts in by_level.values() for a in acts}
    assert named - {None} <= kinds


# ---- operators' steps through the app ------------------------------------------------------


@pytest.fixture
def app_client(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    url = state_url
    settings = isolated_settings(
        bootstrap=broker.bootstrap, store_url=f"file://{tmp_path}/store.sqlite3", database_url=url
    )
    with TestClient(create_app(settings)) as client:
        yield client


def red_gas(client: TestClient) -> str:
    svc = client.app.state.services  # type: ignore[attr-defined]
    at = datetime.now(UTC).replace(microsecond=0)
    [wid] = svc.warnings.apply_signals([gas("red", at)], now=at, actor="t")
    return str(wid)


def test_the_list_is_ranked_and_carries_the_assets(app_client: TestClient) -> None:
    wid = red_gas(app_client)
    viewer = bearer(new_key(app_client.app, Role.VIEWER, "wall screen"))  # type: ignore[arg-type]
    body = app_client.get(f"/v1/warnings/{wid}/recommendations", headers=viewer).json()
    assert body["warning_id"] == wid and body["level"] == "red"
    items = body["items"]
    assert items[0]["what"].startswith("Evacuate") and items[0]["rank"] == 1
    assert all(i["state"] == "proposed" and i["history"] == [] for i in items)
    shut = next(i for i in items if i["what"].startswith("Shut"))
    assert shut["where"]["assets"][0]["name"] == "Hongqi Road gas section valve SV-3"


def test_accept_reject_done_are_recorded_with_the_keys_label_and_role(app_client: TestClient) -> None:
    wid = red_gas(app_client)
    app = app_client.app
    op = bearer(new_key(app, Role.OPERATOR, "duty officer Li"))  # type: ignore[arg-type]
    admin = bearer(new_key(app, Role.ADMIN, "EOC chief Wang"))  # type: ignore[arg-type]
    base = f"/v1/warnings/{wid}/recommendations"
    [evacuate, second, *_] = [i["rid"] for i in app_client.get(base, headers=op).json()["items"]]

    early = app_client.post(f"{base}/{evacuate}/done", headers=op)  # done before anyone accepted it
    assert early.status_code == 409
    assert early.headers["content-type"].startswith("application/problem+json")

    accepted = app_client.post(f"{base}/{evacuate}/accept", headers=op, json={"note": "fire crews on it"})
    assert accepted.status_code == 200 and accepted.json()["state"] == "accepted"
    assert app_client.post(f"{base}/{evacuate}/accept", headers=admin).status_code == 409
    done = app_client.post(f"{base}/{evacuate}/done", headers=admin)
    assert done.status_code == 200
    assert (
        app_client.post(f"{base}/{second}/reject", headers=admin, json={"note": "already cut"}).status_code
        == 200
    )

    items = {i["rid"]: i for i in app_client.get(base, headers=op).json()["items"]}
    steps = [(h["state"], h["actor"], h["actor_role"], h["note"]) for h in items[evacuate]["history"]]
    assert steps == [
        ("accepted", "duty officer Li", "operator", "fire crews on it"),
        ("done", "EOC chief Wang", "admin", ""),
    ]
    assert items[evacuate]["state"] == "done" and items[second]["state"] == "rejected"
    assert datetime.fromisoformat(items[second]["history"][0]["at"]).tzinfo is not None
    # Reconsidered: a rejected action may still be accepted.
    assert app_client.post(f"{base}/{second}/accept", headers=op).json()["state"] == "accepted"


def test_unknown_ids_are_404_problems_and_viewers_may_not_act(app_client: TestClient) -> None:
    wid = red_gas(app_client)
    app = app_client.app
    op = bearer(new_key(app, Role.OPERATOR))  # type: ignore[arg-type]
    viewer = bearer(new_key(app, Role.VIEWER))  # type: ignore[arg-type]
    base = f"/v1/warnings/{wid}/recommendations"
    rid = app_client.get(base, headers=op).json()["items"][0]["rid"]
    for path in (
        "/v1/warnings/nope/recommendations",
        f"{base}/red-9-deadbeef/accept",
        "/v1/warnings/nope/recommendations/x/done",
    ):
        call = app_client.get if path.endswith("recommendations") else app_client.post
        resp = call(path, headers=op)
        assert resp.status_code == 404, path
        assert resp.headers["content-type"].startswith("application/problem+json")
    assert app_client.post(f"{base}/{rid}/accept", headers=viewer).status_code == 403
    assert (
        app_client.post(f"{base}/{rid}/accept", headers=op, json={"actor": "someone else"}).status_code == 422
    )


def test_citywarn_check_names_a_misplaced_asset(tmp_path: Path) -> None:
    path = tmp_path / "assets.yaml"
    entry = "{id: p1, kind: pump, name: P, lat: 30.5526, lon: 114.3136, owner: o, area: g-oldtown-05}"
    path.write_text(f"assets:\n  - {entry}\n")
    problems = check(Settings(assets_path=path)).problems
    assert [(p.where, p.message.split(":")[0]) for p in problems] == [("assets[p1]", "lat, lon")]
    assert path.name in problems[0].source
    assert check(Settings()).problems == []
