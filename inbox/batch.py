"""Group commit for SQLite: many small writes, one durable commit.

SQLite commits are bounded by fsync (about a millisecond on this class of disk), so one
transaction per inbound message caps ingest near a thousand messages a second however
fast the code is. ``GroupCommitter`` queues concurrent units of work and runs them as
savepoints inside one transaction, then commits once. Every caller is answered only
after that commit, so an acknowledgement still means the data is on disk; a unit that
fails rolls back its own savepoint (and the events it recorded) without touching the
others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.db import Store
from inbox.events import PENDING_KEY

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[Any]]

MAX_BATCH = 200


class GroupCommitter(Generic[T]):
    def __init__(self, store: Store, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, work: Work) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            async with self.store.write() as session:
                for work, future in batch:
                    if future.cancelled():
                        continue
                    ok, value = await self._run_one(session, work)
                    outcomes.append((future, ok, value))
        except Exception as exc:  # the commit itself failed: nobody's work is stored
            for _work, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, ok, value in outcomes:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _run_one(self, session: AsyncSession, work: Work) -> tuple[bool, Any]:
        # A unit may lose a race to an earlier unit of the same batch (same message or
        # identity twice); its second try sees that unit's rows and answers from them.
        for attempt in (1, 2):
            events_before = len(session.info.get(PENDING_KEY, []))
            try:
                async with session.begin_nested():
                    return True, await work(session)
            except IntegrityError as exc:
                _forget_events(session, events_before)
                if attempt == 2:
                    return False, exc
            except Exception as exc:
                _forget_events(session, events_before)
                return False, exc
        raise AssertionError("unreachable")


def _forget_events(session: AsyncSession, keep: int) -> None:
    pending = session.info.get(PENDING_KEY)
    if pending is not None:
        del pending[keep:]
