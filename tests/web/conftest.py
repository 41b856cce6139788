"""Fixtures for the web layer: the real app over a freshly migrated database, an HTTP
client speaking ASGI to it (lifespan run, so the signing secret is loaded), agents of
each role with API tokens, and a live uvicorn server for websockets.

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
from inbox.pgnotify import PgEventListener
from inbox.types import Role
from tests.web.support import Person, error_of, free_port, new_person
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


@pytest_asyncio.fixture
async def agent(store: Store) -> Person:
    return await new_person(store, "ada@support.example", Role.AGENT, ("Support",))


@pytest_asyncio.fixture
async def supervisor(store: Store) -> Person:
    return await new_person(store, "sam@support.example", Role.SUPERVISOR, ("Support", "Billing"))


@pytest_asyncio.fixture
async def admin(store: Store) -> Person:
    return await new_person(store, "alex@support.example", Role.ADMIN)


@pytest_asyncio.fixture
async def live_server(svc: Services) -> AsyncIterator[str]:
    """``host:port`` of a real uvicorn server running the app on this test's loop.

    On PostgreSQL events reach the websocket through LISTEN/NOTIFY, so the server runs
    the event listener as ``guichet serve`` does and starts only once it listens.
    """
    listener = None if svc.store.is_sqlite else PgEventListener(svc.store)
    app = create_app(svc, [listener.run] if listener else [])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, ws_max_size=MAX_FRAME_BYTES, log_level="warning",
    ))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            assert not task.done(), "uvicorn stopped during startup"
            await asyncio.sleep(0.02)
        if listener is not None:
            await listener.connected.wait()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
