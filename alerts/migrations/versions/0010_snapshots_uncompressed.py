"""Detector snapshots are stored uncompressed on PostgreSQL (issue 12).

A snapshot is a few KiB of raw floats that pglz, the default for a value past
about 2 KiB, shrinks little and at a high price: saving 5,000 snapshots of
about 8.4 KB cost the server 1.45 s of CPU compressed and 0.42 s stored as
they are (``python -m bench.checkpoint_writes``), on a machine whose two
cores the ingest workers need. ``EXTERNAL`` keeps large values out of line, as
before, without compressing them. SQLite stores blobs as given and has no
such setting.

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
