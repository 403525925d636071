"""SQLite's ``PRAGMA data_version`` read without letting go of the GIL.

Python's ``sqlite3`` releases the GIL around every call into SQLite. A read
of ``data_version`` takes a few microseconds, but in ``citywarn run`` the
event loop that makes it shares the GIL with the ingest threads: having let
go, it waits its turn to take it back (up to the interpreter's switch
interval, 5 ms) before it can answer the request. The read on every kept
page (``app.api.page_cache``) was then most of that page's time in
``bench.api``'s profile. Called through ``ctypes.PyDLL`` the same three
calls (step, column, reset) keep the GIL: one short read transaction, no
waiting behind the other threads.

Safe only with the very copy of SQLite that ``sqlite3`` uses. Two copies in
one process do not share SQLite's table of open files, so closing one's
descriptor drops the other's POSIX locks (SQLite's "multiple copies"
hazard; the same loss of locks made the mapped ``-shm`` header unsafe). So
the library is taken only when ``_sqlite3`` is linked against a shared
``libsqlite3`` this process has already mapped, and only if the symbol
``_sqlite3`` resolves is the one ours resolves; otherwise ``open_reader``
returns None and the caller keeps ``sqlite3``.

The connection is read-only and has no busy handler: a database that is
locked answers at once, and the read is "unknown" (the page is made again,
never kept past a change). The read transaction ends with each read
(``sqlite3_reset``), so it never holds back a checkpoint. What is left
that can wait while the GIL is held is SQLite's own retry when a WAL
checkpoint moves under a starting read (short sleeps, only while another
connection is resetting the WAL); the event loop waited there before too.
"""

from __future__ import annotations

import ctypes
import threading
from functools import cache
from pathlib import Path

SQLITE_OK, SQLITE_ROW = 0, 100
SQLITE_OPEN_READONLY = 0x1


@cache
def _library() -> ctypes.PyDLL | None:
    """``_sqlite3``'s own shared SQLite, loaded so its calls keep the GIL; None if there is no such."""
    import _sqlite3

    mapped = _mapped_sqlite_libraries()
    if len(mapped) != 1:
        return None  # linked statically (none), or two copies already: not ours to pick
    try:
        lib = ctypes.PyDLL(mapped[0])
        theirs = ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion  # resolved as _sqlite3 resolves it
    except (OSError, AttributeError):
        return None
    if (
        ctypes.cast(lib.sqlite3_libversion, ctypes.c_void_p).value
        != ctypes.cast(theirs, ctypes.c_void_p).value
    ):
        return None
    lib.sqlite3_open_v2.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.c_char_p,
    ]
    lib.sqlite3_prepare_v2.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_void_p,
    ]
    for name in ("sqlite3_step", "sqlite3_reset", "sqlite3_finalize", "sqlite3_close_v2"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.sqlite3_column_int64.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.sqlite3_column_int64.restype = ctypes.c_int64
    return lib


def _mapped_sqlite_libraries() -> list[str]:
    """Paths of the shared SQLite libraries mapped into this process (Linux; elsewhere none)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    paths = {line.split(maxsplit=5)[-1] for line in lines if "libsqlite3" in line}
    return sorted(p for p in paths if Path(p).name.startswith("libsqlite3.so"))


class DataVersionReader:
    """``PRAGMA data_version`` on a read-only connection of its own, through ``_sqlite3``'s SQLite."""

    def __init__(self, lib: ctypes.PyDLL, db: ctypes.c_void_p, stmt: ctypes.c_void_p) -> None:
        self._lib, self._db, self._stmt = lib, db, stmt
        self._lock = threading.Lock()

    def read(self) -> int | None:
        """The version now; None if SQLite did not answer one (busy, closed)."""
        with self._lock:
            if not self._stmt:
                return None
            try:
                if self._lib.sqlite3_step(self._stmt) != SQLITE_ROW:
                    return None
                return int(self._lib.sqlite3_column_int64(self._stmt, 0))
            finally:
                self._lib.sqlite3_reset(self._stmt)  # ends the read transaction

    def close(self) -> None:
        with self._lock:
            stmt, db = self._stmt, self._db
            self._stmt, self._db = ctypes.c_void_p(), ctypes.c_void_p()
        if stmt:
            self._lib.sqlite3_finalize(stmt)
        if db:
            self._lib.sqlite3_close_v2(db)


def open_reader(path: str) -> DataVersionReader | None:
    """A reader of ``path``'s version, or None where only ``sqlite3`` may be used (see the module)."""
    lib = _library()
    if lib is None:
        return None
    db, stmt = ctypes.c_void_p(), ctypes.c_void_p()
    if lib.sqlite3_open_v2(path.encode(), ctypes.byref(db), SQLITE_OPEN_READONLY, None) != SQLITE_OK:
        lib.sqlite3_close_v2(db)  # a handle is made even when opening fails
        return None
    if lib.sqlite3_prepare_v2(db, b"PRAGMA data_version", -1, ctypes.byref(stmt), None) != SQLITE_OK:
        lib.sqlite3_close_v2(db)
        return None
    return DataVersionReader(lib, db, stmt)
