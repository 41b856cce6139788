"""Per-test databases for the web tests, copied from one template per session.

Every web test needs a migrated database with an agent, a supervisor and an admin. Running
the migrations and three argon2 hashes for each of some seventy tests would cost most of
the suite's time, so the template is built once, by the real migrations and the real
``create_agent``, and each test gets a private copy:

* SQLite: a copy of the template file;
* PostgreSQL: ``CREATE DATABASE ... TEMPLATE`` on the server of GUICHET_TEST_DATABASE_URL,
  dropped in the background after the test. Without the CREATEDB privilege it falls back
  to a fresh schema per test, migrated and seeded like the template.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from inbox.config import parse_database_url
from inbox.db import Store
from inbox.migrate import upgrade
from inbox.types import Role
from tests.conftest import IS_PG, PG_URL, create_database, drop_schema
from tests.web.support import Person, new_person

PEOPLE = (
    ("agent", "ada@support.example", Role.AGENT, ("Support",)),
    ("supervisor", "sam@support.example", Role.SUPERVISOR, ("Support", "Billing")),
    ("admin", "alex@support.example", Role.ADMIN, ()),
)


async def seed(url: str, data_dir: Path) -> dict[str, Person]:
    await upgrade(url)
    store = Store(url, data_dir)
    try:
        return {key: await new_person(store, email, role, teams)
                for key, email, role, teams in PEOPLE}
    finally:
        await store.close()


def _pg_url(database: str) -> str:
    return make_url(parse_database_url(PG_URL)).set(database=database).render_as_string(
        hide_password=False
    )


def _pg_admin_dsn() -> str:
    return make_url(parse_database_url(PG_URL)).set(drivername="postgresql").render_as_string(
        hide_password=False
    )


@dataclass
class Template:
    """The seeded template and the people in it; ``copy`` makes a private database."""

    root: Path
    people: dict[str, Person] = field(default_factory=dict)
    pg_name: str | None = None
    _drops: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def build(cls, root: Path) -> Template:
        template = cls(root)
        if not IS_PG:
            template.people = await seed(f"sqlite+aiosqlite:///{root / 'template.db'}", root)
            return template
        name = "guichet_web_" + secrets.token_hex(5)
        try:
            await template._admin(f'CREATE DATABASE "{name}"')
        except asyncpg.InsufficientPrivilegeError:
            return template  # no CREATEDB: every test migrates and seeds its own schema
        template.pg_name = name
        template.people = await seed(_pg_url(name), root)
        return template

    async def copy(self, tmp_path: Path) -> tuple[str, str | None, str | None]:
        """A private database URL, plus the PostgreSQL database or schema to drop."""
        if not IS_PG:
            shutil.copyfile(self.root / "template.db", tmp_path / "test.db")
            return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", None, None
        if self.pg_name is None:
            url, schema = await create_database(tmp_path)
            self.people = await seed(url, tmp_path)
            return url, None, schema
        name = f"{self.pg_name}_{secrets.token_hex(4)}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_name}"')
        return _pg_url(name), name, None

    def discard(self, database: str | None, schema: str | None) -> None:
        """Drop a copy without making the next test wait for it."""
        if database is not None:
            self._drops.append(
                asyncio.create_task(self._admin(f'DROP DATABASE "{database}" WITH (FORCE)'))
            )
        elif schema is not None:
            self._drops.append(asyncio.create_task(drop_schema(schema)))

    async def close(self) -> None:
        await asyncio.gather(*self._drops)
        if self.pg_name is not None:
            await self._admin(f'DROP DATABASE "{self.pg_name}" WITH (FORCE)')

    @staticmethod
    async def _admin(statement: str) -> None:
        conn = await asyncpg.connect(_pg_admin_dsn())
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
