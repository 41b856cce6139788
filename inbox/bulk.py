"""Inserting many rows with one statement, and getting their ids back in order.

On PostgreSQL a multi-row ``INSERT ... RETURNING`` sorted by parameter order gives the
new ids. SQLite gives no such order guarantee, so SQLAlchemy would fall back to one
INSERT per row, a round trip each. Inside a SQLite write transaction no other
connection can write (``BEGIN IMMEDIATE``), so there the next ids are the current
maximum plus one, and the rows go in with one ``executemany``.

These are Core inserts: no ORM objects are built, which matters on the ingest path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.models.base import Base


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


class IdRanges:
    """Next ids of several tables, read with one statement when first needed (SQLite).

    For a write transaction that inserts into ``models`` only through ``insert_rows``
    with this object: an insert that bypassed it would take an id handed out here.
    """

    def __init__(self, *models: type[Base]) -> None:
        self.tables = [table_of(m) for m in models]
        self._next: dict[str, int] | None = None

    async def take(self, session: AsyncSession, table: Table, count: int) -> list[int]:
        if self._next is None:
            tops = (await session.execute(
                select(*(select(func.max(t.c.id)).scalar_subquery() for t in self.tables))
            )).one()
            self._next = {t.name: (top or 0) + 1 for t, top in zip(self.tables, tops, strict=True)}
        first = self._next[table.name]
        self._next[table.name] = first + count
        return list(range(first, first + count))


async def insert_rows(
    session: AsyncSession,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    ranges: IdRanges | None = None,
) -> list[int]:
    """Insert ``rows`` (dicts with the same keys, without ``id``); their ids, in order."""
    if not rows:
        return []
    table = table_of(model)
    if session.new or session.dirty:  # Core statements do not flush the session
        await session.flush()
    if session.get_bind().dialect.name == "sqlite":
        if ranges is not None and table in ranges.tables:
            ids = await ranges.take(session, table, len(rows))
        else:
            top = (await session.scalar(select(func.max(table.c.id)))) or 0
            ids = list(range(top + 1, top + 1 + len(rows)))
        await session.execute(
            insert(table), [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]
        )
        return ids
    result = await session.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True), list(rows)
    )
    return list(result.scalars())


async def insert_plain(
    session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]]
) -> None:
    """Insert ``rows`` whose keys are all given (no generated id to fetch)."""
    if rows:
        if session.new or session.dirty:
            await session.flush()
        await session.execute(insert(table_of(model)), list(rows))
