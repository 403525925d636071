"""Serialised pages kept while the state database is unchanged, so a polled list costs no query.

An EOC's consoles ask for the same page of warnings many times a second, and
it changes a few times a minute. ``PageCache`` keeps each page's bytes beside
the database's ``StateVersion`` when they were made, and answers from them
while the version reads the same. The version moves with every transaction
committed to the database, by this process or any other (``citywarn
ingest``, another API process), so a cached page is never older than the
database was when the request arrived; the test holds it to that with a
second engine writing.

Why a version read before the page's query suffices: a commit after the read
either lands before the query (the page is newer than its version says, and
the next request reads a new version and makes the page again) or after it
(the version moves). Two equal reads mean nothing was committed in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import sqlite3
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

MAX_BYTES = 16 * 1024 * 1024  # the pages kept, together; a page of 500 warnings is about 1 MiB
MAX_QUERIES = 4096  # query strings remembered for app.kept_pages; past this they are forgotten at once


class StateVersion:
    """Reads a value that changes whenever a transaction commits to the state database; None: unknown.

    SQLite in WAL mode: the WAL-index header at the start of the ``-shm``
    file (https://www.sqlite.org/walformat.html), the very bytes SQLite
    compares to tell a reader the database changed: a commit rewrites them
    (frame count, running checksum; salts after a WAL restart), and a read
    transaction begun after they are read sees at least that commit. It is
    read from memory, holding the GIL: the thread that answers requests must
    not let go of it, as a database call does, because a busy ingest thread
    then keeps it up to the 5 ms switch interval (measured: the SQL version
    of this check, ``PRAGMA data_version``, cost more than the rest of a kept
    page's answer). SQLite writes the header twice, second copy first; two
    copies that differ are a commit in progress: unknown. A connection of our
    own keeps the file open and mapped; without WAL, ``PRAGMA data_version``
    on that connection (it counts other connections' commits, and it never writes).

    PostgreSQL: the current snapshot (``xmin:xmax:in-progress``); two equal
    snapshots see exactly the same committed transactions, so the same rows.

    Both move on commits anywhere in the database, so a change to any table
    makes the pages again: cheap, and never wrong.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        path = engine.url.database if self.dialect == "sqlite" else None
        self._path = path if path and path != ":memory:" and not path.startswith("file:") else None
        self._conn: sqlite3.Connection | None = None
        self._shm: mmap.mmap | None = None
        self._lock = threading.Lock()
        # SQLite's header is read from memory on the event loop; PostgreSQL's is a round trip.
        self.blocking = self.dialect != "sqlite"
        if self._path is not None:
            sa.event.listen(engine, "engine_disposed", self._close)

    def read(self) -> Hashable | None:
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                return str(conn.exec_driver_sql("SELECT pg_current_snapshot()").scalar_one())
        if self._path is None:
            return None
        shm = self._shm
        if shm is None:
            with self._lock:
                if self._conn is None:
                    self._open(self._path)
                assert self._conn is not None
                shm = self._shm
                if shm is None:
                    return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        try:
            both = shm[:_WAL_HEADERS]
        except ValueError:  # closed meanwhile: the engine was disposed
            return None
        half = _WAL_HEADERS // 2
        return both[:half] if both[:half] == both[half:] else None

    def _open(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # A read attaches the connection to the WAL index, so the -shm file exists while it is open.
        wal = self._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if wal:
            with contextlib.suppress(OSError, ValueError), open(f"{path}-shm", "rb") as f:
                self._shm = mmap.mmap(f.fileno(), _WAL_HEADERS, access=mmap.ACCESS_READ)

    def _close(self, *_args: object) -> None:
        with self._lock:
            shm, conn, self._shm, self._conn = self._shm, self._conn, None, None
            if shm is not None:
                shm.close()
            if conn is not None:
                conn.close()


_WAL_HEADERS = 96  # two copies of the 48-byte WAL-index header


@dataclass(slots=True)
class _Page:
    version: Hashable
    body: asyncio.Task[bytes]  # shared by every request that arrives while it is being made
    size: int = 0


class PageCache:
    """Pages by the request's key, each kept with the version it was made at.

    Requests for a page that is being made wait for it rather than make it
    again; a page that failed is dropped, and its waiters see the error.
    """

    def __init__(self, version: StateVersion, max_bytes: int = MAX_BYTES) -> None:
        self.version = version
        self.max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, _Page] = OrderedDict()
        self._bytes = 0
        self.made = 0  # pages made (not answered from the cache), for tests and curiosity
        # Raw query strings the route has validated and answered, to their page's key (app.kept_pages).
        self._queries: dict[bytes, Hashable] = {}
        self.route: object | None = None  # the route that answers them, for HttpMetrics' label

    async def get(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        """The page: the kept bytes if the database is unchanged since, else ``make()`` on a pool thread."""
        version = await self._version()
        if version is None:
            self.made += 1
            return await run_in_threadpool(make)
        page = self._pages.get(key)
        if page is None or page.version != version or not _awaitable_here(page.body):
            page = self._start(key, version, make)
        else:
            self._pages.move_to_end(key)
        return await asyncio.shield(page.body)

    def alias(self, raw_query: bytes, key: Hashable, route: object) -> None:
        """``raw_query`` was validated by the route and names the page ``key``: ``kept`` may answer it."""
        if len(self._queries) >= MAX_QUERIES:
            self._queries.clear()
        self._queries[raw_query] = key
        self.route = route

    async def kept(self, raw_query: bytes) -> bytes | None:
        """The page a validated query string names, if it is made and the database unchanged since; else None.

        Nothing is made here: a miss goes the whole way through the route, which makes the page.
        """
        key = self._queries.get(raw_query)
        page = self._pages.get(key) if key is not None else None
        if page is None or not page.body.done() or page.body.cancelled() or page.body.exception():
            return None
        try:
            version = await self._version()
        except Exception:  # the database did not answer: the route answers that as it answers any request
            return None
        if version is None or version != page.version:
            return None
        self._pages.move_to_end(key)
        return page.body.result()

    async def _version(self) -> Hashable | None:
        """The version, read after this request arrived; a round trip (PostgreSQL) on a pool thread.

        Not shared between requests: tried (each request waiting for one read
        begun after it arrived, shared by all who arrived meanwhile), it made
        162 pages a second on PostgreSQL against 247 unshared (bench.api, one
        run each, loaded machine): every read waits its turn for the GIL
        behind the ingest threads, and eight clients then waited in line.
        """
        return await run_in_threadpool(self.version.read) if self.version.blocking else self.version.read()

    def _start(self, key: Hashable, version: Hashable, make: Callable[[], bytes]) -> _Page:
        self.made += 1
        self._forget(key)
        page = _Page(version, asyncio.ensure_future(run_in_threadpool(make)))
        self._pages[key] = page
        page.body.add_done_callback(lambda task: self._settled(key, page, task))
        return page

    def _settled(self, key: Hashable, page: _Page, task: asyncio.Task[bytes]) -> None:
        if self._pages.get(key) is not page:
            return
        if task.cancelled() or task.exception() is not None:
            self._forget(key)
            return
        page.size = len(task.result())
        self._bytes += page.size
        while self._bytes > self.max_bytes and self._pages:
            self._forget(next(iter(self._pages)))

    def _forget(self, key: Hashable) -> None:
        page = self._pages.pop(key, None)
        if page is not None:
            self._bytes -= page.size


def _awaitable_here(task: asyncio.Task[bytes]) -> bool:
    """A page being made on another event loop (a test client's earlier portal) cannot be awaited here."""
    return task.done() or task.get_loop() is asyncio.get_running_loop()


_CACHES: weakref.WeakKeyDictionary[sa.Engine, PageCache] = weakref.WeakKeyDictionary()


def page_cache(engine: sa.Engine) -> PageCache:
    """The engine's page cache, made on first use (only ever on the event loop's thread)."""
    cache = _CACHES.get(engine)
    if cache is None:
        cache = _CACHES[engine] = PageCache(StateVersion(engine))
    return cache
