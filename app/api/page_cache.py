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

    SQLite: ``PRAGMA data_version`` on a connection of our own, which never
    writes; SQLite changes it whenever another connection, in any process, has
    committed. Reading the WAL-index header straight from a mapping of the
    ``-shm`` file was cheaper, but it cannot be made safe: closing our own
    descriptor of that file dropped the process's POSIX locks on it, so another
    process (``citywarn keys create``) then opened the database as its only user
    and truncated the file, and the next read of the mapping killed the service
    with SIGBUS (``tests/test_cli_run_demo.py`` caught it: keys made beside a
    running ``citywarn run --demo``). Reading it through ``sqlite3``'s own
    library by ctypes, so the event loop keeps the GIL, cut the wait in the
    profile but not the pages a second (181 against 188 in the same hour), so
    that was taken out again.

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
        # A connection's data_version counts only what it has seen, from its own start: a version read
        # on a connection opened again (after the engine was disposed) is told apart by this.
        self._opened = 0
        self._lock = threading.Lock()
        # SQLite's version is a local call on the event loop; PostgreSQL's is a round trip.
        self.blocking = self.dialect != "sqlite"
        if self._path is not None:
            sa.event.listen(engine, "engine_disposed", self._close)

    def read(self) -> Hashable | None:
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                return str(conn.exec_driver_sql("SELECT pg_current_snapshot()").scalar_one())
        if self._path is None:
            return None
        with self._lock:
            if self._conn is None:
                self._opened += 1
                self._conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            return (self._opened, int(self._conn.execute("PRAGMA data_version").fetchone()[0]))

    def _close(self, *_args: object) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


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
