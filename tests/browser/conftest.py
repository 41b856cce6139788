"""Browser fixtures: headless Debian Chromium driven by Playwright's async API, and a live
Guichet served by uvicorn as a task on the session's event loop.

The server is built exactly as ``guichet serve`` builds it (``web.server``): real store,
real workers (on PostgreSQL the ``LISTEN`` fan-out too), a freshly migrated database with
the demo data. Each test gets its own database and its own browser context.

Never run ``playwright install``: it downloads a browser and fails here. Chromium comes
from Debian (``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, async_playwright

from inbox.config import load_settings
from inbox.migrate import upgrade
from tests.conftest import create_database, drop_schema
from web.demo import seed_demo
from web.server import build_services, uvicorn_server, workers
from web.services import Services

# Launch options for Debian's Chromium (our copy of the shared browser recipe).
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",  # no outbound traffic: the network is closed here
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LAUNCH = {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}

DEMO_AGENT = "agent@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    url: str
    svc: Services


@dataclass
class Browsing:
    """A page plus what it did that it never should: dialogs, uncaught script errors and
    Content-Security-Policy violations (which mean markup got injected somewhere)."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [f"dialog: {d}" for d in self.dialogs] + self.errors


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    # uvicorn starts once the app's lifespan has run, which on PostgreSQL waits for the
    # LISTEN connection: from here on no event can be missed.
    while not server.started:
        assert not task.done(), "uvicorn stopped during startup"
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture(loop_scope="session")
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    url, schema = await create_database(tmp_path)
    port = free_port()
    try:
        await upgrade(url)
        settings = load_settings(
            {"database_url": url, "data_dir": str(tmp_path / "data"),
             "http": f"127.0.0.1:{port}", "log_level": "warning"},
            environ={},
        )
        svc = build_services(settings)
        try:
            await seed_demo(svc.store, svc.ingestor)
            server = uvicorn_server(svc, workers(svc))
            task = asyncio.create_task(server.serve())
            try:
                await asyncio.wait_for(_started(server, task), 30)
                yield LiveServer(f"http://127.0.0.1:{port}", svc)
            finally:
                server.should_exit = True
                await asyncio.wait_for(task, 30)
        finally:
            await svc.store.close()
    finally:
        await drop_schema(schema)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(**LAUNCH)  # type: ignore[arg-type]
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browsing(browser: Browser, live: LiveServer) -> AsyncIterator[Browsing]:
    # Depends on ``live`` so the context (and its websockets) closes before the server stops.
    context = await browser.new_context(base_url=live.url)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    seen = Browsing(page)

    async def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            seen.errors.append(f"CSP violation: {message.text}")

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
    yield seen
    await context.close()
