"""A version of the warnings table, moved by triggers in the transaction that changes it (issue 12).

The API kept pages of warnings while the whole database was unchanged; with
ingest committing its checkpoints several times a second, pages were made
again as often, though warnings changed about once a second. Triggers, not
the code, move the counter, so no writer can forget to.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BUMP = "UPDATE table_versions SET version = version + 1 WHERE name = 'warnings'"
SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    op.create_table(
        "table_versions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.execute("INSERT INTO table_versions (name, version) VALUES ('warnings', 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION citywarn_warnings_changed() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER warnings_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON warnings "
            "FOR EACH STATEMENT EXECUTE FUNCTION citywarn_warnings_changed()"
        )
        return
    for event in SQLITE_EVENTS:  # SQLite's triggers are per row
        op.execute(
            f"CREATE TRIGGER warnings_version_{event.lower()} AFTER {event} ON warnings BEGIN {BUMP}; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER warnings_version ON warnings")
        op.execute("DROP FUNCTION citywarn_warnings_changed()")
    else:
        for event in SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER warnings_version_{event.lower()}")
    op.drop_table("table_versions")
