"""The embedded default store: one SQLite file, for ``citywarn run`` and small sites.

The primary key (sensor_id, ts_ns) plus ``INSERT OR REPLACE`` gives the same
overwrite-on-replay semantics as InfluxDB. WAL with ``synchronous=FULL``
makes a committed batch survive a power cut, at one fsync per batch.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from store.port import StoreError, StoreRefused, StoreUnavailable
from store.schemas import Point

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    sensor_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    area TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (sensor_id, ts_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_kind_ts ON readings (kind, ts_ns);
"""


def _write_error(exc: sqlite3.Error) -> type[StoreError]:
    """Locked, read-only or full files pass; constraint and type errors are the data's fault."""
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
        return StoreRefused
    return StoreError  # not a database, corrupt, misuse: nothing a retry or a dead letter mends


class EmbeddedStore:
    """``file:///abs/path.sqlite3`` or ``file://./relative.sqlite3``."""

    def __init__(self, url: str) -> None:
        if not url.startswith("file://"):
            raise ValueError(f"not a file:// URL: {url!r}")
        path = Path(url.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection shared by the consumer and the API threads, serialised by a lock:
        # SQLite allows one writer at a time anyway.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def write(self, points: Sequence[Point]) -> None:
        if not points:
            return
        rows = [(p.sensor_id, p.ts_ns, p.kind, p.area, float(p.value)) for p in points]
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO readings VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise _write_error(exc)(f"embedded store write failed: {exc}") from exc

    def read(self, sensor_id: str, start_ns: int, end_ns: int, *, limit: int = 10_000) -> list[Point]:
        return self._select(
            "sensor_id = ? AND ts_ns >= ? AND ts_ns < ? ORDER BY ts_ns LIMIT ?",
            (sensor_id, start_ns, end_ns, limit),
        )

    def read_kind(self, kind: str, start_ns: int, end_ns: int, *, limit: int = 1_000_000) -> list[Point]:
        return self._select(
            "kind = ? AND ts_ns >= ? AND ts_ns < ? ORDER BY ts_ns LIMIT ?",
            (kind, start_ns, end_ns, limit),
        )

    def count(self, sensor_id: str | None = None, *, since_ns: int | None = None) -> int:
        where: list[str] = ["1"]
        args: list[str | int] = []
        if sensor_id is not None:
            where.append("sensor_id = ?")
            args.append(sensor_id)
        if since_ns is not None:
            where.append("ts_ns >= ?")
            args.append(since_ns)
        query = f"SELECT count(*) FROM readings WHERE {' AND '.join(where)}"
        with self._lock:
            row = self._db.execute(query, args).fetchone()
        return int(row[0])

    def ping(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, where: str, args: tuple[object, ...]) -> list[Point]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT sensor_id, kind, area, ts_ns, value FROM readings WHERE {where}", args
            ).fetchall()
        return [Point(sensor_id=r[0], kind=r[1], area=r[2], ts_ns=r[3], value=r[4]) for r in rows]
