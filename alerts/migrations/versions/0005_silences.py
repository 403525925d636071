"""Silences and maintenance windows (alerts.silence_store).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("sensor", sa.String(128), nullable=True),
        sa.Column("area", sa.String(128), nullable=True),
        sa.Column("hazard", sa.String(64), nullable=True),
        sa.Column("level", sa.String(8), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("weekdays", sa.String(32), nullable=True),
        sa.Column("window_start", sa.String(5), nullable=True),
        sa.Column("window_end", sa.String(5), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(128), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("silences_changed", "silences", ["changed_at"])


def downgrade() -> None:
    op.drop_index("silences_changed", table_name="silences")
    op.drop_table("silences")
