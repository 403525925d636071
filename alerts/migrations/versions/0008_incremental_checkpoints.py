"""Incremental detector checkpoints: a binary snapshot per series and the points learned since (issue 12).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detector_snapshots",
        sa.Column("sensor_id", sa.String(128), nullable=False),
        sa.Column("learned", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id"),
    )
    op.create_table(
        "detector_deltas",
        sa.Column("sensor_id", sa.String(128), nullable=False),
        sa.Column("learned", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "learned"),
    )


def downgrade() -> None:
    op.drop_table("detector_deltas")
    op.drop_table("detector_snapshots")
