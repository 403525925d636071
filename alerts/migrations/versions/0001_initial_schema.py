"""The state database as ``metadata.create_all`` built it before migrations.

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "warnings",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("hazard", sa.String(64), nullable=False),
        sa.Column("area", sa.String(128), nullable=False),
        sa.Column("open_key", sa.String(200), nullable=True),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("certainty", sa.String(16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("exercise", sa.Boolean(), nullable=False),
        sa.Column("headline", sa.String(300), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("recommendations", sa.JSON(), nullable=False),
        sa.Column("signal_count", sa.Integer(), nullable=False),
        sa.Column("first_signal_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_signal_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_key"),
    )
    op.create_index("warnings_area", "warnings", ["area"])
    op.create_index("warnings_status_updated", "warnings", ["status", "updated_at"])
    op.create_table(
        "warning_evidence",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("warning_id", sa.String(36), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("sensor_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("level", sa.String(8), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("report_ids", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["warning_id"], ["warnings.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("warning_id", "sensor_id", "observed_at", name="evidence_once"),
    )
    op.create_table(
        "warning_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("warning_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("from_level", sa.String(8), nullable=True),
        sa.Column("to_level", sa.String(8), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["warning_id"], ["warnings.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("warning_events_warning", "warning_events", ["warning_id", "id"])
    op.create_table(
        "detector_checkpoints",
        sa.Column("sensor_id", sa.String(128), nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id"),
    )
    op.create_table(
        "reports",
        sa.Column("report_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("category_inferred", sa.Boolean(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("area", sa.String(128), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("outside_areas", sa.Boolean(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("report_id"),
    )
    op.create_index("reports_area_ts", "reports", ["area", "ts_ns"])
    op.create_index("reports_category_ts", "reports", ["category", "ts_ns"])
    op.create_table(
        "trained_models",
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("trained_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trained_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("description", sa.JSON(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_index("trained_models_kind_created", "trained_models", ["kind", "created_at"])


def downgrade() -> None:
    for table in (
        "trained_models",
        "reports",
        "detector_checkpoints",
        "warning_events",
        "warning_evidence",
        "warnings",
    ):
        op.drop_table(table)
