"""Inserting many rows with one statement, and getting their ids back in order.

On PostgreSQL a multi-row ``INSERT ... RETURNING`` sorted by parameter order gives the
new ids. SQLite gives no such order guarantee, so SQLAlchemy would fall back to one
INSERT per row, a round trip each. Inside a SQLite write transaction no other
connection can write (``BEGIN IMMEDIATE``), so there the next ids are the current
maximum plus one, and the rows go in with one ``executemany``.

These are Core inserts: no ORM objects are built, which matters on the ingest path.
They are synchronous, like all of the ingest path's SQL: async callers run them with
``Session.run_sync``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, Table, func, insert, select
from sqlalchemy.orm import Session

from inbox.models.base import Base


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


# Statements are built once and reused: building one costs more than running it here.
@cache
def _insert(table: Table, returning: bool) -> Insert:
    statement = insert(table)
    return statement.returning(table.c.id, sort_by_parameter_order=True) if returning else statement


@cache
def _max_ids(tables: tuple[Table, ...]) -> Select[Any]:
    return select(*(select(func.max(t.c.id)).scalar_subquery() for t in tables))


class IdRanges:
    """Next ids of several tables, read with one statement when first needed (SQLite).

    For a write transaction that inserts into ``models`` only through ``insert_rows``
    with this object: an insert that bypassed it would take an id handed out here.
    """

    def __init__(self, *models: type[Base]) -> None:
        self.tables = tuple(table_of(m) for m in models)
        self._next: dict[str, int] | None = None

    def take(self, session: Session, table: Table, count: int) -> list[int]:
        if self._next is None:
            tops = session.execute(_max_ids(self.tables)).one()
            self._next = {t.name: (top or 0) + 1 for t, top in zip(self.tables, tops, strict=True)}
        first = self._next[table.name]
        self._next[table.name] = first + count
        return list(range(first, first + count))


def insert_rows(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    ranges: IdRanges | None = None,
) -> list[int]:
    """Insert ``rows`` (dicts with the same keys, without ``id``); their ids, in order."""
    if not rows:
        return []
    table = table_of(model)
    if session.new or session.dirty:  # Core statements do not flush the session
        session.flush()
    if session.get_bind().dialect.name == "sqlite":
        if ranges is not None and table in ranges.tables:
            ids = ranges.take(session, table, len(rows))
        else:
            top = session.execute(_max_ids((table,))).scalar() or 0
            ids = list(range(top + 1, top + 1 + len(rows)))
        session.execute(
            _insert(table, False), [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]
        )
        return ids
    return list(session.execute(_insert(table, True), list(rows)).scalars())


def insert_plain(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` whose keys are all given (no generated id to fetch)."""
    if rows:
        if session.new or session.dirty:
            session.flush()
        session.execute(_insert(table_of(model), False), list(rows))
