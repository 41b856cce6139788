"""PostgreSQL fan-out: LISTEN for event ids other processes (and this one) committed, load
those events and hand them to the local ``EventHub``.

The listener keeps one dedicated asyncpg connection. If it drops, it reconnects with
backoff and replays events committed while it was away, skipping the ones it already saw.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from inbox.db import NOTIFY_CHANNEL, Store, pg_connect_args
from inbox.events import DomainEvent
from inbox.models import Event
from inbox.models.base import utcnow

log = logging.getLogger(__name__)

SEEN_LIMIT = 10_000
REPLAY_MARGIN = timedelta(seconds=5)


def asyncpg_connect_args(database_url: str) -> tuple[str, dict[str, Any]]:
    url, connect_args = pg_connect_args(database_url)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return dsn, connect_args


class PgEventListener:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._pending: asyncio.Queue[list[int]] = asyncio.Queue()
        self.connected = asyncio.Event()
        self._lost_at: datetime | None = None

    async def run(self) -> None:
        """Listen until cancelled; the caller owns the task."""
        delay = 0.5
        loader = asyncio.create_task(self._load_loop())
        try:
            while True:
                try:
                    await self._listen_once()
                    delay = 0.5
                except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                    log.warning("event listener lost PostgreSQL (%s); retry in %.1fs", exc, delay)
                self.connected.clear()
                self._lost_at = self._lost_at or utcnow()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        finally:
            loader.cancel()

    async def _listen_once(self) -> None:
        dsn, connect_args = asyncpg_connect_args(self.store.url)
        conn = await asyncpg.connect(dsn, timeout=10, **connect_args)
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _c: closed.set())
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            self.connected.set()
            if self._lost_at is not None:
                await self._replay_since(self._lost_at - REPLAY_MARGIN)
                self._lost_at = None
            while not closed.is_set():
                try:
                    await asyncio.wait_for(closed.wait(), timeout=15)
                except TimeoutError:
                    await conn.execute("SELECT 1", timeout=10)  # detect a dead socket
        finally:
            if not conn.is_closed():
                await conn.close(timeout=5)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            ids = [int(part) for part in payload.split(",") if part]
        except ValueError:
            log.warning("ignoring malformed notification %r", payload[:100])
            return
        self._pending.put_nowait(ids)

    async def _load_loop(self) -> None:
        while True:
            ids = await self._pending.get()
            while not self._pending.empty():
                ids.extend(self._pending.get_nowait())
            try:
                await self._load(Event.id.in_(ids))
            except Exception:  # one bad batch must not stop fan-out for good
                log.exception("could not load events %s", ids[:20])

    async def _replay_since(self, since: datetime) -> None:
        await self._load(Event.created_at >= since)

    async def _load(self, condition: Any) -> None:
        async with self.store.read() as session:
            rows = await session.scalars(select(Event).where(condition).order_by(Event.id))
            events = [DomainEvent.from_row(row) for row in rows if row.id not in self._seen]
        for event in events:
            self._seen[event.id] = None
        while len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)
        self.store.hub.dispatch(events)
