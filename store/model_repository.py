"""Versioned trained models in the state database: metadata as JSON, the model as bytes.

Every fit is kept (version, training range, metrics), so an operator can see
which model scored a warning and roll back by version. The bytes are written
and read only by the service itself; nothing from outside is ever loaded here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from config.timeutil import as_utc

# Created and changed by the state database's migrations (alerts/migrations), not from here.
metadata = sa.MetaData()

models_table = sa.Table(
    "trained_models",
    metadata,
    sa.Column("version", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("trained_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trained_to", sa.DateTime(timezone=True), nullable=False),
    sa.Column("description", sa.JSON, nullable=False),
    sa.Column("blob", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("trained_models_kind_created", "kind", "created_at"),
)


@dataclass(frozen=True, slots=True)
class StoredModel:
    version: str
    kind: str
    trained_from: datetime
    trained_to: datetime
    description: dict[str, Any]
    created_at: datetime


class ModelRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def save(
        self,
        *,
        version: str,
        kind: str,
        trained_from: datetime,
        trained_to: datetime,
        description: dict[str, Any],
        blob: bytes,
        now: datetime,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                models_table.insert().values(
                    version=version,
                    kind=kind,
                    trained_from=trained_from,
                    trained_to=trained_to,
                    description=description,
                    blob=blob,
                    created_at=now,
                )
            )

    def latest_versions(self) -> dict[str, str]:
        """The version of the newest model of each kind: cheap to poll, no model bytes are read."""
        c = models_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(self._newest(c.kind, c.version).order_by(c.version)).all()
        return {r.kind: r.version for r in rows}

    def latest_blobs(self, kinds: Collection[str] | None = None) -> dict[str, bytes]:
        """The newest model of each kind, or of ``kinds`` only."""
        c = models_table.c
        query = self._newest(c.kind, c.blob, c.version).order_by(c.version)
        if kinds is not None:
            query = query.where(c.kind.in_(list(kinds)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {r.kind: bytes(r.blob) for r in rows}

    @staticmethod
    def _newest(*columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
        """Rows of the newest ``created_at`` per kind; on a tie the caller's last row (by version) wins."""
        c = models_table.c
        newest = sa.select(c.kind, sa.func.max(c.created_at).label("created_at")).group_by(c.kind).subquery()
        return sa.select(*columns).join(
            newest, sa.and_(c.kind == newest.c.kind, c.created_at == newest.c.created_at)
        )

    def list(self, kind: str | None = None, *, limit: int = 100) -> list[StoredModel]:
        c = models_table.c
        query = sa.select(c.version, c.kind, c.trained_from, c.trained_to, c.description, c.created_at)
        if kind:
            query = query.where(c.kind == kind)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(c.created_at.desc()).limit(limit)).all()
        return [
            StoredModel(
                version=r.version,
                kind=r.kind,
                trained_from=as_utc(r.trained_from),
                trained_to=as_utc(r.trained_to),
                description=r.description,
                created_at=as_utc(r.created_at),
            )
            for r in rows
        ]
