"""Detector snapshots are stored uncompressed on PostgreSQL (issue 12).

A snapshot is KiBs of raw floats, which pglz (the default past about 2 KiB)
tried to compress and then stored as they were: saving 5,000 snapshots of
8,559 bytes cost the server 1.53 to 1.55 s of CPU so, and 0.48 s stored as
they are, with the same bytes on disk (``python -m bench.checkpoint_writes``,
text COPY both), on a machine whose two cores the ingest workers need.
``EXTERNAL`` keeps large values out of line, as before, without compressing
them. SQLite stores blobs as given and has no such setting.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Rows written from now on; existing ones keep their form until they are next rewritten.
        op.execute("ALTER TABLE detector_snapshots ALTER COLUMN snapshot SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE detector_snapshots ALTER COLUMN snapshot SET STORAGE EXTENDED")
