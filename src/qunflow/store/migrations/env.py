"""Alembic environment: runs on the connection qunflow hands it (see store.db.migrate)."""

from alembic import context

from qunflow.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `qunflow init` or qunflow.store.db.migrate")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
