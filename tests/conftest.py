"""Real services for the tests: Tansu, a private influxd, PostgreSQL, and the state database on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from alerts import db
from alerts.service import WarningService
from app.main import create_app
from bench.servers import fresh_postgres_database, running_influxd
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from tests.auth_helpers import admin_client
from tests.factories import CATALOG, PLAYBOOKS
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture(scope="session")
def influx_url() -> Iterator[str]:
    with running_influxd() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty database on the real server for each test: no test sees another's rows."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new state database's URL, once on SQLite and once on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(state_url: str) -> Iterator[sa.Engine]:
    """The state database, migrated, once on SQLite and once on the real PostgreSQL."""
    engine = db.connect(state_url)
    yield engine
    engine.dispose()


@pytest.fixture
def service(engine: sa.Engine) -> WarningService:
    """A warning service over ``engine`` with the bundled city's catalog and playbooks."""
    return WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app on the requesting module's ``settings`` fixture, started and stopped by its lifespan.

    Every request carries an admin key (``tests.auth_helpers``); pass ``headers=`` to send another.
    """
    with admin_client(create_app(settings)) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An integrator's webhook endpoint: a real HTTP server on loopback, answering 204 unless told."""
    r = Receiver()
    yield r
    r.close()
