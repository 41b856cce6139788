"""Evidence for a slow request: the statement that took longest, and its query plan.

Used by ``python -m bench list --explain`` after the measurements, so the timing hooks
never run while latencies are taken. Plans go to stderr.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event

from bench.common import log
from inbox.db import Store


async def slowest_statement(
    store: Store, request: Callable[[], Awaitable[Any]]
) -> tuple[float, str, Any]:
    """Run ``request`` and return (seconds, SQL, parameters) of its slowest statement."""
    engine = store.read_engine.sync_engine
    seen: list[tuple[float, str, Any]] = []
    started: list[float] = []

    def before(*_args: Any) -> None:
        started.append(time.perf_counter())

    def after(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        seen.append((time.perf_counter() - started.pop(), statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        await request()
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return max(seen, key=lambda found: found[0])


async def explain(store: Store, label: str, request: Callable[[], Awaitable[Any]]) -> None:
    seconds, statement, parameters = await slowest_statement(store, request)
    prefix = "EXPLAIN QUERY PLAN " if store.is_sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    async with store.read_engine.connect() as conn:
        plan = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
    lines = [" | ".join(str(v) for v in row) for row in plan]
    log(f"{label}: slowest statement {seconds * 1000:.1f} ms\n{statement}\n"
        f"parameters: {parameters}\n  " + "\n  ".join(lines))
