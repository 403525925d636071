"""The state database under Alembic: the migrated schema is the code's, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from alerts import db, drill_store, migrations, recommendation_log, silence_store
from alerts.migrations import (
    INITIAL_REVISION,
    PRE_MIGRATION_TABLES,
    current_revision,
    head_revision,
    history,
    upgrade_to_head,
)
from app.auth import tables as key_tables
from app.cli import main
from store import model_repository, reports, sensor_registry

STARTS_AT_ONCE = 4


def all_tables() -> sa.MetaData:
    """Every table the code reads and writes in the state database, in one MetaData."""
    combined = sa.MetaData()
    for metadata in (
        db.metadata,
        reports.metadata,
        model_repository.metadata,
        key_tables.metadata,
        sensor_registry.metadata,
        recommendation_log.metadata,
        drill_store.metadata,
        silence_store.metadata,
    ):
        for table in metadata.tables.values():
            table.to_metadata(combined)
    return combined


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(url: str) -> Iterator[sa.Engine]:
    engine = db.open_engine(url)
    yield engine
    engine.dispose()


def test_the_migrated_schema_is_the_code_s(engine: sa.Engine) -> None:
    assert upgrade_to_head(engine)[-1] == head_revision()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), all_tables()) == []


def _build_as_before_migrations(engine: sa.Engine) -> None:
    """The initial revision's tables, with no ``alembic_version``: what ``create_all`` used to leave."""
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, INITIAL_REVISION)
        conn.execute(sa.text("DROP TABLE alembic_version"))
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) == PRE_MIGRATION_TABLES


def test_a_database_created_before_migrations_is_stamped_and_keeps_its_rows(engine: sa.Engine) -> None:
    _build_as_before_migrations(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(db.checkpoints).values(sensor_id="s-1", detector="d", state={}, updated_at=now)
        )
    assert current_revision(engine) is None

    upgrade_to_head(engine)

    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.execute(sa.select(db.checkpoints.c.sensor_id)).scalars().all() == ["s-1"]


def test_concurrent_first_starts_all_succeed_and_leave_the_schema_at_head(url: str) -> None:
    if url.startswith("postgresql"):
        # Without the advisory lock the starts block each other in the catalog: fail, don't hang.
        url = sa.make_url(url).update_query_dict({"options": "-c lock_timeout=20s"}).render_as_string(False)

    def start(_: int) -> list[str]:
        engine = db.open_engine(url)
        try:
            return upgrade_to_head(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(STARTS_AT_ONCE) as pool:
        applied = list(pool.map(start, range(STARTS_AT_ONCE)))

    # Exactly one start applied the history; the others waited for it and found nothing to do.
    assert sorted(applied, key=len) == [[]] * (STARTS_AT_ONCE - 1) + [history()]
    engine = db.open_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_citywarn_migrate_twice_is_a_no_op(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYWARN_DATABASE_URL", url)
    main(["migrate"])
    assert (
        capsys.readouterr().out.strip()
        == f"state database at {head_revision()}; applied: {', '.join(history())}"
    )
    engine = db.open_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(db.checkpoints).values(
                sensor_id="s-1", detector="d", state={}, updated_at=datetime.now(UTC)
            )
        )

    main(["migrate"])

    assert capsys.readouterr().out.strip() == f"state database at {head_revision()}; applied: nothing"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.checkpoints)).scalar_one() == 1
    engine.dispose()


def test_threads_opening_one_new_sqlite_file_at_once_all_connect(tmp_path: Path) -> None:
    """Switching a new file to WAL took a lock SQLite did not wait for: a thread opening the file
    while another wrote to it failed at once with "database is locked" (once in CI, in the test
    above)."""

    def first_write(path: Path, ready: threading.Barrier) -> str:
        engine = db.open_engine(f"sqlite:///{path}")
        try:
            ready.wait()
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS seen (n INTEGER)")
                return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar_one())
        finally:
            engine.dispose()

    for trial in range(60):
        path, ready = tmp_path / f"state-{trial}.sqlite3", threading.Barrier(8)
        with ThreadPoolExecutor(8) as pool:
            modes = list(pool.map(first_write, [path] * 8, [ready] * 8))
        assert modes == ["wal"] * 8


def test_migration_0010_stores_snapshots_uncompressed_and_its_downgrade_puts_the_default_back(
    postgres_url: str,
) -> None:
    engine = db.connect(postgres_url)

    def storage() -> str:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT attstorage FROM pg_attribute "
                    "WHERE attrelid = 'detector_snapshots'::regclass AND attname = 'snapshot'"
                )
            ).scalar_one()

    try:
        assert storage() == "e"  # EXTERNAL: out of line, uncompressed
        with engine.begin() as conn:
            command.downgrade(migrations._config(conn), "0009")
        assert storage() == "x"  # EXTENDED: PostgreSQL's default for bytea, compressed
        upgrade_to_head(engine)
        assert storage() == "e"
    finally:
        engine.dispose()
