"""Alembic environment: runs on a connection handed in by storage.migrate."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from storage.models import Base, UTCDateTime

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only used through storage.migrate
    raise RuntimeError("run migrations through `ausweg migrate` (storage.migrate.upgrade)")


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render the project's column types as plain SQLAlchemy types in revisions."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


context.configure(
    connection=connection,
    render_item=render_item,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
