"""Detector checkpoints in the state database, saved just before the offsets they match are committed.

A checkpoint is a record ``{"detector", "state", "position", "log"}``:
``state`` is whatever the scoring code needs to resume (JSON), ``position``
the Kafka (partition, offset) of the last point it learned, and ``log`` the
identity of the Kafka log that position belongs to (``ingest.log_identity``).
A position is meaningful only within its log: after the embedded broker
restarts, offset 0 holds a new reading, not one already learned. The log id
is kept inside the JSON ``state`` column, beside the state it qualifies.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from alerts import db
from config.timeutil import as_utc


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
            insert = db.dialect_insert(conn, db.checkpoints)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["sensor_id"],
                    set_={
                        c: insert.excluded[c]
                        for c in ("detector", "state", "partition", "offset", "updated_at")
                    },
                ),
                rows,
            )

    def last_saved(self) -> dict[str, datetime]:
        """When each key's state was last saved, without reading any state: cheap enough to poll.

        A sensor's checkpoint is saved only when it brought new points, so this is
        when its latest data was scored (to within a checkpoint interval).
        """
        c = db.checkpoints.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.sensor_id, c.updated_at)).all()
        return {r.sensor_id: as_utc(r.updated_at) for r in rows}

    def load(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(keys)
        if not ids:
            return {}
        c = db.checkpoints.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.checkpoints).where(c.sensor_id.in_(ids))).all()
        return {
            r.sensor_id: {
                "detector": r.detector,
                "state": r.state.get("state", {}),
                "log": r.state.get("log"),
                "position": (r.partition, r.offset) if r.partition is not None else None,
            }
            for r in rows
        }
