"""Detector checkpoints in the state database, written after each scored batch.

Each series' state carries the (partition, offset) of the last point it
learned, which is what lets a restarted consumer skip re-learning points
Kafka delivers a second time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from alerts import db


class CheckpointRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def save(self, states: dict[str, dict[str, Any]], *, now: datetime) -> None:
        if not states:
            return
        rows = [
            {
                "sensor_id": sid,
                "detector": st["detector"],
                "state": st["state"],
                "partition": st["position"][0] if st.get("position") else None,
                "offset": st["position"][1] if st.get("position") else None,
                "updated_at": now,
            }
            for sid, st in states.items()
        ]
        with self.engine.begin() as conn:
            insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
                db.checkpoints
            )
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

    def load(self, sensor_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(sensor_ids)
        if not ids:
            return {}
        c = db.checkpoints.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.checkpoints).where(c.sensor_id.in_(ids))).all()
        return {
            r.sensor_id: {
                "detector": r.detector,
                "state": r.state,
                "position": (r.partition, r.offset) if r.partition is not None else None,
            }
            for r in rows
        }
