"""Alembic environment. ``inbox.migrate`` passes an open connection in
``config.attributes["connection"]``; the ``alembic`` command line builds one from
``GUICHET_DATABASE_URL`` (see alembic.ini)."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from inbox.config import parse_database_url
from inbox.db import create_engine
from inbox.models import Base

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_environment() -> None:
    url = parse_database_url(os.environ.get("GUICHET_DATABASE_URL", "sqlite:///data/guichet.db"))
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
        await connection.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    asyncio.run(run_from_environment())
