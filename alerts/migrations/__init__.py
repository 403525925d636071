"""The state database's schema history (Alembic), and applying it safely at every start.

One history covers every table of the state database: the warning tables of
``alerts.db`` and the report and model tables of ``store/``. Every start
upgrades to head; several processes may start at once on a fresh database,
so the upgrade runs in one transaction that first takes a database-wide lock:
``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` (the write lock)
on SQLite. The others wait, then find the schema at head and do nothing.

A database built by ``metadata.create_all`` before migrations existed has the
tables but no ``alembic_version``: it is stamped at the initial revision,
not created again.

Alembic is configured in code (no alembic.ini). A new revision is a file in
``versions/`` whose ``down_revision`` is the current head;
``tests/test_migrations.py`` fails until the migrated schema equals the tables
in the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

INITIAL_REVISION = "0001"
# What create_all built before migrations; all must be there to stamp such a database.
PRE_MIGRATION_TABLES = frozenset(
    {"warnings", "warning_evidence", "warning_events", "detector_checkpoints", "reports", "trained_models"}
)
# Any fixed 64-bit number, unique among this database's advisory locks: "citywarn" in ASCII.
_ADVISORY_LOCK_KEY = 0x63697479_7761726E


class SchemaError(RuntimeError):
    """The state database cannot be brought to the current schema without a person deciding how."""


def _config(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision in the history."""
    head = ScriptDirectory(str(Path(__file__).parent)).get_current_head()
    assert head is not None, "the migration history is empty"
    return head


def history() -> list[str]:
    """Every revision, oldest first: what a fresh database applies."""
    script = ScriptDirectory(str(Path(__file__).parent))
    return [rev.revision for rev in reversed(list(script.iterate_revisions("head", "base")))]


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at; None before the first migration."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: sa.Engine) -> list[str]:
    """Apply pending migrations under the database-wide lock; returns the revisions applied, oldest first."""
    with _exclusive(engine) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        if before is None and _built_before_migrations(conn):
            command.stamp(_config(conn), INITIAL_REVISION)
            before = INITIAL_REVISION
        command.upgrade(_config(conn), "head")
    script = ScriptDirectory(str(Path(__file__).parent))
    applied = [rev.revision for rev in script.iterate_revisions("head", before or "base")]
    return [rev for rev in reversed(applied) if rev != before]


@contextmanager
def _exclusive(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction holding the lock that serialises concurrent upgrades; committed on success."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Released by the commit or rollback that ends the transaction.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        elif conn.dialect.name == "sqlite":
            # pysqlite would begin lazily, at the first INSERT; take the write lock now instead, so a
            # second process waits (busy timeout) before it reads the schema version.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn
        conn.commit()


def _built_before_migrations(conn: sa.Connection) -> bool:
    """True for a create_all database (tables, no version); SchemaError if only part of it is there."""
    present = set(sa.inspect(conn).get_table_names()) & PRE_MIGRATION_TABLES
    if not present:
        return False
    missing = PRE_MIGRATION_TABLES - present
    if missing:
        raise SchemaError(
            f"the state database has tables from before migrations but lacks {', '.join(sorted(missing))}; "
            "it is older than the first migration and needs upgrading by hand"
        )
    return True
