"""Session-wide real services: the Tansu broker, a private influxd, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.servers import fresh_postgres_database, running_influxd
from ingest.broker import EmbeddedBroker


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
