"""Migrations: from empty to head, step by step, idempotent, reversible, and in step with
the models (autogenerate finds nothing to do)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from inbox.db import create_engine
from inbox.migrate import alembic_config, current_revision, head_revision, upgrade
from inbox.models import Base
from tests.conftest import IS_PG

APP_TABLES = set(Base.metadata.tables)


def _revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


async def _run(database_url: str, fn: Any) -> Any:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.run_sync(fn)
            await conn.commit()
            return result
    finally:
        await engine.dispose()


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_empty_database_to_head(empty_db_url: str) -> None:
    assert await _run(empty_db_url, _tables) == set()
    before, after = await upgrade(empty_db_url)
    assert (before, after) == (None, head_revision())
    assert await current_revision(empty_db_url) == head_revision()
    assert await _run(empty_db_url, _tables) == APP_TABLES | {"alembic_version"}


async def test_upgrade_twice_is_a_no_op(empty_db_url: str) -> None:
    await upgrade(empty_db_url)
    tables = await _run(empty_db_url, _tables)
    assert await upgrade(empty_db_url) == (head_revision(), head_revision())
    assert await _run(empty_db_url, _tables) == tables


@pytest.mark.skipif(not IS_PG, reason="the advisory lock is PostgreSQL's; SQLite has one process")
async def test_concurrent_upgrades_take_turns(empty_db_url: str) -> None:
    results = await asyncio.gather(upgrade(empty_db_url), upgrade(empty_db_url))
    head = head_revision()
    assert sorted(results, key=str) == [(head, head), (None, head)]
    assert await _run(empty_db_url, _diff) == []


async def test_upgrade_one_revision_at_a_time(empty_db_url: str) -> None:
    revisions = _revisions_oldest_first()
    assert revisions and revisions[-1] == head_revision()
    assert await upgrade(empty_db_url, "base") == (None, None)
    assert await _run(empty_db_url, _tables) <= {"alembic_version"}
    previous = None
    for revision in revisions:
        assert await upgrade(empty_db_url, revision) == (previous, revision)
        previous = revision
    assert await _run(empty_db_url, _diff) == []


async def test_upgrade_from_0001_keeps_agents_and_adds_last_seen(empty_db_url: str) -> None:
    await upgrade(empty_db_url, "0001")
    await _run(empty_db_url, lambda conn: conn.exec_driver_sql(
        "INSERT INTO agents (email, name, password_hash, role, presence, presence_changed_at,"
        " active, created_at) VALUES ('ada@example.com', 'Ada', 'x', 'agent', 'online',"
        " '2026-01-01 00:00:00', TRUE, '2026-01-01 00:00:00')"
    ))
    assert await upgrade(empty_db_url) == ("0001", head_revision())
    rows = await _run(empty_db_url, lambda conn: conn.exec_driver_sql(
        "SELECT email, presence, last_seen_at FROM agents"
    ).all())
    assert [tuple(r) for r in rows] == [("ada@example.com", "online", None)]
    assert await _run(empty_db_url, _diff) == []


async def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    def downgrade(conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "base")

    await _run(db_url, downgrade)
    assert await current_revision(db_url) is None
    assert await _run(db_url, _tables) <= {"alembic_version"}
    assert await upgrade(db_url) == (None, head_revision())
    assert await _run(db_url, _diff) == []


async def test_models_and_migrations_agree(db_url: str) -> None:
    assert await _run(db_url, _diff) == []


async def test_schema_drift_is_detected(db_url: str) -> None:
    """The comparison above can fail: a missing index shows up as a difference."""
    await _run(db_url, lambda conn: conn.exec_driver_sql("DROP INDEX ix_outbox_due"))
    diff = await _run(db_url, _diff)
    assert [(entry[0], entry[1].name) for entry in diff] == [("add_index", "ix_outbox_due")]
