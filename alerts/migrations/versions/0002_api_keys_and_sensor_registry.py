"""API keys (app.auth.tables), sensors registered over the API (store.sensor_registry), and the
role of the key behind each warning event (``warning_events.actor_role``; NULL for the service's own).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "registered_sensors",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("area", sa.String(128), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=True),
        sa.Column("expected_interval_s", sa.Float(), nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(160), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("registered_sensors_revision", "registered_sensors", ["revision"])
    with op.batch_alter_table("warning_events") as batch:
        batch.add_column(sa.Column("actor_role", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("warning_events") as batch:
        batch.drop_column("actor_role")
    op.drop_index("registered_sensors_revision", table_name="registered_sensors")
    op.drop_table("registered_sensors")
    op.drop_table("api_keys")
