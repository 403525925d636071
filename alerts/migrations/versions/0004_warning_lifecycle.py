"""The warning lifecycle: pending, flapping, assignee, the escalation chain's responder, event-time
clock and release marks, roll-up scope and coverage, mutes and drills (alerts.lifecycle); and each
event's event time (the readings' clock a transition happened at; NULL for operators' actions).

Every new column is nullable or has a server default, so warnings stored before keep their meaning:
a grid warning, not flapping, covering nothing recorded yet.

Revision ID: 0004
Revises: 0003
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("flapping", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("responder", sa.String(64), nullable=True),
        sa.Column("responder_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clock_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("below_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("condition_level", sa.String(8), nullable=True),
        sa.Column("scope", sa.String(16), nullable=False, server_default="grid"),
        sa.Column("parent_id", sa.String(36), nullable=True),
        sa.Column("covers", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("muted_by", sa.String(200), nullable=True),
        sa.Column("drill_id", sa.String(36), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("warnings") as batch:
        for column in _columns():
            batch.add_column(column)
    op.create_index("warnings_parent", "warnings", ["parent_id"])
    with op.batch_alter_table("warning_events") as batch:
        batch.add_column(sa.Column("event_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("warning_events") as batch:
        batch.drop_column("event_time")
    op.drop_index("warnings_parent", table_name="warnings")
    with op.batch_alter_table("warnings") as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
