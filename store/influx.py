"""InfluxDB adapter over the v1 HTTP API: ``/write`` (line protocol) and ``/query`` (InfluxQL).

The v1 endpoints are what every InfluxDB serves: 1.x natively, 2.x and 3.x as
compatibility endpoints, so this adapter reaches all of them (a 2.x/3.x token
goes in ``?token=``). Writes are synchronous: the call returns only after the
server answered 204 for every chunk, because Kafka offsets are committed on
that answer. InfluxDB overwrites a point with the same measurement, tag set
and timestamp, which is what makes a replay idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from store.line_protocol import MEASUREMENT, to_lines
from store.port import StoreError, StoreRefused, StoreUnavailable
from store.schemas import Point

WRITE_CHUNK = 10_000


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
        headers = {"Authorization": f"Token {query['token']}"} if "token" in query else {}
        self._auth_params = {"u": query["user"], "p": query.get("password", "")} if "user" in query else {}
        self._http = httpx.Client(
            base_url=f"{scheme}://{parts.hostname}:{parts.port or 8086}",
            headers=headers,
            timeout=timeout_s,
        )
        self._database_ready = False

    def _ensure_database(self) -> None:
        # CREATE DATABASE is idempotent in InfluxQL; 2.x/3.x map databases to buckets
        # and may refuse it, in which case the bucket must exist already.
        if not self._database_ready:
            self._query(f'CREATE DATABASE "{self.database}"', method="POST", ignore_errors=True)
            self._database_ready = True

    def write(self, points: Sequence[Point]) -> None:
        if not points:
            return
        self._ensure_database()
        params = {"db": self.database, "precision": "ns", **self._auth_params}
        for start in range(0, len(points), WRITE_CHUNK):
            body = to_lines(points[start : start + WRITE_CHUNK]).encode("utf-8")
            try:
                resp = self._http.post("/write", params=params, content=body)
            except httpx.HTTPError as exc:
                raise StoreUnavailable(f"InfluxDB write failed: {exc}") from exc
            if resp.status_code != 204:
                raise _write_error(resp.status_code)(
                    f"InfluxDB write answered {resp.status_code}: {resp.text[:300]}"
                )

    def read(self, sensor_id: str, start_ns: int, end_ns: int, *, limit: int = 10_000) -> list[Point]:
        where = f"sensor_id = {quote_literal(sensor_id)}"
        return self._select(where, start_ns, end_ns, limit)

    def read_kind(self, kind: str, start_ns: int, end_ns: int, *, limit: int = 1_000_000) -> list[Point]:
        return self._select(f"kind = {quote_literal(kind)}", start_ns, end_ns, limit)

    def count(self, sensor_id: str | None = None) -> int:
        self._ensure_database()
        where = f" WHERE sensor_id = {quote_literal(sensor_id)}" if sensor_id else ""
        rows = self._rows(f"SELECT count(value) FROM {MEASUREMENT}{where}")
        return int(rows[0][1]) if rows else 0

    def ping(self) -> bool:
        try:
            return self._http.get("/ping", timeout=2.0).status_code == 204
        except httpx.HTTPError:
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

    def _query(self, influxql: str, *, method: str = "GET", ignore_errors: bool = False) -> Any:
        params = {"q": influxql, "db": self.database, "epoch": "ns", **self._auth_params}
        try:
            resp = self._http.request(method, "/query", params=params)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB query failed: {exc}") from exc
        if resp.status_code != 200 and not ignore_errors:
            raise StoreError(f"InfluxDB query answered {resp.status_code}: {resp.text[:300]}")
        return resp.json() if resp.status_code == 200 else {}
