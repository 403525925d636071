"""SQLite's state version tells a reopened connection's count from the one before it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts import db
from app.api.page_cache import StateVersion


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = db.connect(f"sqlite:///{tmp_path}/state.sqlite3")
    try:
        yield engine
    finally:
        engine.dispose()


def test_a_version_read_on_a_connection_opened_again_matches_none_before(engine: sa.Engine) -> None:
    """A fresh connection's data_version starts again: a page kept before must not look current."""
    version = StateVersion(engine)
    first = version.read()
    engine.dispose()  # closes our connection too (engine_disposed)
    again = version.read()
    assert again is not None and again != first
    assert version.read() == again  # nothing committed since
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")  # any commit that writes
    assert version.read() != again
