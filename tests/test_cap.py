"""CAP 1.2 export and the Atom feed: documents for warnings made by the real WarningService, checked
against the official CAP 1.2 schema (../shared/cap, beside this checkout and beside CI's clone)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from lxml import etree
from shapely.geometry import Point

from alerts import cap
from alerts.lifecycle import new_warning, opened_event
from alerts.recommendation_log import RecommendationLog, Step
from alerts.schemas import WarningDetail, WarningEvent
from alerts.service import WarningService
from app.main import create_app
from bench.isolation import isolated_settings
from config.areas import Area, load_areas
from config.catalog import SENSOR_FAULT
from config.lifecycle import load_lifecycle
from config.settings import CITY_DIR
from ingest.broker import EmbeddedBroker
from tests.auth_helpers import admin_client
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal

CAP_DIR = Path(__file__).resolve().parents[2] / "shared" / "cap"
NS = {"cap": cap.CAP_NS, "atom": cap.ATOM_NS}
SENDER = "citywarn@city.example"
AREAS = load_areas()
# CAP 1.2's dateTime: seconds, and an offset (never "Z"), no fraction.
CAP_TIME = re.compile(r"^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")


BUNDLED_LIFECYCLE = load_lifecycle(CITY_DIR / "lifecycle.yaml")
# Every hazard active at its first signal: these tests are about what CAP says of a public warning,
# not about hold times (a warning still pending has no message: tested below).
AT_ONCE = BUNDLED_LIFECYCLE.model_copy(
    update={
        "defaults": BUNDLED_LIFECYCLE.defaults.model_copy(update={"hold": 0}),
        "hazards": {h: o.model_copy(update={"hold": 0}) for h, o in BUNDLED_LIFECYCLE.hazards.items()},
    }
)


@pytest.fixture
def service(engine: sa.Engine) -> WarningService:
    return WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS, lifecycle_config=AT_ONCE)


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(CAP_DIR / "CAP-v1.2.xsd")))


def valid(schema: etree.XMLSchema, document: bytes) -> etree._Element:
    """The document's root, after asserting it is CAP 1.2 by the schema."""
    root = etree.fromstring(document)
    assert schema.validate(root), schema.error_log
    return root


def text(root: etree._Element, path: str) -> str:
    found = root.findtext(path, namespaces=NS)
    assert found is not None, path
    return found


def cap_of(service: WarningService, wid: str) -> bytes:
    detail = service.get(wid)
    assert detail is not None
    return cap.cap_alert(detail, area=AREAS.area(detail.area), sender=SENDER)


def detail(service: WarningService, wid: str) -> WarningDetail:
    found = service.get(wid)
    assert found is not None
    return found


# ---- messages from a warning's history ------------------------------------------------------------


def test_a_new_warning_is_one_actual_public_alert(service: WarningService, schema: etree.XMLSchema) -> None:
    [wid] = service.apply_signals([signal(level="orange", value=3.6)], now=NOW, actor="t")
    root = valid(schema, cap_of(service, wid))
    assert text(root, "cap:sender") == SENDER
    assert (text(root, "cap:status"), text(root, "cap:msgType"), text(root, "cap:scope")) == (
        "Actual",
        "Alert",
        "Public",
    )
    assert root.find("cap:references", NS) is None
    assert text(root, "cap:sent") == "2026-11-29T08:00:00+00:00"
    info = root.find("cap:info", NS)
    assert info is not None
    assert [c.text for c in info.findall("cap:category", NS)] == ["Met"]
    assert (text(info, "cap:severity"), text(info, "cap:urgency")) == ("Severe", "Immediate")
    assert text(info, "cap:certainty") == detail(service, wid).certainty
    assert text(info, "cap:event") == "Flood"
    assert text(info, "cap:description") == detail(service, wid).explanation
    geocode = info.find("cap:area/cap:geocode", NS)
    assert geocode is not None
    assert (text(geocode, "cap:valueName"), text(geocode, "cap:value")) == ("citywarn-area", "g-riverside-01")
    area = AREAS.area("g-riverside-01")
    assert area is not None and text(info, "cap:area/cap:areaDesc") == area.name
    assert text(info, "cap:headline") == f"Orange flood warning for {area.name}"  # a place, not an id


def test_the_same_warning_gives_the_same_document_twice(service: WarningService) -> None:
    [wid] = service.apply_signals([signal()], now=NOW, actor="t")
    assert cap_of(service, wid) == cap_of(service, wid)


def accept(service: WarningService, wid: str, rid: str, at: datetime, step: Step = "accepted") -> None:
    RecommendationLog(service.repository.engine).record(
        wid, rid, step, now=at, actor="EOC duty officer", actor_role="operator"
    )


def cap_with_steps(service: WarningService, wid: str) -> bytes:
    found = detail(service, wid)
    steps = RecommendationLog(service.repository.engine).history(wid)
    return cap.cap_alert(found, area=AREAS.area(found.area), sender=SENDER, steps=steps)


def test_no_recommendation_accepted_means_no_instruction(
    service: WarningService, schema: etree.XMLSchema
) -> None:
    [wid] = service.apply_signals([signal(level="red", value=4.5)], now=NOW, actor="t")
    info = valid(schema, cap_with_steps(service, wid)).find("cap:info", NS)
    assert info is not None
    assert info.find("cap:instruction", NS) is None and info.find("cap:responseType", NS) is None


def test_the_instruction_holds_the_accepted_recommendations_only_and_is_an_update(
    service: WarningService, schema: etree.XMLSchema
) -> None:
    [wid] = service.apply_signals([signal(level="red", value=4.5)], now=NOW, actor="t")
    recs = detail(service, wid).recommendations
    assert len(recs) >= 4
    evacuate = next(r for r in recs if "evacuat" in r["what"].lower())
    others = [r for r in recs if r is not evacuate]
    accept(service, wid, evacuate["rid"], NOW + timedelta(minutes=2))
    accept(service, wid, others[0]["rid"], NOW + timedelta(minutes=3), "rejected")
    accept(service, wid, others[1]["rid"], NOW + timedelta(minutes=4))
    accept(service, wid, others[1]["rid"], NOW + timedelta(minutes=5), "done")  # done: still in force

    root = valid(schema, cap_with_steps(service, wid))
    info = root.find("cap:info", NS)
    assert info is not None
    lines = text(info, "cap:instruction").splitlines()
    in_order = [r["what"] for r in recs if r in (evacuate, others[1])]  # the warning's own order
    assert [line.split(". ", 1)[1].split(" (")[0] for line in lines] == in_order
    assert lines[0].startswith("1. ") and lines[1].startswith("2. ")
    assert others[0]["what"] not in text(info, "cap:instruction")  # rejected
    assert next(r.text for r in info.findall("cap:responseType", NS)) == "Evacuate"
    # Each acceptance told recipients of a new instruction: the Alert, then two Updates (the rejection
    # and the done changed nothing they read).
    messages = cap.cap_messages(
        detail(service, wid), RecommendationLog(service.repository.engine).history(wid)
    )
    assert [(m.msg_type, m.sent) for m in messages] == [
        ("Alert", NOW),
        ("Update", NOW + timedelta(minutes=2)),
        ("Update", NOW + timedelta(minutes=4)),
    ]
    assert (text(root, "cap:msgType"), text(root, "cap:sent")) == (
        "Update",
        cap.cap_time(NOW + timedelta(minutes=4)),
    )
    assert len(text(root, "cap:references").split()) == 2


def test_an_escalation_is_an_update_referencing_the_alert_before_it(
    service: WarningService, schema: etree.XMLSchema
) -> None:
    [wid] = service.apply_signals([signal(level="yellow")], now=NOW, actor="t")
    alert = valid(schema, cap_of(service, wid))
    later = NOW + timedelta(minutes=7, seconds=30, microseconds=250_000)
    # A rain gauge past red: a second kind of witness, so certainty rises with the level.
    rain = signal(level="red", value=75.0, ts=later, sensor_id="rf-riverside-01", kind="rainfall")
    service.apply_signals([rain], now=later, actor="t")
    update = valid(schema, cap_of(service, wid))
    assert text(update, "cap:msgType") == "Update"
    assert text(update, "cap:sent") == "2026-11-29T08:07:30+00:00"  # no fraction, offset kept
    assert text(update, "cap:identifier") != text(alert, "cap:identifier")
    earlier = ",".join(text(alert, f"cap:{name}") for name in ("sender", "identifier", "sent"))
    assert text(update, "cap:references") == earlier
    assert text(update, "cap:info/cap:severity") == "Extreme"
    # The escalation and the certainty change it brought were recorded together: one message.
    events = detail(service, wid).events
    assert [e.action for e in events] == ["opened", "escalated", "certainty"]
    assert [m.msg_type for m in cap.cap_messages(detail(service, wid))] == ["Alert", "Update"]


def test_new_evidence_at_the_same_level_issues_no_new_message(service: WarningService) -> None:
    [wid] = service.apply_signals([signal(level="yellow")], now=NOW, actor="t")
    before = [m.identifier for m in cap.cap_messages(detail(service, wid))]
    later = NOW + timedelta(minutes=3)
    service.apply_signals([signal(level="yellow", ts=later)], now=later, actor="t")
    service.acknowledge(wid, now=later, actor="duty desk", actor_role="operator", note="on it")
    assert [m.identifier for m in cap.cap_messages(detail(service, wid))] == before


def test_a_resolved_warning_is_a_cancel_referencing_every_earlier_message(
    service: WarningService, schema: etree.XMLSchema
) -> None:
    [wid] = service.apply_signals([signal(level="yellow")], now=NOW, actor="t")
    later = NOW + timedelta(minutes=5)
    service.apply_signals([signal(level="orange", value=3.6, ts=later)], now=later, actor="t")
    service.resolve(wid, now=later + timedelta(minutes=5), actor="duty desk", actor_role="operator")
    messages = cap.cap_messages(detail(service, wid))
    assert [m.msg_type for m in messages] == ["Alert", "Update", "Cancel"]
    root = valid(schema, cap_of(service, wid))
    assert text(root, "cap:msgType") == "Cancel"
    assert text(root, "cap:identifier") == messages[-1].identifier
    refs = text(root, "cap:references").split()
    assert refs == [f"{SENDER},{m.identifier},{cap.cap_time(m.sent)}" for m in messages[:2]]
    info = root.find("cap:info", NS)
    assert info is not None
    assert [r.text for r in info.findall("cap:responseType", NS)] == ["AllClear"]
    assert text(info, "cap:urgency") == "Past"


def test_an_exercise_warning_has_status_exercise(service: WarningService, schema: etree.XMLSchema) -> None:
    [wid] = service.apply_signals([signal()], now=NOW, actor="drill")
    with service.repository.writing() as tx:
        tx.update(wid, {"exercise": True})
    root = valid(schema, cap_of(service, wid))
    assert text(root, "cap:status") == "Exercise"
    assert "exercise" in text(root, "cap:note").lower()


def test_the_polygon_is_a_closed_ring_of_latitude_longitude_pairs(
    service: WarningService, schema: etree.XMLSchema
) -> None:
    [wid] = service.apply_signals([signal()], now=NOW, actor="t")
    root = valid(schema, cap_of(service, wid))
    [polygon] = [p.text or "" for p in root.findall("cap:info/cap:area/cap:polygon", NS)]
    pairs = [tuple(float(v) for v in pair.split(",")) for pair in polygon.split(" ")]
    assert len(pairs) >= 4 and pairs[0] == pairs[-1]
    area = AREAS.area("g-riverside-01")
    assert isinstance(area, Area)
    ring = [(round(lat, 6), round(lon, 6)) for lon, lat in area.geometry.exterior.coords]  # type: ignore[union-attr]
    assert pairs == ring
    # Latitude first: every point, read as (lat, lon), lies on the area's polygon (WGS 84 lon/lat).
    assert all(area.geometry.buffer(1e-5).covers(Point(lon, lat)) for lat, lon in pairs)


def test_a_warning_off_the_map_has_its_geocode_and_no_polygon(
    service: WarningService, schema: etree.XMLSchema
) -> None:
    warning = new_warning("flood", "g-nowhere", "blue", first=NOW, last=NOW, now=NOW)
    with service.repository.writing() as tx:
        tx.insert(warning)
        tx.record(warning.id, _opened(NOW))
    root = valid(schema, cap_of(service, warning.id))
    assert root.find("cap:info/cap:area/cap:polygon", NS) is None
    assert text(root, "cap:info/cap:area/cap:areaDesc") == "g-nowhere"
    assert text(root, "cap:info/cap:area/cap:geocode/cap:value") == "g-nowhere"


def test_a_sensor_fault_is_restricted_to_the_maintenance_team(
    service: WarningService, schema: etree.XMLSchema
) -> None:
    warning = new_warning(SENSOR_FAULT, "g-oldtown-05", "yellow", first=NOW, last=NOW, now=NOW)
    with service.repository.writing() as tx:
        tx.insert(warning, subject="gas-oldtown-05")
        tx.record(warning.id, _opened(NOW))
    root = valid(schema, cap_of(service, warning.id))
    assert text(root, "cap:scope") == "Restricted"
    assert text(root, "cap:restriction")
    assert [c.text for c in root.findall("cap:info/cap:category", NS)] == ["Infra"]


def test_a_warning_that_never_became_public_has_no_message(service: WarningService) -> None:
    warning = new_warning("flood", "g-riverside-01", "blue", first=NOW, last=NOW, now=NOW)
    with service.repository.writing() as tx:
        tx.insert(warning)
    quiet = detail(service, warning.id)
    assert cap.cap_messages(quiet) == []
    with pytest.raises(cap.NotPublished):
        cap.cap_alert(quiet, area=None, sender=SENDER)


def test_a_pending_warning_has_no_message_until_its_condition_holds(engine: sa.Engine) -> None:
    """With the bundled lifecycle a flood is pending for its hold time: nobody is told, so no CAP."""
    bundled = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS)
    [wid] = bundled.apply_signals([signal()], now=NOW, actor="t")
    assert detail(bundled, wid).status == "pending"
    assert cap.cap_messages(detail(bundled, wid)) == []
    held = NOW + BUNDLED_LIFECYCLE.timing("flood").hold_time
    bundled.apply_signals([signal(ts=held)], now=held, actor="t")
    assert [(m.msg_type, m.sent) for m in cap.cap_messages(detail(bundled, wid))] == [("Alert", held)]


def _opened(at: datetime) -> WarningEvent:
    return opened_event("blue", at=at, actor="t", note="")


# ---- the pure builder on text no warning should hold ---------------------------------------------


def test_text_that_xml_cannot_hold_is_dropped_and_markup_escaped(schema: etree.XMLSchema) -> None:
    at = datetime(2026, 11, 29, 8, 0, 0, 999_999, tzinfo=UTC)
    base = new_warning("gas_leak", "g-oldtown-05", "red", first=at, last=at, now=at)
    warning = WarningDetail(
        **{**base.model_dump(), "explanation": "gas \x00& <b>bold</b>\x1b ok", "recommendations": []},
        evidence=[],
        events=[_opened(at)],
    )
    root = valid(schema, cap.cap_alert(warning, area=AREAS.area("g-oldtown-05"), sender=SENDER))
    assert text(root, "cap:info/cap:description") == "gas & <b>bold</b> ok"
    assert text(root, "cap:sent") == "2026-11-29T08:00:00+00:00"
    assert root.find("cap:info/cap:instruction", NS) is None
    assert root.find("cap:info/cap:responseType", NS) is None


def test_every_time_is_in_caps_own_form() -> None:
    for at in (NOW, NOW.replace(microsecond=5), datetime(2026, 1, 1, 23, 59, 59, 999_999, tzinfo=UTC)):
        assert CAP_TIME.match(cap.cap_time(at))


# ---- through the app ----------------------------------------------------------------------------------


@pytest.fixture
def app_client(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    url = state_url
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=url,
        cap_sender="eoc@lancheng.example",
    )
    with admin_client(create_app(settings)) as client:
        yield client


def _warnings(client: TestClient) -> dict[str, str]:
    """Four warnings: open, resolved, an exercise, and a sensor fault; their ids by name."""
    svc = client.app.state.services  # type: ignore[attr-defined]
    at = datetime.now(UTC).replace(microsecond=0)
    [flood, gas, drill] = svc.warnings.apply_signals(
        [
            signal(level="red", value=4.5, ts=at),  # red: public at once, no hold
            signal(hazard="gas_leak", kind="gas", sensor_id="gas-oldtown-02", area="g-oldtown-01", ts=at),
            signal(hazard="fire", kind="smoke", sensor_id="smoke-test-01", area="g-oldtown-02", ts=at),
        ],
        now=at,
        actor="t",
    )
    svc.warnings.resolve(gas, now=at + timedelta(minutes=1), actor="duty desk")
    with svc.warnings.repository.writing() as tx:
        tx.update(drill, {"exercise": True})
        fault = new_warning(SENSOR_FAULT, "g-oldtown-05", "blue", first=at, last=at, now=at)
        tx.insert(fault, subject=f"s-{uuid.uuid4().hex[:6]}")
        tx.record(fault.id, _opened(at))
    return {"flood": flood, "gas": gas, "drill": drill, "fault": fault.id}


def test_the_cap_route_answers_cap_xml_that_validates(
    app_client: TestClient, schema: etree.XMLSchema
) -> None:
    ids = _warnings(app_client)
    for name, wid in ids.items():
        resp = app_client.get(f"/v1/warnings/{wid}/cap")
        assert resp.status_code == 200, name
        assert resp.headers["content-type"].startswith(cap.CAP_MEDIA_TYPE)
        root = valid(schema, resp.content)
        assert text(root, "cap:sender") == "eoc@lancheng.example"
        assert resp.content == app_client.get(f"/v1/warnings/{wid}/cap").content
    assert text(valid(schema, app_client.get(f"/v1/warnings/{ids['gas']}/cap").content), "cap:msgType") == (
        "Cancel"
    )
    missing = app_client.get("/v1/warnings/no-such-warning/cap")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_the_feed_is_atom_of_current_public_warnings_linking_to_their_cap(
    app_client: TestClient, schema: etree.XMLSchema
) -> None:
    ids = _warnings(app_client)
    resp = app_client.get("/v1/cap/feed")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(cap.ATOM_MEDIA_TYPE)
    feed = etree.fromstring(resp.content)
    assert feed.tag == f"{{{cap.ATOM_NS}}}feed"
    for required in ("atom:id", "atom:title", "atom:updated", "atom:author/atom:name"):
        assert text(feed, required), required
    entries = feed.findall("atom:entry", NS)
    linked = {}
    for entry in entries:
        for required in ("atom:id", "atom:title", "atom:updated"):
            assert text(entry, required), required
        [link] = entry.findall("atom:link[@rel='alternate']", NS)
        assert link.get("type") == cap.CAP_MEDIA_TYPE
        href = urlsplit(link.get("href", ""))
        assert href.scheme in ("http", "https")
        doc = app_client.get(href.path)
        assert doc.status_code == 200
        root = valid(schema, doc.content)
        assert text(entry, "atom:updated") == text(root, "cap:sent")
        linked[href.path.split("/")[3]] = text(root, "cap:status")
    # Open, public, real: the flood only (the gas leak is resolved, the drill not asked for, the fault
    # is the maintenance team's).
    assert linked == {ids["flood"]: "Actual"}

    drills = etree.fromstring(app_client.get("/v1/cap/feed", params={"exercise": "true"}).content)
    hrefs = [e.find("atom:link", NS).get("href", "") for e in drills.findall("atom:entry", NS)]  # type: ignore[union-attr]
    assert sorted(h.split("/")[-2] for h in hrefs) == sorted([ids["flood"], ids["drill"]])
    assert text(drills, "atom:id") != text(feed, "atom:id")


def test_the_openapi_document_declares_cap_and_atom_as_strings(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]
    one = paths["/v1/warnings/{warning_id}/cap"]["get"]["responses"]["200"]["content"]
    feed = paths["/v1/cap/feed"]["get"]["responses"]["200"]["content"]
    assert one == {cap.CAP_MEDIA_TYPE: {"schema": {"type": "string"}}}
    assert feed == {cap.ATOM_MEDIA_TYPE: {"schema": {"type": "string"}}}
