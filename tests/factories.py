"""Small builders shared by tests: the bundled catalog, signals, reading messages, warning rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from alerts import db
from config.catalog import Catalog, load_catalog
from config.playbooks import Playbooks, load_playbooks
from config.settings import CITY_DIR
from models.signals import Signal

CATALOG: Catalog = load_catalog(CITY_DIR / "sensors.yaml")
PLAYBOOKS: Playbooks = load_playbooks(CITY_DIR / "playbooks.yaml")
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def signal(
    *,
    sensor_id: str = "wl-riverside-01",
    hazard: str = "flood",
    area: str = "g-riverside-01",
    level: str | None = "yellow",
    score: float = 0.95,
    value: float = 3.1,
    ts: datetime = NOW,
    kind: str = "water_level",
) -> Signal:
    return Signal(
        sensor_id=sensor_id,
        kind=kind,
        area=area,
        hazard=hazard,
        ts_ns=int(ts.timestamp()) * 1_000_000_000,
        value=value,
        score=score,
        detector="test",
        level=level,
        evidence={"baseline": 1.2},
    )


def reading(sensor_id: str, value: float, ts: datetime, **extra: Any) -> bytes:
    sensor = CATALOG.sensor(sensor_id)
    kind = sensor.kind if sensor else extra.pop("kind", "water_level")
    body = {
        "sensor_id": sensor_id,
        "kind": kind,
        "value": value,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        **extra,
    }
    return json.dumps(body).encode()


def gas_reading(**overrides: object) -> dict[str, object]:
    """One valid reading of a catalogued gas sensor, taken now, as a JSON object; any field overridden."""
    return {
        "sensor_id": "gas-oldtown-01",
        "kind": "gas",
        "value": 1.5,
        "unit": "%LEL",
        "ts": datetime.now(UTC).replace(microsecond=0).isoformat(),
        **overrides,
    }


def insert_warning_row(conn: sa.Connection, wid: str, *, area: str, at: datetime) -> None:
    """A bare warning row, written straight into the table (no service, no events): for tests of what
    reads the table or references it."""
    conn.execute(
        db.warnings.insert().values(
            id=wid,
            hazard="flood",
            area=area,
            level="yellow",
            status="active",
            severity="Minor",
            urgency="Future",
            certainty="Possible",
            headline="test",
            first_signal_at=at,
            last_signal_at=at,
            created_at=at,
            updated_at=at,
        )
    )
