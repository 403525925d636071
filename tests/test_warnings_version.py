"""The warnings table's version: moved by any change to the table, and by nothing else (app.api.page_cache).

On SQLite and on the real PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from alerts import db
from app.api.page_cache import WarningsVersion
from tests.factories import insert_warning_row


def _change_a_warning(engine: sa.Engine, area: str = "g-1") -> None:
    with engine.begin() as conn:
        conn.execute(db.warnings.update().where(db.warnings.c.area == area).values(level="orange"))


def _insert_a_warning(engine: sa.Engine, wid: str, area: str = "g-1") -> None:
    with engine.begin() as conn:
        insert_warning_row(conn, wid, area=area, at=datetime.now(UTC))


def test_a_version_read_on_a_connection_opened_again_still_moves_with_the_table(engine: sa.Engine) -> None:
    version = WarningsVersion(engine)
    first = version.read()
    assert first is not None
    engine.dispose()  # closes our connection too (engine_disposed)
    assert version.read() == first  # the table is as it was
    _insert_a_warning(engine, "w-1")
    assert version.read() != first


def test_other_commits_leave_the_version_and_every_change_to_warnings_moves_it(engine: sa.Engine) -> None:
    """Checkpoints and evidence commit many times a second; only the warnings table's own changes count,
    whichever connection makes them, and a rolled-back change does not."""
    elsewhere = db.open_engine(engine.url.render_as_string(hide_password=False))
    version = WarningsVersion(engine)
    try:
        steady = version.read()
        with elsewhere.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
        assert version.read() == steady
        seen = {steady}
        for change in (
            lambda: _insert_a_warning(elsewhere, "w-1"),
            lambda: _change_a_warning(elsewhere),
            lambda: _change_a_warning(engine),  # through the pool of the engine the version reads
        ):
            change()
            now = version.read()
            assert now not in seen
            seen.add(now)
        with pytest.raises(RuntimeError), elsewhere.begin() as conn:
            conn.execute(db.warnings.delete())
            raise RuntimeError("rolled back")
        assert version.read() == now
        with elsewhere.begin() as conn:
            conn.execute(db.warnings.delete())
        assert version.read() not in seen
    finally:
        elsewhere.dispose()
