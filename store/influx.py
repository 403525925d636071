"""InfluxDB adapter over the v1 HTTP API: ``/write`` (line protocol) and ``/query`` (InfluxQL).

The v1 endpoints are what every InfluxDB serves: 1.x natively, 2.x and 3.x as
compatibility endpoints, so this adapter reaches all of them (a 2.x/3.x token
goes in ``?token=``). Writes are synchronous: the call returns only after the
server answered 204 for every chunk, because Kafka offsets are committed on
that answer. InfluxDB overwrites a point with the same measurement, tag set
and timestamp, which is what makes a replay idempotent.

The HTTP client is urllib3 (what influxdb-client itself is built on), not
httpx: a 60-point read cost 1.07 ms of this process's CPU through httpx
(0.87 ms without gzip) against 0.45 ms through urllib3, measured on the same
influxd, and ``GET /v1/sensors/{id}/series`` is that read plus little else.
Answers are asked for uncompressed: gzip cost 0.2 ms of that read on the
loopback, where it saves nothing (a store across a slow link might want it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as TransportError

from store.line_protocol import MEASUREMENT, to_lines
from store.port import StoreError, StoreRefused, StoreUnavailable
from store.schemas import Point

WRITE_CHUNK = 10_000
# Connections kept to influxd: more than the API's pool threads (anyio's 40) that may read at once, so
# none is opened and dropped per request; beyond it urllib3 opens extra ones and logs each it drops.
POOL_CONNECTIONS = 48


def quote_literal(text: str) -> str:
    """An InfluxQL string literal: backslash and single quote escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _write_error(status: int) -> type[StoreError]:
    """Which failure a /write status means: the data's fault, a passing one, or ours."""
    if status in {400, 413, 422}:
        # 400: unparseable line, field type conflict, point outside the retention policy;
        # 413: body too large (a smaller chunk passes). Both are about these points.
        return StoreRefused
    if status == 429 or status >= 500:
        return StoreUnavailable
    return StoreError  # 401, 403, 404 "database not found": credentials or configuration


class InfluxStore:
    """``influxdb://host:port/database[?token=..&user=..&password=..&tls=1]``."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "influxdb" or not parts.hostname:
            raise ValueError(f"not an influxdb:// URL: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.database = parts.path.strip("/") or "citywarn"
        scheme = "https" if query.get("tls") in {"1", "true"} else "http"
        headers = {"Accept-Encoding": "identity"}
        if "token" in query:
            headers["Authorization"] = f"Token {query['token']}"
        self._auth_params = {"u": query["user"], "p": query.get("password", "")} if "user" in query else {}
        # retries=False: a failure is raised at once, as StoreUnavailable; the callers' retry policies
        # (ingest's backoff, the API's answer) decide what happens next.
        self._http = urllib3.connection_from_url(
            f"{scheme}://{parts.hostname}:{parts.port or 8086}",
            maxsize=POOL_CONNECTIONS,
            headers=headers,
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            retries=False,
        )
        self._database_ready = False

    def _ensure_database(self) -> None:
        # CREATE DATABASE is idempotent in InfluxQL; 2.x/3.x map databases to buckets
        # and may refuse it, in which case the bucket must exist already.
        if not self._database_ready:
            self._query(
                f'CREATE DATABASE "{self.database}"',
                method="POST",
                ignore_errors=True,
                what=f'creating database "{self.database}"',
            )
            self._database_ready = True

    def write(self, points: Sequence[Point]) -> None:
        if not points:
            return
        self._ensure_database()
        path = "/write?" + urlencode({"db": self.database, "precision": "ns", **self._auth_params})
        for start in range(0, len(points), WRITE_CHUNK):
            body = to_lines(points[start : start + WRITE_CHUNK]).encode("utf-8")
            try:
                resp = self._http.request("POST", path, body=body)
            except TransportError as exc:
                raise StoreUnavailable(f"InfluxDB write failed: {exc}") from exc
            if resp.status != 204:
                raise _write_error(resp.status)(f"InfluxDB write answered {resp.status}: {_text(resp)}")

    def read(self, sensor_id: str, start_ns: int, end_ns: int, *, limit: int = 10_000) -> list[Point]:
        where = f"sensor_id = {quote_literal(sensor_id)}"
        return self._select(where, start_ns, end_ns, limit)

    def read_kind(self, kind: str, start_ns: int, end_ns: int, *, limit: int = 1_000_000) -> list[Point]:
        return self._select(f"kind = {quote_literal(kind)}", start_ns, end_ns, limit)

    def count(self, sensor_id: str | None = None, *, since_ns: int | None = None) -> int:
        self._ensure_database()
        where = [f"sensor_id = {quote_literal(sensor_id)}"] if sensor_id is not None else []
        if since_ns is not None:
            where.append(f"time >= {int(since_ns)}")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(f"SELECT count(value) FROM {MEASUREMENT}{clause}")
        return int(rows[0][1]) if rows else 0

    def ping(self) -> bool:
        try:
            return self._http.request("GET", "/ping", timeout=urllib3.Timeout(total=2.0)).status == 204
        except TransportError:
            return False

    def close(self) -> None:
        self._http.close()

    def _select(self, where: str, start_ns: int, end_ns: int, limit: int) -> list[Point]:
        self._ensure_database()
        rows = self._rows(
            f"SELECT value, sensor_id, kind, area FROM {MEASUREMENT} WHERE {where} "
            f"AND time >= {int(start_ns)} AND time < {int(end_ns)} LIMIT {int(limit)}"
        )
        return [Point(sensor_id=r[2], kind=r[3], area=r[4], ts_ns=int(r[0]), value=float(r[1])) for r in rows]

    def _rows(self, influxql: str) -> list[list[Any]]:
        payload = self._query(influxql)
        rows: list[list[Any]] = []
        for result in payload.get("results", []):
            if "error" in result:
                raise StoreError(f"InfluxDB query failed: {result['error']}")
            for series in result.get("series", []):
                rows.extend(series.get("values", []))
        return rows

    def _query(
        self, influxql: str, *, method: str = "GET", ignore_errors: bool = False, what: str = "query"
    ) -> Any:
        """``what`` names the call in its error: the first call a write makes is the CREATE DATABASE, and
        "query failed" sent an operator whose writes were failing to look at the queries."""
        path = "/query?" + urlencode({"q": influxql, "db": self.database, "epoch": "ns", **self._auth_params})
        try:
            resp = self._http.request(method, path)
        except TransportError as exc:
            raise StoreUnavailable(f"InfluxDB {what} failed: {exc}") from exc
        if resp.status != 200 and not ignore_errors:
            raise StoreError(f"InfluxDB query answered {resp.status}: {_text(resp)}")
        return json.loads(resp.data) if resp.status == 200 else {}


def _text(resp: urllib3.BaseHTTPResponse) -> str:
    """The start of an error's body, for the message."""
    return resp.data[:300].decode("utf-8", "replace")
