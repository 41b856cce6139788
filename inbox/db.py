"""The database handle: engines, sessions, and how writes are serialised.

SQLite allows one writer at a time. Guichet gives it one: a dedicated write connection,
taken under an ``asyncio.Lock`` and opened with ``BEGIN IMMEDIATE``, so transactions never
fail halfway with "database is locked". Reads use a separate pool and, with WAL, never
wait for the writer. Commits are durable (``synchronous=FULL``).

PostgreSQL needs none of that: both handles are one pooled engine, and concurrency is
settled by row locks and unique constraints.

``write_sync`` runs a synchronous unit of work (plain SQLAlchemy ``Session`` code) in a
write transaction. The ingest path uses it: on SQLite it runs in a dedicated writer
thread on a synchronous connection, under the same lock as ``write``, because every
statement through the async driver costs a round trip between threads (about 1 ms of
CPU here, against some 0.1 ms on a plain connection). On PostgreSQL it runs through
``AsyncSession.run_sync`` on the pooled async engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine, event, func, select
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from inbox.config import Settings
from inbox.events import DomainEvent, EventHub, pending_events

P = ParamSpec("P")
T = TypeVar("T")

NOTIFY_CHANNEL = "guichet_events"
# PostgreSQL caps a NOTIFY payload at 8000 bytes; event ids are sent in chunks below that.
NOTIFY_CHUNK = 500


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or opened."""


def pg_connect_args(database_url: str) -> tuple[str, dict[str, Any]]:
    """Split libpq's ``options=-c name=value ...`` off a PostgreSQL URL into asyncpg
    ``server_settings``, so ``?options=-csearch_path%3Dmy_schema`` works as with psql."""
    url = make_url(database_url)
    options = url.query.get("options")
    if url.get_backend_name() != "postgresql" or not options:
        return database_url, {}
    if isinstance(options, tuple):
        options = " ".join(options)
    settings: dict[str, str] = {}
    for part in options.replace("-c ", "-c").split():
        if not part.startswith("-c") or "=" not in part:
            raise ValueError(f"unsupported PostgreSQL option {part!r}; only -cNAME=VALUE")
        name, _, value = part[2:].partition("=")
        settings[name] = value
    stripped = url.difference_update_query(["options"]).render_as_string(hide_password=False)
    return stripped, {"server_settings": settings}


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """``create_async_engine`` that understands libpq ``options`` on PostgreSQL URLs."""
    url, connect_args = pg_connect_args(database_url)
    if connect_args:
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), **connect_args}
    return create_async_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # isolation_level=None hands transaction control to the "begin" hook below.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_hooks(engine: Engine, *, writer: bool) -> None:
    event.listen(engine, "connect", _sqlite_pragmas)
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


def _make_sqlite_engine(url: str, *, writer: bool) -> AsyncEngine:
    engine = create_async_engine(
        url, pool_size=1 if writer else 8, max_overflow=0, pool_timeout=60
    )
    _sqlite_hooks(engine.sync_engine, writer=writer)
    return engine


def _make_sqlite_sync_writer(url: str) -> Engine:
    """A plain pysqlite engine on the same file, used only from the writer thread."""
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_sync_engine(
        sync_url, pool_size=1, max_overflow=0, pool_timeout=60,
        connect_args={"check_same_thread": False},
    )
    _sqlite_hooks(engine, writer=True)
    return engine


class Store:
    """Owns the engines. One per process; passed explicitly, never a module global."""

    def __init__(self, database_url: str, data_dir: Path, hub: EventHub | None = None) -> None:
        self.url = database_url
        self.hub = hub or EventHub()
        self.data_dir = data_dir
        self.is_sqlite = make_url(database_url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            database = make_url(database_url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _make_sqlite_engine(database_url, writer=True)
            self.read_engine = _make_sqlite_engine(database_url, writer=False)
            self.sync_write_engine: Engine | None = _make_sqlite_sync_writer(database_url)
            self._writer_thread: ThreadPoolExecutor | None = ThreadPoolExecutor(
                1, thread_name_prefix="guichet-sqlite-writer"
            )
        else:
            self.write_engine = create_engine(
                database_url, pool_size=10, max_overflow=10, pool_pre_ping=True
            )
            self.read_engine = self.write_engine
            self.sync_write_engine = None
            self._writer_thread = None
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.database_url, settings.data_dir)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction, committed on a clean exit.

        Events recorded in it are published only after the commit succeeded.
        """
        if self._write_lock is None:
            async with AsyncSession(self.write_engine, expire_on_commit=False) as session:
                async with session.begin():
                    yield session
                    await self._notify_in_transaction(session)
            return
        async with self._write_lock:
            async with AsyncSession(self.write_engine, expire_on_commit=False) as session:
                async with session.begin():
                    yield session
                events = pending_events(session)
        if events:
            self.hub.dispatch(events)

    async def write_sync(
        self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``work(session, *args)`` in a write transaction, committed if it returns.

        Like ``write``, events it records are published only after the commit.
        """
        if self._write_lock is None:
            async with self.write() as session:
                return await session.run_sync(work, *args, **kwargs)
        assert self.sync_write_engine is not None and self._writer_thread is not None
        engine = self.sync_write_engine

        def transaction() -> tuple[T, list[DomainEvent]]:
            with Session(engine, expire_on_commit=False) as session:
                with session.begin():
                    result = work(session, *args, **kwargs)
                return result, pending_events(session)

        loop = asyncio.get_running_loop()
        async with self._write_lock:
            result, events = await loop.run_in_executor(self._writer_thread, transaction)
        if events:
            self.hub.dispatch(events)
        return result

    async def _notify_in_transaction(self, session: AsyncSession) -> None:
        # NOTIFY is transactional: listeners (this process included) hear it at commit.
        ids = [str(e.id) for e in pending_events(session)]
        for start in range(0, len(ids), NOTIFY_CHUNK):
            payload = ",".join(ids[start : start + NOTIFY_CHUNK])
            await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, payload)))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading; it is rolled back, never committed."""
        async with AsyncSession(self.read_engine, expire_on_commit=False) as session:
            async with session.begin():
                yield session

    async def close(self) -> None:
        if self._writer_thread is not None and self.sync_write_engine is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._writer_thread, self.sync_write_engine.dispose
            )
            self._writer_thread.shutdown(wait=True)
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
