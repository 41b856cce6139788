"""Batching: many concurrent callers, one unit of work for all of them.

A commit costs a disk flush, and every statement a round trip, so storing inbound
messages one transaction each caps ingest far below what the disk allows. ``Batcher``
queues items from concurrent callers and hands them, up to ``max_batch`` at a time, to
one handler call, which stores them in one transaction with a constant number of
statements. Each caller is answered only when the handler returns, that is after the
commit: an acknowledgement still means the data is on disk.

The handler answers per item, so one bad item can fail alone (the ingest handler retries
a failed batch item by item). Batches run one after another: while one commits, the
next fills up, so the batch size follows the load by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")

MAX_BATCH = 200

Handler = Callable[[Sequence[I]], Awaitable[Sequence[R | Exception]]]


class Batcher(Generic[I, R]):
    def __init__(self, handler: Handler[I, R], max_batch: int = MAX_BATCH) -> None:
        self.handler = handler
        self.max_batch = max_batch
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> R:
        return await self._enqueue([item])[0]

    async def submit_many(self, items: Sequence[I]) -> list[R | Exception]:
        """Queue all of ``items`` at once, so they share batches; an outcome per item."""
        futures = self._enqueue(items)
        return list(await asyncio.gather(*futures, return_exceptions=True))  # type: ignore[arg-type]

    def _enqueue(self, items: Sequence[I]) -> list[asyncio.Future[R]]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        self._queue.extend(zip(items, futures, strict=True))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return futures

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            # A caller that gave up before its batch started is not worked for.
            batch = [(item, future) for item, future in batch if not future.cancelled()]
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self.handler([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"batch handler answered {len(outcomes)} of {len(batch)}")
        except BaseException as exc:  # nothing of this batch is stored
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:  # cancelled, or the process is stopping
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
