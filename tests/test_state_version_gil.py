"""SQLite's state version is read without letting go of the GIL (``app.api.sqlite_version``), and only
through the copy of SQLite that Python's ``sqlite3`` uses."""

from __future__ import annotations

import _sqlite3
import ctypes
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts import db
from app.api import sqlite_version
from app.api.page_cache import StateVersion


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = db.connect(f"sqlite:///{tmp_path}/state.sqlite3")
    try:
        yield engine
    finally:
        engine.dispose()


def test_the_version_is_read_through_calls_that_keep_the_gil(engine: sa.Engine) -> None:
    """``ctypes.PyDLL``'s calls keep the GIL (ctypes' documented contract), where ``sqlite3`` lets go.

    A behavioural check was tried and dropped: a thread spinning beside the
    reads runs only if it asked for the GIL just before the read let go,
    which no test can arrange reliably; ``bench.api`` measures the effect.
    """
    version = StateVersion(engine)
    assert version.read() is not None
    assert version._reader is not None  # not the sqlite3 connection
    assert type(sqlite_version._library()) is ctypes.PyDLL


def test_the_reader_uses_the_sqlite_that_sqlite3_uses() -> None:
    lib = sqlite_version._library()
    assert lib is not None  # this machine's Python links a shared libsqlite3
    theirs = ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion
    assert (
        ctypes.cast(lib.sqlite3_libversion, ctypes.c_void_p).value
        == ctypes.cast(theirs, ctypes.c_void_p).value
    )
    major, minor, patch = sqlite3.sqlite_version_info
    assert lib.sqlite3_libversion_number() == major * 1_000_000 + minor * 1_000 + patch


def test_no_shared_library_mapped_means_no_reader(monkeypatch: pytest.MonkeyPatch, engine: sa.Engine) -> None:
    """Python with SQLite linked in statically: the reader would be a second copy, so ``sqlite3`` reads."""
    sqlite_version._library.cache_clear()
    monkeypatch.setattr(sqlite_version, "_mapped_sqlite_libraries", lambda: [])
    try:
        assert sqlite_version.open_reader(str(engine.url.database)) is None
        version = StateVersion(engine)
        before = version.read()
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")  # any commit that writes
        assert before is not None and version.read() != before
    finally:
        sqlite_version._library.cache_clear()


def test_a_version_read_on_a_connection_opened_again_matches_none_before(engine: sa.Engine) -> None:
    """A fresh connection's data_version starts again: a page kept before must not look current."""
    version = StateVersion(engine)
    first = version.read()
    engine.dispose()  # closes our connection too (engine_disposed)
    again = version.read()
    assert again is not None and again != first
    assert version.read() == again  # nothing committed since
    reader = sqlite_version.open_reader(str(engine.url.database))
    assert reader is not None
    reader.close()
    assert reader.read() is None
