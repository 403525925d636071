"""Sensors registered over the API, kept in the state database beside the catalog file.

A deleted sensor keeps its row with ``deleted_at`` set, and every change
takes a new ``revision``: another process sees that the registry changed by
reading one number, ``max(revision)``.
"""

from __future__ import annotations

import sqlalchemy as sa

# Created and changed by the state database's migrations (alerts/migrations), not from here.
metadata = sa.MetaData()

registered_sensors = sa.Table(
    "registered_sensors",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("area", sa.String(128), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("thresholds", sa.JSON),
    sa.Column("expected_interval_s", sa.Float),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(160), nullable=False),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.Index("registered_sensors_revision", "revision"),
)
