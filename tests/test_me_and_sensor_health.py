"""GET /v1/me for every role; GET /v1/sensor-health from real SensorFaultDesk calls; both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerts.sensor_faults import SensorFaultDesk
from app.auth.roles import GRANTS, Role
from app.main import create_app
from app.services import Services
from bench.isolation import isolated_settings
from config.timeutil import to_ns
from ingest.broker import EmbeddedBroker
from models.sensor_health import HealthEvent
from tests.auth_helpers import bearer, new_key
from tests.factories import CATALOG


@pytest.fixture
def client(state_url: str, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=state_url,
        rate_limits_enabled=False,
    )
    with TestClient(create_app(settings)) as c:
        yield c


# ---- GET /v1/me ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_me_names_every_roles_key_and_its_permissions(client: TestClient, role: Role) -> None:
    token = new_key(client.app, role, f"the {role.value} desk")  # type: ignore[arg-type]
    resp = client.get("/v1/me", headers=bearer(token))
    assert resp.status_code == 200
    assert resp.json() == {
        "key_id": token.split("_")[1],
        "label": f"the {role.value} desk",
        "role": role.value,
        "permissions": sorted(p.value for p in GRANTS[role]),
    }


def test_a_viewer_is_told_it_may_not_act_and_an_operator_that_it_may(client: TestClient) -> None:
    viewer = client.get("/v1/me", headers=bearer(new_key(client.app, Role.VIEWER))).json()  # type: ignore[arg-type]
    operator = client.get("/v1/me", headers=bearer(new_key(client.app, Role.OPERATOR))).json()  # type: ignore[arg-type]
    assert viewer["permissions"] == ["read", "read_warnings"]
    assert "act" in operator["permissions"]


def test_me_without_a_key_or_with_a_bad_one_is_401(client: TestClient) -> None:
    for headers in ({}, bearer("cwk_nothex")):
        resp = client.get("/v1/me", headers=headers)
        assert resp.status_code == 401
        assert resp.headers["content-type"].startswith("application/problem+json")


# ---- GET /v1/sensor-health ------------------------------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)
GAUGE = next(s for s in CATALOG.sensors if s.id == "wl-riverside-01")  # water level: criticality high
RAIN = next(s for s in CATALOG.sensors if s.id == "rf-riverside-01")  # rainfall: normal
GAS = next(s for s in CATALOG.sensors if s.id == "gas-oldtown-01")


def desk(client: TestClient) -> SensorFaultDesk:
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    return SensorFaultDesk(svc.warnings.repository, catalog=svc.live_catalog, playbooks=svc.playbooks)


def event(sensor: object, at: datetime, fault: str | None, value: float = 1.0) -> HealthEvent:
    return HealthEvent(
        sensor.id,  # type: ignore[attr-defined]
        sensor.kind,  # type: ignore[attr-defined]
        sensor.area,  # type: ignore[attr-defined]
        to_ns(at),
        value,
        fault,  # type: ignore[arg-type]
        "test",
    )


def health(client: TestClient) -> list[dict[str, object]]:
    resp = client.get("/v1/sensor-health", headers=bearer(new_key(client.app, Role.VIEWER)))  # type: ignore[arg-type]
    assert resp.status_code == 200
    return resp.json()  # type: ignore[no-any-return]


def test_no_faults_no_items(client: TestClient) -> None:
    assert health(client) == []


def test_each_faulty_sensor_is_listed_worst_first_and_leaves_when_it_recovers(client: TestClient) -> None:
    faults = desk(client)
    [rain_warning] = faults.apply([event(RAIN, NOW - timedelta(minutes=30), "silent")], now=NOW)
    [gauge_warning] = faults.apply([event(GAUGE, NOW - timedelta(minutes=10), "flatline", 2.0)], now=NOW)
    faults.apply([event(GAS, NOW - timedelta(minutes=5), "out_of_range", 900.0)], now=NOW)

    items = health(client)
    # Yellow (high-criticality kinds) before blue; within a level the longest-standing first.
    assert [(i["sensor_id"], i["level"], i["fault"]) for i in items] == [
        ("wl-riverside-01", "yellow", "flatline"),
        ("gas-oldtown-01", "yellow", "out_of_range"),
        ("rf-riverside-01", "blue", "silent"),
    ]
    gauge = items[0]
    assert gauge == {
        "sensor_id": GAUGE.id,
        "name": GAUGE.name,
        "kind": "water_level",
        "area": GAUGE.area,
        "lat": GAUGE.lat,
        "lon": GAUGE.lon,
        "fault": "flatline",
        "since": (NOW - timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
        "warning_id": gauge_warning,
        "level": "yellow",
    }
    assert items[2]["warning_id"] == rain_warning

    # A later fault of the same sensor joins its warning: the list shows the newest fault.
    faults.apply([event(GAUGE, NOW - timedelta(minutes=2), "silent", 2.0)], now=NOW)
    assert next(i for i in health(client) if i["sensor_id"] == GAUGE.id)["fault"] == "silent"

    # Its first good reading resolves the warning: the sensor is healthy again.
    faults.apply([event(GAUGE, NOW - timedelta(minutes=1), None, 2.3)], now=NOW)
    assert [i["sensor_id"] for i in health(client)] == ["gas-oldtown-01", "rf-riverside-01"]


def test_sensor_health_needs_read_and_leaves_every_sensor_id_to_the_sensors(client: TestClient) -> None:
    """Faults live at /v1/sensor-health, so "health" stays a sensor id like any other: under
    /v1/sensors/ it was one, and a 405 there advertised the sensor routes' other methods."""
    integrator = new_key(client.app, Role.INTEGRATOR)  # type: ignore[arg-type]
    assert client.get("/v1/sensor-health", headers=bearer(integrator)).status_code == 403
    assert client.get("/v1/sensor-health").status_code == 401
    viewer = bearer(new_key(client.app, Role.VIEWER))  # type: ignore[arg-type]
    assert client.get("/v1/sensors/health", headers=viewer).status_code == 404  # no sensor of that id
    refused = client.request("OPTIONS", "/v1/sensor-health", headers=viewer)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET"
