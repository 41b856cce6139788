"""Fixtures for the web layer: the real app over a private migrated database (a copy of
one seeded template, see ``tests.web.databases``), an HTTP client speaking ASGI to it
(lifespan run, so the signing secret is loaded), an agent, a supervisor and an admin with
API tokens, and a live uvicorn server for websockets.

Every response the ``client`` fixture receives is checked on the way: an error answer
never carries a stack trace, and an ``/api`` error always has the one documented shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette

from inbox.config import Settings, load_settings
from inbox.db import Store
from inbox.ingest import Ingestor
from tests.web.databases import Template
from tests.web.support import Person, error_of, free_port
from web.app import create_app
from web.services import Services
from web.ws import MAX_FRAME_BYTES


async def check_response(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    assert "Traceback" not in response.text, response.text[:2000]
    if response.request.url.path.startswith("/api/"):
        error_of(response, response.status_code)


def make_client(app: Starlette, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 50000))
    return httpx.AsyncClient(
        transport=transport, base_url="http://testserver",
        event_hooks={"response": [check_response]},
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def template(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Template]:
    template = await Template.build(tmp_path_factory.mktemp("template"))
    yield template
    await template.close()


@pytest_asyncio.fixture
async def db_url(template: Template, tmp_path: Path) -> AsyncIterator[str]:
    """Overrides the root fixture: a private copy of the seeded template."""
    url, database, schema = await template.copy(tmp_path)
    yield url
    template.discard(database, schema)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return load_settings({"database_url": db_url, "data_dir": str(tmp_path)}, environ={})


@pytest.fixture
def svc(settings: Settings, store: Store, ingestor: Ingestor) -> Services:
    return Services(settings, store, ingestor)


@pytest_asyncio.fixture
async def app(svc: Services) -> AsyncIterator[Starlette]:
    app = create_app(svc)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as client:
        yield client


@pytest.fixture
def agent(template: Template, db_url: str) -> Person:
    """Ada, an agent in team Support."""
    return template.people["agent"]


@pytest.fixture
def supervisor(template: Template, db_url: str) -> Person:
    """Sam, a supervisor in teams Support and Billing."""
    return template.people["supervisor"]


@pytest.fixture
def admin(template: Template, db_url: str) -> Person:
    """Alex, an admin in no team."""
    return template.people["admin"]


@pytest_asyncio.fixture
async def live_server(svc: Services) -> AsyncIterator[str]:
    """``host:port`` of a real uvicorn server running the app on this test's loop.

    On PostgreSQL the app's lifespan starts the LISTEN/NOTIFY event listener and waits
    for it, so once uvicorn reports started, events reach the websockets.
    """
    app = create_app(svc)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, ws_max_size=MAX_FRAME_BYTES, log_level="warning",
    ))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            assert not task.done(), "uvicorn stopped during startup"
            await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
