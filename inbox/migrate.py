"""Schema migrations with alembic, run from ``guichet migrate`` and at server start.

On PostgreSQL an advisory lock makes concurrent starts of several processes take turns,
so two servers starting together never run the same migration twice.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.db import create_engine

MIGRATIONS = Path(__file__).parent / "migrations"
ADVISORY_LOCK_ID = 0x6775696368  # "guich"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _engine(database_url: str) -> AsyncEngine:
    # A plain engine: migrations manage their own transactions.
    return create_engine(database_url)


async def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``revision``; returns the revisions before and after."""
    engine = await _engine(database_url)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID})
                await conn.commit()
            try:
                before = await conn.run_sync(_current)
                await conn.run_sync(_upgrade, revision)
                await conn.commit()
                after = await conn.run_sync(_current)
            finally:
                if conn.dialect.name == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID}
                    )
                    await conn.commit()
    finally:
        await engine.dispose()
    return before, after


async def current_revision(database_url: str) -> str | None:
    engine = await _engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()
