"""Detector checkpoints in the state database, saved just before the offsets they match are committed.

A checkpoint is a record ``{"detector", "state", "position", "log"}``:
``state`` is whatever the scoring code needs to resume (JSON), ``position``
the Kafka (partition, offset) of the last point it learned, and ``log`` the
identity of the Kafka log that position belongs to (``ingest.log_identity``).
A position is meaningful only within its log: after the embedded broker
restarts, offset 0 holds a new reading, not one already learned. The log id
is kept inside the JSON ``state`` column, beside the state it qualifies.

Sensor series checkpoint incrementally (``save_series``): the row above then
holds only the position and how many points the series has learned, its
whole state sits in ``detector_snapshots`` (rewritten rarely), and the points
learned since in ``detector_deltas``. ``load`` hands the engine all three.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from alerts import db
from config.timeutil import as_utc
from models.series_checkpoint import INCREMENTAL_FORMAT, SeriesCheckpoint

IN_CHUNK = 500  # keys per IN (...) list: well under SQLite's limit on bound parameters


def batched(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _upsert_rows(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Write the small per-key rows of ``detector_checkpoints``, replacing what a key had."""
    insert = db.dialect_insert(conn, db.checkpoints)
    columns = ("detector", "state", "partition", "offset", "updated_at")
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["sensor_id"], set_={c: insert.excluded[c] for c in columns}
        ),
        rows,
    )


# Each checkpoint of a worker rewrites a row per series it scored since the last (10,000 series:
# 2.6 to 4.2 s a checkpoint through SQLAlchemy's executemany on a loaded machine, every 5 s). On
# PostgreSQL the rows go in by COPY into a temporary table, then one INSERT ... ON CONFLICT.
# The binary COPY types of both byte tables (key, count, bytes): snapshots and deltas.
_KEY_COUNT_BYTES = ["varchar", "int8", "bytea"]
# The columns each table's upsert replaces (the key, ``sensor_id``, comes first in both), and the
# types of every column when the rows go in binary (``None``: as text).
_STAGED: dict[str, tuple[tuple[str, ...], list[str] | None]] = {
    "detector_checkpoints": (("detector", "state", "partition", "offset", "updated_at"), None),
    "detector_snapshots": (("learned", "snapshot"), _KEY_COUNT_BYTES),
}
# Rows carrying bytes go in binary: in text each byte is written as two hex digits, which the client
# spends CPU writing and the server reading back (``python -m bench.checkpoint_writes``).
BINARY = "(FORMAT BINARY)"


def _save_series_copying(
    conn: sa.Connection,
    rows: list[dict[str, Any]],
    snapshots: list[dict[str, Any]],
    deltas: list[dict[str, Any]],
) -> None:
    """``save_series`` on PostgreSQL, in the caller's transaction: the same rows, by COPY."""
    raw = conn.connection.driver_connection
    assert raw is not None  # a connection inside ``engine.begin()`` is checked out, never detached
    with raw.cursor() as cur:
        checkpoint_rows = [
            (
                r["sensor_id"],
                r["detector"],
                json.dumps(r["state"]),
                r["partition"],
                r["offset"],
                r["updated_at"],
            )
            for r in rows
        ]
        _copy_upsert(cur, "detector_checkpoints", checkpoint_rows)
        if snapshots:
            cur.execute(
                "DELETE FROM detector_deltas WHERE sensor_id = ANY(%s)",
                ([r["sensor_id"] for r in snapshots],),
            )
            _copy_upsert(
                cur, "detector_snapshots", [(r["sensor_id"], r["learned"], r["snapshot"]) for r in snapshots]
            )
        if deltas:
            with cur.copy(f"COPY detector_deltas (sensor_id, learned, points) FROM STDIN {BINARY}") as copy:
                copy.set_types(_KEY_COUNT_BYTES)
                for r in deltas:
                    copy.write_row((r["sensor_id"], r["learned"], r["points"]))


def _copy_upsert(cur: Any, table: str, rows: list[tuple[Any, ...]], *, where: str = "") -> None:
    """Insert or replace ``rows`` (the key first) by way of a temporary table emptied at commit.

    ``where``: a condition on the stored row (the table's name) and the new one (``EXCLUDED``) for
    replacing it; a row it refuses stays as it was.
    """
    updated, types = _STAGED[table]
    staging = f"staged_{table}"
    # The table's own columns and storage: a snapshot is stored uncompressed (migration 0010), and a
    # staging column left at the default would compress every snapshot once more on its way in.
    cur.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING STORAGE) "
        "ON COMMIT DELETE ROWS"
    )
    with cur.copy(f"COPY {staging} FROM STDIN {BINARY if types else ''}") as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updated)
    cur.execute(
        f"INSERT INTO {table} SELECT * FROM {staging} ON CONFLICT (sensor_id) DO UPDATE SET {sets}"
        + (f" WHERE {where}" if where else "")
    )
    cur.execute(f"TRUNCATE {staging}")  # a second call in the same transaction starts empty


class CheckpointRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def save(self, records: dict[str, dict[str, Any]], *, now: datetime) -> None:
        if not records:
            return
        rows = [
            {
                "sensor_id": key,
                "detector": rec["detector"],
                "state": {"log": rec.get("log"), "state": rec["state"]},
                "partition": rec["position"][0] if rec.get("position") else None,
                "offset": rec["position"][1] if rec.get("position") else None,
                "updated_at": now,
            }
            for key, rec in records.items()
        ]
        with self.engine.begin() as conn:
            _upsert_rows(conn, rows)

    def last_saved(self) -> dict[str, datetime]:
        """When each key's state was last saved, without reading any state: cheap enough to poll.

        A sensor's checkpoint is saved only when it brought new points, so this is
        when its latest data was scored (to within a checkpoint interval).
        """
        c = db.checkpoints.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.sensor_id, c.updated_at)).all()
        return {r.sensor_id: as_utc(r.updated_at) for r in rows}

    def save_series(self, records: Sequence[SeriesCheckpoint], *, log: str | None, now: datetime) -> None:
        """Save sensor series' incremental checkpoints in one transaction.

        A snapshot replaces the series' snapshot and clears its deltas; a delta is appended.
        """
        if not records:
            return
        rows = [
            {
                "sensor_id": r.sensor_id,
                "detector": r.detector,
                "state": {
                    "log": log,
                    "state": {"format": INCREMENTAL_FORMAT, "learned": r.learned, "health": r.health},
                },
                "partition": r.position[0] if r.position else None,
                "offset": r.position[1] if r.position else None,
                "updated_at": now,
            }
            for r in records
        ]
        snapshots = [
            {"sensor_id": r.sensor_id, "learned": r.learned, "snapshot": r.snapshot}
            for r in records
            if r.snapshot is not None
        ]
        deltas = [
            {"sensor_id": r.sensor_id, "learned": r.learned, "points": r.delta}
            for r in records
            if r.delta is not None
        ]
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                _save_series_copying(conn, rows, snapshots, deltas)
                return
            _upsert_rows(conn, rows)
            if snapshots:
                for chunk in batched([r.sensor_id for r in records if r.snapshot is not None], IN_CHUNK):
                    conn.execute(sa.delete(db.deltas).where(db.deltas.c.sensor_id.in_(chunk)))
                upsert = db.dialect_insert(conn, db.snapshots)
                conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["sensor_id"],
                        set_={c: upsert.excluded[c] for c in ("learned", "snapshot")},
                    ),
                    snapshots,
                )
            if deltas:
                conn.execute(sa.insert(db.deltas), deltas)

    def hand_over(self, records: Sequence[SeriesCheckpoint]) -> None:
        """Save snapshots that make the points logged before them needless, and drop those points.

        For a worker stopping or giving partitions up (``DetectionSink.hand_over``): each record's
        snapshot is its series' state at the position its checkpoint row already holds, so the
        row stays as it is (its ``updated_at`` says when the series last brought data, which
        ``app.silence`` reads). A snapshot replaces only one that learned no more than it, and
        only the deltas it covers go: a worker that lost its partitions without knowing it
        cannot take a newer owner's state back.
        """
        rows = [(r.sensor_id, r.learned, r.snapshot) for r in records if r.snapshot is not None]
        if not rows:
            return
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                raw = conn.connection.driver_connection
                assert raw is not None  # checked out inside ``engine.begin()``
                with raw.cursor() as cur:
                    cur.execute(
                        "DELETE FROM detector_deltas d USING unnest(%s::varchar[], %s::int8[]) "
                        "AS h(id, learned) WHERE d.sensor_id = h.id AND d.learned <= h.learned",
                        ([r[0] for r in rows], [r[1] for r in rows]),
                    )
                    _copy_upsert(
                        cur,
                        "detector_snapshots",
                        rows,
                        where="detector_snapshots.learned <= EXCLUDED.learned",
                    )
                return
            d = db.deltas.c
            conn.execute(
                sa.delete(db.deltas).where(
                    d.sensor_id == sa.bindparam("id"), d.learned <= sa.bindparam("upto")
                ),
                [{"id": sid, "upto": learned} for sid, learned, _ in rows],
            )
            upsert = db.dialect_insert(conn, db.snapshots)
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=["sensor_id"],
                    set_={c: upsert.excluded[c] for c in ("learned", "snapshot")},
                    where=db.snapshots.c.learned <= upsert.excluded.learned,
                ),
                [{"sensor_id": sid, "learned": learned, "snapshot": blob} for sid, learned, blob in rows],
            )

    def load(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The saved checkpoints of ``keys`` that exist.

        An incremental one's ``state`` carries its snapshot, ``learned`` as of that
        snapshot, and the deltas after it in order, for ``ScoringEngine.restore``.
        """
        ids = list(keys)
        if not ids:
            return {}
        c = db.checkpoints.c
        out: dict[str, dict[str, Any]] = {}
        incremental: list[str] = []
        with self.engine.connect() as conn:
            for chunk in batched(ids, IN_CHUNK):
                for r in conn.execute(sa.select(db.checkpoints).where(c.sensor_id.in_(chunk))):
                    state = r.state.get("state", {})
                    out[r.sensor_id] = {
                        "detector": r.detector,
                        "state": state,
                        "log": r.state.get("log"),
                        "position": (r.partition, r.offset) if r.partition is not None else None,
                    }
                    if state.get("format") == INCREMENTAL_FORMAT:
                        incremental.append(r.sensor_id)
            snapshots, deltas = self._incremental(conn, incremental)
        for sensor_id in incremental:
            snapshot = snapshots.get(sensor_id)
            if snapshot is None:  # cannot happen short of a hand edit: start the series afresh
                del out[sensor_id]
                continue
            learned, blob = snapshot
            out[sensor_id]["state"] = {
                **out[sensor_id]["state"],
                "learned": learned,
                "snapshot": blob,
                "deltas": [points for at, points in deltas[sensor_id] if at > learned],
            }
        return out

    @staticmethod
    def _incremental(
        conn: sa.Connection, ids: list[str]
    ) -> tuple[dict[str, tuple[int, bytes]], dict[str, list[tuple[int, bytes]]]]:
        if conn.dialect.name == "postgresql":
            return _incremental_binary(conn, ids)
        snapshots: dict[str, tuple[int, bytes]] = {}
        deltas: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        s, d = db.snapshots.c, db.deltas.c
        for chunk in batched(ids, IN_CHUNK):
            for r in conn.execute(
                sa.select(s.sensor_id, s.learned, s.snapshot).where(s.sensor_id.in_(chunk))
            ):
                snapshots[r.sensor_id] = (int(r.learned), bytes(r.snapshot))
            query = sa.select(d.sensor_id, d.learned, d.points).where(d.sensor_id.in_(chunk))
            for r in conn.execute(query.order_by(d.sensor_id, d.learned)):
                deltas[r.sensor_id].append((int(r.learned), bytes(r.points)))
        return snapshots, deltas


def _incremental_binary(
    conn: sa.Connection, ids: list[str]
) -> tuple[dict[str, tuple[int, bytes]], dict[str, list[tuple[int, bytes]]]]:
    """``_incremental`` on PostgreSQL, with the rows in binary: as text the server writes every byte
    as two hex digits and the worker reads them back, for every snapshot a restore loads."""
    raw = conn.connection.driver_connection
    assert raw is not None  # a connection inside ``engine.connect()`` is checked out, never detached
    snapshots: dict[str, tuple[int, bytes]] = {}
    deltas: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    with raw.cursor(binary=True) as cur:
        cur.execute(
            "SELECT sensor_id, learned, snapshot FROM detector_snapshots WHERE sensor_id = ANY(%s)", (ids,)
        )
        for sensor_id, learned, blob in cur:
            snapshots[sensor_id] = (learned, bytes(blob))
        cur.execute(
            "SELECT sensor_id, learned, points FROM detector_deltas WHERE sensor_id = ANY(%s) "
            "ORDER BY sensor_id, learned",
            (ids,),
        )
        for sensor_id, learned, points in cur:
            deltas[sensor_id].append((learned, bytes(points)))
    return snapshots, deltas
