"""Sensors onboarded over the API: the registry in the state database, its checks, and the live catalog."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from alerts.checkpoints import CheckpointRepository
from alerts.repository import SqlWarningRepository
from alerts.sensor_faults import SensorFaultDesk
from alerts.service import WarningService
from app.auth.roles import Role
from app.main import create_app
from app.silence import SilenceWatch
from bench.isolation import isolated_settings
from config.areas import load_areas
from config.catalog import Sensor, registration_problems
from config.live_catalog import LiveCatalog
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.validation import Invalid, ReadingValidator
from models.engine import ScoringEngine
from store.schemas import Point
from store.sensor_registry import InvalidSensor, SensorConflict, SensorNotFound, SensorRegistry
from tests.auth_helpers import admin_client, bearer, new_key
from tests.factories import CATALOG, PLAYBOOKS
from tests.pipeline_harness import running_pipeline, wait_until

AREAS = load_areas()
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
# A new gas detector in the grid of gas-oldtown-01, at a point inside that grid.
NEW_GAS: dict[str, Any] = {
    "id": "gas-oldtown-new",
    "kind": "gas",
    "area": "g-oldtown-05",
    "name": "Temporary detector, market hall",
    "lat": 0.0,
    "lon": 0.0,
}


def _inside(area_id: str) -> tuple[float, float]:
    area = AREAS.area(area_id)
    assert area is not None
    point = area.geometry.representative_point()
    return point.y, point.x


NEW_GAS["lat"], NEW_GAS["lon"] = _inside("g-oldtown-05")


def new_gas(**overrides: Any) -> Sensor:
    return Sensor.model_validate({**NEW_GAS, **overrides})


def registry_on(engine: sa.Engine) -> SensorRegistry:
    return SensorRegistry(
        engine,
        reserved={s.id for s in CATALOG.sensors},
        check=lambda s: registration_problems(CATALOG.kinds, AREAS, s),
    )


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ---- what a registered sensor must satisfy, as in the catalog file ------------------------------


def test_a_sensor_placed_as_the_file_would_place_it_has_no_problems() -> None:
    assert registration_problems(CATALOG.kinds, AREAS, new_gas()) == []


def test_a_sensor_in_the_grids_district_is_placed_too() -> None:
    assert registration_problems(CATALOG.kinds, AREAS, new_gas(area="d-oldtown")) == []


@pytest.mark.parametrize(
    ("overrides", "fields", "words"),
    [
        ({"kind": "lava"}, {"kind"}, "not a kind"),
        ({"area": "atlantis"}, {"area"}, "not an area"),
        ({"area": "g-riverside-01"}, {"lat", "lon"}, "not in its area 'g-riverside-01'"),
        ({"lat": 0.0, "lon": 0.0}, {"lat", "lon"}, "outside every area"),
        # gas: stuck after 21,600 s, so a sensor reporting every 10,000 s could not be judged stuck.
        ({"expected_interval_s": 10_000}, {"expected_interval_s"}, "stuck_after_s"),
    ],
)
def test_registration_problems_name_the_field(
    overrides: dict[str, Any], fields: set[str], words: str
) -> None:
    problems = registration_problems(CATALOG.kinds, AREAS, new_gas(**overrides))
    assert {field for field, _ in problems} == fields
    assert all(words in reason for _, reason in problems)


# ---- the registry: add, update, delete, list, revision -------------------------------------------


def test_add_list_and_revision(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    assert registry.revision() == 0 and registry.active() == []
    added = registry.add(new_gas(), actor="admin-key", now=NOW)
    assert added.sensor == new_gas() and added.updated_by == "admin-key" and added.revision == 1
    assert added.created_at == added.updated_at == NOW
    registry.add(new_gas(id="gas-oldtown-new2"), actor="admin-key", now=NOW)
    assert [s.id for s in registry.active()] == ["gas-oldtown-new", "gas-oldtown-new2"]
    assert registry.revision() == 2


def test_update_is_partial_checked_and_recorded(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    registry.add(new_gas(thresholds={"blue": 1, "yellow": 2, "orange": 3, "red": 4}), actor="a", now=NOW)
    later = NOW + timedelta(minutes=5)
    updated = registry.update("gas-oldtown-new", {"name": "Moved to the gate"}, actor="b", now=later)
    assert updated.sensor.name == "Moved to the gate"
    assert updated.sensor.thresholds is not None and updated.sensor.thresholds.red == 4  # kept
    assert (updated.updated_by, updated.updated_at, updated.created_at) == ("b", later, NOW)
    assert updated.revision == 2 == registry.revision()
    # null clears a sensor's own setting: its kind's applies again
    cleared = registry.update("gas-oldtown-new", {"thresholds": None}, actor="b", now=later)
    assert cleared.sensor.thresholds is None

    with pytest.raises(InvalidSensor) as bad:
        registry.update("gas-oldtown-new", {"kind": "lava"}, actor="b", now=later)
    assert [field for field, _ in bad.value.problems] == ["kind"]
    with pytest.raises(InvalidSensor) as bad:
        registry.update("gas-oldtown-new", {"lat": 91.0, "kind": None}, actor="b", now=later)
    assert {field for field, _ in bad.value.problems} == {"lat", "kind"}
    with pytest.raises(InvalidSensor) as bad:
        registry.update("gas-oldtown-new", {"id": "renamed"}, actor="b", now=later)
    assert [field for field, _ in bad.value.problems] == ["id"]
    assert registry.revision() == 3  # refused changes take no revision
    assert registry.get("gas-oldtown-new") == cleared


def test_add_refuses_a_sensor_with_problems(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    with pytest.raises(InvalidSensor) as bad:
        registry.add(new_gas(area="atlantis"), actor="a", now=NOW)
    assert [field for field, _ in bad.value.problems] == ["area"]
    assert registry.revision() == 0


def test_delete_is_soft_and_the_id_can_be_registered_again(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    registry.add(new_gas(), actor="a", now=NOW)
    assert registry.delete("gas-oldtown-new", actor="b", now=NOW) == 2
    assert registry.active() == [] and registry.get("gas-oldtown-new") is None
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT updated_by, deleted_at FROM registered_sensors")).one()
    assert row.updated_by == "b" and row.deleted_at is not None
    with pytest.raises(SensorNotFound):
        registry.delete("gas-oldtown-new", actor="b", now=NOW)
    with pytest.raises(SensorNotFound):
        registry.update("gas-oldtown-new", {"name": "x"}, actor="b", now=NOW)
    again = registry.add(new_gas(name="Back"), actor="c", now=NOW + timedelta(hours=1))
    assert again.sensor.name == "Back" and again.revision == 3
    assert again.created_at == NOW + timedelta(hours=1)
    assert [s.id for s in registry.active()] == ["gas-oldtown-new"]


def test_conflicts_with_the_file_and_with_an_active_registration(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    with pytest.raises(SensorConflict, match="catalog file"):
        registry.add(new_gas(id="gas-oldtown-01"), actor="a", now=NOW)
    with pytest.raises(SensorConflict, match="catalog file"):
        registry.update("gas-oldtown-01", {"name": "x"}, actor="a", now=NOW)
    with pytest.raises(SensorConflict, match="catalog file"):
        registry.delete("gas-oldtown-01", actor="a", now=NOW)
    registry.add(new_gas(), actor="a", now=NOW)
    with pytest.raises(SensorConflict, match="already registered"):
        registry.add(new_gas(name="twin"), actor="a", now=NOW)
    with pytest.raises(SensorNotFound):
        registry.update("nobody", {"name": "x"}, actor="a", now=NOW)
    assert registry.revision() == 1


def test_concurrent_writers_neither_lose_changes_nor_share_a_revision(engine: sa.Engine) -> None:
    """Each change takes the next revision in commit order, so max(revision) never misses a change."""
    registry = registry_on(engine)
    registry.add(new_gas(id="shared"), actor="setup", now=NOW)
    threads, per_thread = 6, 5
    errors: list[BaseException] = []
    same_id_wins: list[str] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                registry.add(new_gas(id=f"t{n}-{i}"), actor=f"w{n}", now=NOW)
                registry.update("shared", {"name": f"w{n}-{i}"}, actor=f"w{n}", now=NOW)
            try:
                registry.add(new_gas(id="contested"), actor=f"w{n}", now=NOW)
                same_id_wins.append(f"w{n}")
            except SensorConflict:
                pass
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert errors == []
    assert len(same_id_wins) == 1
    changes = 1 + threads * per_thread * 2 + 1
    with engine.connect() as conn:
        revisions = [r for (r,) in conn.execute(sa.text("SELECT revision FROM registered_sensors"))]
    assert len(set(revisions)) == len(revisions) and max(revisions) == changes == registry.revision()
    assert len(registry.active()) == 1 + threads * per_thread + 1
    shared = registry.get("shared")
    assert shared is not None and shared.sensor.name.endswith(f"-{per_thread - 1}")


# ---- the live catalog: the file plus the registry -------------------------------------------------


def test_the_live_catalog_merges_the_file_and_the_registry(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    live = LiveCatalog(CATALOG, source=registry)
    assert live.current().sensors == CATALOG.sensors
    registry.add(new_gas(expected_interval_s=600), actor="a", now=NOW)
    catalog = live.refresh()
    assert catalog is live.current()
    assert catalog.sensor("gas-oldtown-new") == new_gas(expected_interval_s=600)
    assert catalog.expected_interval_s("gas-oldtown-new") == 600
    assert catalog.sensor("gas-oldtown-01") == CATALOG.sensor("gas-oldtown-01")
    assert len(catalog.sensors) == len(CATALOG.sensors) + 1 and catalog.kinds == CATALOG.kinds
    assert live.current() is catalog  # unchanged until the registry changes


def test_another_process_sees_a_change_after_its_next_poll(engine: sa.Engine) -> None:
    clock = Clock()
    writer = LiveCatalog(CATALOG, source=registry_on(engine))
    other = LiveCatalog(CATALOG, source=SensorRegistry(engine), poll_s=1.0, clock=clock)
    assert other.current().sensor("gas-oldtown-new") is None
    registry_on(engine).add(new_gas(), actor="a", now=NOW)
    assert writer.refresh().sensor("gas-oldtown-new") is not None
    clock.t += 0.5
    assert other.current().sensor("gas-oldtown-new") is None  # polled less than a second ago
    clock.t += 0.5
    assert other.current().sensor("gas-oldtown-new") is not None
    registry_on(engine).delete("gas-oldtown-new", actor="a", now=NOW)
    clock.t += 1.0
    assert other.current().sensor("gas-oldtown-new") is None


def test_a_poll_between_changes_costs_one_query_and_reads_the_rows_only_on_a_change(
    engine: sa.Engine,
) -> None:
    calls: list[str] = []

    class Counting:
        def revision(self) -> int:
            calls.append("revision")
            return registry.revision()

        def active(self) -> list[Sensor]:
            calls.append("active")
            return registry.active()

    registry = registry_on(engine)
    clock = Clock()
    live = LiveCatalog(CATALOG, source=Counting(), poll_s=1.0, clock=clock)
    calls.clear()
    for _ in range(1000):
        live.current()
    assert calls == []
    clock.t += 1.0
    live.current()
    assert calls == ["revision"]
    registry.add(new_gas(), actor="a", now=NOW)
    clock.t += 1.0
    live.current()
    assert calls == ["revision", "revision", "active"]


def test_a_registry_that_cannot_be_read_keeps_the_sensors_known(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    registry.add(new_gas(), actor="a", now=NOW)
    clock = Clock()
    failing = {"now": False}

    class Flaky:
        def revision(self) -> int:
            if failing["now"]:
                raise sa.exc.OperationalError("SELECT", {}, Exception("database is down"))
            return registry.revision()

        def active(self) -> list[Sensor]:
            return registry.active()

    live = LiveCatalog(CATALOG, source=Flaky(), clock=clock)
    assert live.current().sensor("gas-oldtown-new") is not None
    failing["now"] = True
    clock.t += 5
    assert live.current().sensor("gas-oldtown-new") is not None
    assert live.refresh().sensor("gas-oldtown-new") is not None


def test_registered_sensors_the_file_now_contradicts_are_left_out() -> None:
    """The file changed after a registration (a restart): the file wins, the registered row is skipped."""

    class Fixed:
        def revision(self) -> int:
            return 3

        def active(self) -> list[Sensor]:
            clash = CATALOG.sensors[0].model_copy(update={"name": "registered twin"})
            gone = new_gas(id="gone-kind", kind="retired")
            return [clash, gone, new_gas()]

    catalog = LiveCatalog(CATALOG, source=Fixed()).current()
    assert catalog.sensor(CATALOG.sensors[0].id) == CATALOG.sensors[0]
    assert catalog.sensor("gone-kind") is None
    assert catalog.sensor("gas-oldtown-new") == new_gas()


# ---- ingest validation against the live catalog ---------------------------------------------------


def _reading(sensor_id: str, ts: datetime) -> bytes:
    return f'{{"sensor_id": "{sensor_id}", "kind": "gas", "value": 1.5, "ts": "{ts.isoformat()}"}}'.encode()


def test_the_validator_takes_a_registered_sensor_and_refuses_it_once_deleted(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    live = LiveCatalog(CATALOG, source=registry)
    validator = ReadingValidator(live, areas=AREAS, max_future_skew_s=300, max_past_age_s=86400)
    refused = validator.parse(_reading("gas-oldtown-new", NOW), NOW)
    assert isinstance(refused, Invalid) and refused.reason.startswith("sensor_id:")

    registry.add(new_gas(), actor="a", now=NOW)
    live.refresh()
    point = validator.parse(_reading("gas-oldtown-new", NOW), NOW)
    assert point == Point("gas-oldtown-new", "gas", "g-oldtown-05", ts_ns=point.ts_ns, value=1.5)

    registry.delete("gas-oldtown-new", actor="a", now=NOW)
    live.refresh()
    assert isinstance(validator.parse(_reading("gas-oldtown-new", NOW), NOW), Invalid)


def test_an_unknown_sensor_is_looked_up_once_per_batch_before_it_is_refused(engine: sa.Engine) -> None:
    """A reading produced after its sensor was registered by another process is never refused because
    this process had not polled yet: a miss polls the registry, at most once per batch (its ``now``)."""
    clock = Clock()
    live = LiveCatalog(CATALOG, source=SensorRegistry(engine), poll_s=60.0, clock=clock)
    validator = ReadingValidator(live, areas=AREAS, max_future_skew_s=300, max_past_age_s=86400)
    assert isinstance(validator.parse(_reading("gas-oldtown-new", NOW), NOW), Invalid)
    registry_on(engine).add(new_gas(), actor="elsewhere", now=NOW)
    batch_at = NOW + timedelta(seconds=1)
    assert isinstance(validator.parse(_reading("gas-oldtown-new", batch_at), batch_at), Point)

    polls: list[int] = []
    real = live.source.revision
    live.source.revision = lambda: polls.append(1) or real()  # type: ignore[method-assign]
    next_batch = NOW + timedelta(seconds=2)
    for _ in range(100):
        assert isinstance(validator.parse(_reading("made-up", next_batch), next_batch), Invalid)
    assert len(polls) == 1


# ---- scoring, silence and sensor faults know a registered sensor ---------------------------------


def test_the_scoring_engine_judges_a_registered_sensor_by_its_own_warning_lines(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    live = LiveCatalog(CATALOG, source=registry)
    scoring = ScoringEngine(live, detector="recorddev", signal_threshold=0.9)
    own = {"blue": 5.0, "yellow": 8.0, "orange": 20.0, "red": 40.0}
    registry.add(new_gas(thresholds=own), actor="a", now=NOW)
    live.refresh()
    t0 = int(NOW.timestamp()) * 10**9
    points = [Point("gas-oldtown-new", "gas", "g-oldtown-05", t0 + i * 300 * 10**9, 1.5) for i in range(300)]
    points.append(Point("gas-oldtown-new", "gas", "g-oldtown-05", t0 + 300 * 300 * 10**9, 9.0))
    [signal] = scoring.score(points, [(0, i) for i in range(len(points))])
    # 9 %LEL is below the gas kind's blue line (10) but past this sensor's yellow one.
    assert (signal.sensor_id, signal.level, signal.evidence["warning_line"]) == (
        "gas-oldtown-new",
        "yellow",
        8.0,
    )


def test_the_silence_check_and_the_fault_desk_know_a_registered_sensor(engine: sa.Engine) -> None:
    registry = registry_on(engine)
    live = LiveCatalog(CATALOG, source=registry)
    registry.add(new_gas(expected_interval_s=600), actor="a", now=NOW)
    live.refresh()
    checkpoints = CheckpointRepository(engine)
    checkpoints.save({"gas-oldtown-new": {"detector": "recorddev", "state": {}, "position": None}}, now=NOW)
    desk = SensorFaultDesk(SqlWarningRepository(engine), catalog=live, playbooks=PLAYBOOKS)
    clock = [NOW + timedelta(minutes=29)]
    watch = SilenceWatch(
        catalog=live, checkpoints=checkpoints, faults=desk, clock=lambda: clock[0], slack_s=5.0
    )
    assert watch.check() == []  # three of its own 10-minute intervals have not passed
    clock[0] = NOW + timedelta(minutes=31)
    [silent] = watch.check()
    assert (silent.sensor_id, silent.fault, silent.area) == ("gas-oldtown-new", "silent", "g-oldtown-05")
    [warning] = WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS).list(hazard="sensor_fault").items
    assert "Temporary detector, market hall" in warning.headline


# ---- over the API -----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    database = (
        f"sqlite:///{tmp_path}/state.sqlite3"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    # Rate limits are tested on their own (tests/test_rate_limits.py); these tests send more
    # unauthenticated requests in a second than the anonymous allowance.
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=database,
        rate_limits_enabled=False,
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The API alone, as ``citywarn serve`` runs it (no consumer in this process), with an admin key."""
    with admin_client(create_app(settings)) as c:
        yield c


def reading_now(sensor_id: str = "gas-oldtown-new", value: float = 1.5) -> dict[str, Any]:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    return {"sensor_id": sensor_id, "kind": "gas", "value": value, "unit": "%LEL", "ts": at.isoformat()}


def error_fields(resp: httpx.Response) -> set[str]:
    """The fields a 422 names, in FastAPI's shape or as problem details' ``errors``."""
    body = resp.json()
    items = body.get("errors") or body.get("detail") or []
    fields = set()
    for e in items:
        if "field" in e:
            fields.add(str(e["field"]).removeprefix("body."))
        elif "loc" in e:
            fields.add(".".join(str(p) for p in e["loc"][1:]))
        elif "pointer" in e:
            fields.add(str(e["pointer"]).lstrip("/").replace("/", "."))
    return fields


def test_a_sensor_registered_over_the_api_reports_through_a_separate_ingest_process(
    api: TestClient, settings: Settings
) -> None:
    """``citywarn serve`` takes the registration and the reading; ``citywarn ingest`` (its own services,
    own live catalog) stores it: the reading refused before the registration is accepted after it."""
    with running_pipeline(settings) as (ingest, worker):
        before = api.post("/v1/readings", json={"readings": [reading_now()]})
        assert before.status_code == 422
        [refused] = [e["field"] for e in before.json()["rejected"][0]["errors"]]
        assert refused.endswith("readings[0].sensor_id")

        made = api.post("/v1/sensors", json=NEW_GAS)
        assert made.status_code == 201, made.text
        body = made.json()
        assert (body["source"], body["unit"], body["hazard"]) == ("registry", "%LEL", "gas_leak")
        assert body["updated_by"] == "test admin" and body["revision"] == 1

        accepted = api.post("/v1/readings", json={"readings": [reading_now(value=2.5)]})
        assert accepted.status_code == 202, accepted.text
        wait_until(
            lambda: ingest.store.count("gas-oldtown-new") == 1, timeout_s=60, what="the stored reading"
        )
        [point] = ingest.store.read("gas-oldtown-new", 0, 2**62)
        assert (point.kind, point.area, point.value) == ("gas", "g-oldtown-05", 2.5)
        assert worker.stats.dead_lettered == 0

        assert api.delete("/v1/sensors/gas-oldtown-new").status_code == 204
        after = api.post("/v1/readings", json={"readings": [reading_now(value=3.5)]})
        assert after.status_code == 422


def test_the_list_shows_where_each_sensor_comes_from(api: TestClient) -> None:
    assert api.post("/v1/sensors", json={**NEW_GAS, "expected_interval_s": 600}).status_code == 201
    listed = {s["id"]: s for s in api.get("/v1/sensors").json()}
    assert len(listed) == len(CATALOG.sensors) + 1
    assert listed["gas-oldtown-01"]["source"] == "catalog"
    assert listed["gas-oldtown-new"]["source"] == "registry"
    assert listed["gas-oldtown-new"]["expected_interval_s"] == 600
    only_gas_here = api.get("/v1/sensors", params={"area": "g-oldtown-05", "kind": "gas"}).json()
    file_gas_here = {s.id for s in CATALOG.sensors if (s.area, s.kind) == ("g-oldtown-05", "gas")}
    assert {s["id"] for s in only_gas_here} == file_gas_here | {"gas-oldtown-new"}
    one = api.get("/v1/sensors/gas-oldtown-new")
    assert one.status_code == 200 and one.json()["source"] == "registry"
    assert api.get("/v1/sensors/gas-oldtown-new/series").status_code == 200
    assert api.get("/v1/sensors/nobody").status_code == 404


def test_patch_changes_only_the_fields_sent_and_records_the_key(api: TestClient) -> None:
    api.post("/v1/sensors", json={**NEW_GAS, "thresholds": {"blue": 5, "yellow": 8, "orange": 20, "red": 40}})
    operator_key = new_key(api.app, Role.ADMIN, "night admin")  # type: ignore[arg-type]
    changed = api.patch(
        "/v1/sensors/gas-oldtown-new", json={"name": "Market hall, east door"}, headers=bearer(operator_key)
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "Market hall, east door" and body["thresholds"]["red"] == 40
    assert (body["updated_by"], body["revision"]) == ("night admin", 2)
    cleared = api.patch("/v1/sensors/gas-oldtown-new", json={"thresholds": None})
    assert cleared.status_code == 200 and cleared.json()["thresholds"] is None
    assert api.get("/v1/sensors/gas-oldtown-new").json()["name"] == "Market hall, east door"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "lava"}, "kind"),
        ({"area": "atlantis"}, "area"),
        ({"area": "g-riverside-01"}, "lat"),  # its point lies in another grid
        ({"lat": 95.0}, "lat"),
        ({"expected_interval_s": 10_000}, "expected_interval_s"),  # gas is stuck after 6 h: too few reports
        ({"expected_interval_s": 0}, "expected_interval_s"),
        ({"thresholds": {"blue": 9, "yellow": 8, "orange": 20, "red": 40}}, "thresholds"),
        ({"id": "a/b"}, "id"),
        ({"id": "@silence"}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"name": "bad\u0000name"}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_an_invalid_registration_is_422_naming_the_field(
    api: TestClient, body: dict[str, Any], field: str
) -> None:
    resp = api.post("/v1/sensors", json={**NEW_GAS, **body})
    assert resp.status_code == 422, resp.text
    assert field in error_fields(resp)
    assert all(s["id"] != "gas-oldtown-new" for s in api.get("/v1/sensors").json())


def test_nan_and_infinity_are_refused(api: TestClient) -> None:
    for raw in ("NaN", "Infinity"):
        text = (
            '{"id": "gas-oldtown-new", "kind": "gas", "area": "g-oldtown-05", '
            f'"lat": {NEW_GAS["lat"]}, "lon": {NEW_GAS["lon"]}, "expected_interval_s": {raw}}}'
        )
        resp = api.post("/v1/sensors", content=text, headers={"Content-Type": "application/json"})
        assert resp.status_code == 422 and "expected_interval_s" in error_fields(resp)


def test_conflicts_and_unknown_ids(api: TestClient) -> None:
    file_sensor = api.post("/v1/sensors", json={**NEW_GAS, "id": "gas-oldtown-01"})
    assert file_sensor.status_code == 409 and "catalog file" in str(file_sensor.json())
    assert api.post("/v1/sensors", json=NEW_GAS).status_code == 201
    assert api.post("/v1/sensors", json=NEW_GAS).status_code == 409
    for resp in (
        api.patch("/v1/sensors/gas-oldtown-01", json={"name": "x"}),
        api.delete("/v1/sensors/gas-oldtown-01"),
    ):
        assert resp.status_code == 409 and "catalog file" in str(resp.json())
    assert api.patch("/v1/sensors/nobody", json={"name": "x"}).status_code == 404
    assert api.delete("/v1/sensors/nobody").status_code == 404
    assert api.patch("/v1/sensors/gas-oldtown-new", json={"id": "other"}).status_code == 422
    assert api.patch("/v1/sensors/gas-oldtown-new", json={"kind": None}).status_code == 422
    assert api.delete("/v1/sensors/gas-oldtown-new").status_code == 204
    assert api.delete("/v1/sensors/gas-oldtown-new").status_code == 404
    assert api.post("/v1/sensors", json=NEW_GAS).status_code == 201  # registered again


def test_reading_needs_a_read_key_and_changing_an_admin_key(api: TestClient) -> None:
    viewer = bearer(new_key(api.app, Role.VIEWER))  # type: ignore[arg-type]
    operator = bearer(new_key(api.app, Role.OPERATOR))  # type: ignore[arg-type]
    ingest = bearer(new_key(api.app, Role.INGEST))  # type: ignore[arg-type]
    nobody = {"Authorization": ""}
    assert api.get("/v1/sensors", headers=viewer).status_code == 200
    assert api.get("/v1/sensors", headers=ingest).status_code == 403
    assert api.get("/v1/sensors", headers=nobody).status_code == 401
    assert api.get("/v1/sensors/gas-oldtown-01/series", headers=nobody).status_code == 401
    assert api.get("/v1/sensors/gas-oldtown-01", headers=nobody).status_code == 401
    for headers, status in ((nobody, 401), (viewer, 403), (operator, 403)):
        assert api.post("/v1/sensors", json=NEW_GAS, headers=headers).status_code == status
        assert (
            api.patch("/v1/sensors/gas-oldtown-new", json={"name": "x"}, headers=headers).status_code
            == status
        )
        assert api.delete("/v1/sensors/gas-oldtown-new", headers=headers).status_code == status
    assert all(s["id"] != "gas-oldtown-new" for s in api.get("/v1/sensors").json())
