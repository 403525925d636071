"""Serialised pages of warnings kept while the warnings table is unchanged, so a polled list costs no query.

An EOC's consoles ask for the same page of warnings many times a second, and
it changes a few times a minute. ``PageCache`` keeps each page's bytes beside
the table's ``WarningsVersion`` when they were made, and answers from them
while the version reads the same. The version moves with every transaction
that changes the table, by this process or any other (``citywarn ingest``,
another API process), so a cached page is never older than the table was
when the request arrived; the tests hold it to that with a second engine
writing. A page must therefore be made from the warnings table alone.

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


class WarningsVersion:
    """Reads the warnings table's version (``alerts.db.table_versions``); None: unknown.

    Triggers move it in the same transaction as any change to ``warnings``, by
    this process or any other, so it reads the same exactly while the table
    does, whatever else is committed meanwhile. The whole database's version
    (SQLite's ``data_version``, PostgreSQL's snapshot) moved with every
    checkpoint ingest committed: in ``bench.api`` a page was made six or seven
    times a second, about 35 ms each with the GIL contended, and every request
    for it waited meanwhile, which was the warnings' p95 and p99.

    SQLite: read on a connection of our own, which never writes, and only when
    its ``PRAGMA data_version`` moved (SQLite changes it whenever another
    connection, in any process, commits): an unchanged data_version means
    nothing was committed since the last read, so neither was the table.
    Reading the WAL-index header straight from a mapping of the ``-shm`` file
    was cheaper still, but cannot be made safe: closing our own descriptor of
    that file dropped the process's POSIX locks on it, so another process
    (``citywarn keys create``) then opened the database as its only user and
    truncated the file, and the next read of the mapping killed the service
    with SIGBUS.

    PostgreSQL: one row read, a round trip each time.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        path = engine.url.database if self.dialect == "sqlite" else None
        self._path = path if path and path != ":memory:" and not path.startswith("file:") else None
        self._conn: sqlite3.Connection | None = None
        # A connection's data_version counts only what it has seen, from its own start: the one read on
        # a connection opened again (after the engine was disposed) is told apart by this.
        self._opened = 0
        self._seen: tuple[int, int] | None = None  # (opened, data_version) when ``_version`` was read
        self._version: int | None = None
        self._lock = threading.Lock()
        # SQLite's version is a local call on the event loop; PostgreSQL's is a round trip.
        self.blocking = self.dialect != "sqlite"
        if self._path is not None:
            sa.event.listen(engine, "engine_disposed", self._close)

    def read(self) -> Hashable | None:
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                return conn.exec_driver_sql(_VERSION_SQL).scalar_one_or_none()
        if self._path is None:
            return None
        with self._lock:
            if self._conn is None:
                self._opened += 1
                self._conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            seen = (self._opened, int(self._conn.execute("PRAGMA data_version").fetchone()[0]))
            if seen != self._seen:
                try:
                    row = self._conn.execute(_VERSION_SQL).fetchone()
                except sqlite3.OperationalError:  # not migrated yet: no page is kept
                    row = None
                self._seen, self._version = seen, (int(row[0]) if row else None)
            return self._version

    def _close(self, *_args: object) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


_VERSION_SQL = "SELECT version FROM table_versions WHERE name = 'warnings'"


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

    def __init__(self, version: WarningsVersion, max_bytes: int = MAX_BYTES) -> None:
        self.version = version
        self.max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, _Page] = OrderedDict()
        self._bytes = 0
        self.made = 0  # pages made (not answered from the cache), for tests and curiosity
        # Raw query strings the route has validated and answered, to their page's key (app.kept_pages).
        self._queries: dict[bytes, Hashable] = {}
        self.route: object | None = None  # the route that answers them, for HttpMetrics' label

    async def get(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        """The page: the kept bytes if the table is unchanged since, else ``make()`` on a pool thread."""
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
        """The page a validated query string names, if made and the table unchanged since; else None.

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
        cache = _CACHES[engine] = PageCache(WarningsVersion(engine))
    return cache
