"""Ids for rows inserted in bulk, so SQLite can insert many rows in one statement.

On PostgreSQL a multi-row INSERT ... RETURNING hands back the new ids in order, and the
ORM uses it. SQLite gives no such order guarantee, so SQLAlchemy falls back to one INSERT
per row, a round trip each. Inside a SQLite write transaction no other connection can
write (``BEGIN IMMEDIATE``), so the next ids are simply the current maximum plus one,
and rows that already carry their id are inserted with one ``executemany``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.models.base import Base


async def number_rows(session: AsyncSession, rows: Sequence[Base]) -> None:
    """Give new rows (not yet added to the session) their ids, on SQLite only.

    Call it just before ``session.add_all(rows)``: rows pending in the session are
    flushed first, so every id taken here is above theirs.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    by_class: dict[type[Any], list[Any]] = {}
    for row in rows:
        if getattr(row, "id", 0) is None:
            by_class.setdefault(type(row), []).append(row)
    if not by_class:
        return
    if session.new:
        await session.flush()
    classes = list(by_class)
    tops = (
        await session.execute(select(*(select(func.max(c.id)).scalar_subquery() for c in classes)))
    ).one()
    for cls, top in zip(classes, tops, strict=True):
        for n, row in enumerate(by_class[cls], start=(top or 0) + 1):
            row.id = n
