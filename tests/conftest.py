"""Shared fixtures. The database backend comes from GUICHET_TEST_DATABASE_URL:

* unset: a fresh SQLite file per test;
* a PostgreSQL URL: a fresh schema per test inside that database, dropped afterwards.

Every test database is created by the real migrations, never by ``create_all``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from inbox.blobs import BlobStore
from inbox.config import parse_database_url
from inbox.db import Store
from inbox.inbound import InboundMessage, Sender
from inbox.ingest import Ingestor
from inbox.migrate import upgrade
from inbox.types import Channel

PG_URL = os.environ.get("GUICHET_TEST_DATABASE_URL", "")
IS_PG = PG_URL.startswith("postgres")
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "email"


def _pg_admin_dsn() -> str:
    return make_url(parse_database_url(PG_URL)).set(drivername="postgresql").render_as_string(
        hide_password=False
    )


async def create_database(tmp_path: Path, *, migrate: bool = True) -> tuple[str, str | None]:
    """A new empty database URL (and the PostgreSQL schema it lives in)."""
    if not IS_PG:
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", None
    schema = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    url = parse_database_url(PG_URL) + ("&" if "?" in PG_URL else "?")
    return url + f"options=-csearch_path%3D{schema}", schema


async def drop_schema(schema: str | None) -> None:
    if schema is None:
        return
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def empty_db_url(tmp_path: Path) -> AsyncIterator[str]:
    url, schema = await create_database(tmp_path)
    yield url
    await drop_schema(schema)


@pytest_asyncio.fixture
async def db_url(empty_db_url: str) -> str:
    await upgrade(empty_db_url)
    return empty_db_url


@pytest_asyncio.fixture
async def store(db_url: str, tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(db_url, tmp_path)
    yield store
    await store.close()


@pytest.fixture
def ingestor(store: Store, tmp_path: Path) -> Ingestor:
    return Ingestor(store, BlobStore(tmp_path / "attachments"))


def inbound(
    external_id: str = "msg-1",
    *,
    channel: Channel = Channel.EMAIL,
    sender: str = "customer@example.com",
    text: str = "Hello, my order has not arrived.",
    subject: str = "Where is my order?",
    **kwargs: object,
) -> InboundMessage:
    """An ``InboundMessage`` with sensible defaults, for tests."""
    return InboundMessage(
        channel=channel,
        external_id=external_id,
        sender=Sender(sender, kwargs.pop("name", None)),  # type: ignore[arg-type]
        text=text,
        subject=subject,
        received_at=kwargs.pop("received_at", datetime.now(UTC)),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )
