"""Real servers for the tests: InfluxDB (Debian's influxd) and PostgreSQL databases.

Each influxd gets its own data, meta and WAL directories and free loopback
ports, so tests never touch a server someone else runs.
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

from ingest.broker import free_port

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
[continuous_queries]
  enabled = false
"""


@contextmanager
def running_influxd(timeout_s: float = 30.0) -> Iterator[str]:
    """Start a private influxd and yield its base URL (``http://127.0.0.1:PORT``)."""
    binary = shutil.which("influxd")
    if binary is None:
        raise RuntimeError("influxd not found: install the Debian package 'influxdb'")
    root = Path(tempfile.mkdtemp(prefix="citywarn-influx-"))
    http_port = free_port()
    config = root / "influxdb.conf"
    config.write_text(_INFLUX_CONFIG.format(root=root, rpc_port=free_port(), http_port=http_port))
    proc = subprocess.Popen(
        [binary, "-config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(root / "influxd.log").open("wb"),
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 204:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (root / "influxd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"influxd did not start: {log}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
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
