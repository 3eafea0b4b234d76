"""Alembic environment: runs on the connection supportbot hands over (see Database.migrate)."""

from __future__ import annotations

from alembic import context

from bot.storage.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through supportbot (Database.migrate), which passes a connection")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
