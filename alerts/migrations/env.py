"""Alembic environment: run the migrations on the connection ``alerts.migrations`` hands over.

No alembic.ini and no URL here: the runner configures Alembic in code, takes
the database-wide lock, and passes its connection in ``config.attributes``.
"""

from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
