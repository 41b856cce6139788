"""One router per PostgreSQL database: leadership through a session advisory lock.

Every ``guichet serve`` process asks for the lock; the one that gets it routes, the
others ask again every ``poll_s``. The lock belongs to one database connection, so when
the leader process dies (or its connection breaks) PostgreSQL releases it and a standby
takes over at its next try. The leader checks its connection every ``poll_s`` too and
stops routing as soon as it is gone, so two processes never both believe they lead for
longer than that; the row-locked assignment in ``inbox.actions.routing`` makes even that
overlap harmless. The leader's lock connection is named ``guichet-router-<pid>`` in
``pg_stat_activity``, so an operator can see which process routes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

APPLICATION_NAME = "guichet-router-"  # + the process id, on the lock's connection

# The lock's key: one per database and schema, so two Guichet instances sharing a
# PostgreSQL server (in separate schemas) each get a router.
LOCK_KEY = func.hashtextextended(
    func.concat(func.current_database(), ".", func.current_schema(), ".guichet-routing"), 0
)


@asynccontextmanager
async def leadership(engine: AsyncEngine, poll_s: float = 1.0) -> AsyncIterator[asyncio.Event]:
    """Wait until this process holds the lock, then yield an event set if it is lost."""
    connection = await _acquire(engine, poll_s)
    lost = asyncio.Event()
    watcher = asyncio.create_task(_watch(connection, poll_s, lost))
    try:
        yield lost
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
        with suppress(Exception):  # a broken connection has released the lock already
            await connection.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
        with suppress(Exception):
            await connection.close()


async def _acquire(engine: AsyncEngine, poll_s: float) -> AsyncConnection:
    while True:
        connection: AsyncConnection | None = None
        try:
            connection = await engine.connect()
            # Autocommit: the lock is the session's; no transaction stays open idle.
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            if await connection.scalar(select(func.pg_try_advisory_lock(LOCK_KEY))):
                # Visible in pg_stat_activity: which process routes.
                await connection.execute(
                    text(f"SET application_name = '{APPLICATION_NAME}{os.getpid()}'")
                )
                log.info("this process now routes conversations (advisory lock held)")
                return connection
        except Exception as exc:  # the database is away: keep asking
            log.warning("routing leadership: cannot ask for the lock: %s", exc)
        if connection is not None:
            with suppress(Exception):
                await connection.close()
        await asyncio.sleep(poll_s)


async def _watch(connection: AsyncConnection, poll_s: float, lost: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(poll_s)
        try:
            await asyncio.wait_for(connection.execute(text("SELECT 1")), poll_s * 5)
        except Exception as exc:
            log.warning("routing leadership lost: %s", exc)
            lost.set()
            return
