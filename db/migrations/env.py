"""Alembic environment: runs on the connection the vault hands over (see vault.store.migrate).

One history for the platform's database: the vault's tables (0001) and the API's (0002 on).
Migrations are written by hand; ``target_metadata`` only serves comparisons.
"""

from __future__ import annotations

from alembic import context

from db.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
