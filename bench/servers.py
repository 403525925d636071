"""Real servers for the tests and benchmarks: InfluxDB (Debian's influxd) and PostgreSQL databases.

Each influxd gets its own data, meta and WAL directories and free loopback
ports, so nobody touches a server someone else runs; fault tests may stop one
and start it again on the same port and data.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import sqlalchemy as sa

from ingest.broker import free_port, stop_child

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

_INFLUX_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  auth-enabled = {auth}
[continuous_queries]
  enabled = false
"""


class PrivateInfluxd:
    """An influxd of our own in ``root``; ``stop`` and ``start`` again keep its port and data."""

    def __init__(self, root: Path, *, auth: bool = False) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "influxdb.conf"
        root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            _INFLUX_CONFIG.format(
                root=root, rpc_port=free_port(), http_port=self.port, auth=str(auth).lower()
            )
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def store_url(self, database: str) -> str:
        return f"influxdb://127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 30.0) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            raise RuntimeError("influxd not found: install the Debian package 'influxdb'")
        log = self.root / "influxd.log"
        self._proc = subprocess.Popen(
            [binary, "-config", str(self.config)], stdout=subprocess.DEVNULL, stderr=log.open("ab")
        )
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"influxd did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, timeout_s=15)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=1).status_code == 204
        except httpx.HTTPError:
            return False


@contextmanager
def private_influxd(root: Path, *, auth: bool = False) -> Iterator[PrivateInfluxd]:
    """A started ``PrivateInfluxd`` in ``root``, stopped on exit (``root`` is left to its owner)."""
    server = PrivateInfluxd(root, auth=auth)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running_influxd() -> Iterator[str]:
    """A private influxd in a temporary directory; yields its base URL (``http://127.0.0.1:PORT``)."""
    root = Path(tempfile.mkdtemp(prefix="citywarn-influx-"))
    try:
        with private_influxd(root) as server:
            yield server.url
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create a throw-away database on the local PostgreSQL and yield its SQLAlchemy URL."""
    name = f"citywarn_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
