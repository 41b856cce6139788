"""The Starlette application: routes, security headers and startup.

``create_app`` takes ready ``Services``; it creates no engines and reads no environment,
so tests and the server build it the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inbox.auth import instance_secret
from inbox.pgnotify import PgEventListener
from web import pages, ws
from web.api import agents as agents_api
from web.api import contacts as contacts_api
from web.api import conversations as conversations_api
from web.api import routing as routing_api
from web.api.openapi import OPENAPI
from web.errors import EXCEPTION_HANDLERS, ApiError
from web.services import Services, services

log = logging.getLogger(__name__)

LISTENER_START_SECONDS = 10
STATIC = Path(__file__).parent / "static"

Worker = Callable[[], Coroutine[Any, Any, None]]

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def healthz(request: Request) -> JSONResponse:
    try:
        async with services(request).store.read() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), timeout=5)
    except Exception as exc:  # any failure here means "not healthy"; say which
        log.warning("health check failed: %s", exc)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(OPENAPI)


async def api_not_found(request: Request) -> Response:
    raise ApiError(404, f"no API endpoint {request.method} {request.url.path}")


def create_app(svc: Services, workers: Sequence[Worker] = ()) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with svc.store.write() as session:
            svc.secret = await instance_secret(session, "signing_secret")
        tasks = [asyncio.create_task(worker()) for worker in workers]
        try:
            if not svc.store.is_sqlite:
                # Without the listener no event reaches this process's websockets.
                listener = PgEventListener(svc.store)
                tasks.append(asyncio.create_task(listener.run()))
                await asyncio.wait_for(listener.connected.wait(), LISTENER_START_SECONDS)
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    api_routes = [
        *conversations_api.ROUTES,
        *agents_api.ROUTES,
        *contacts_api.ROUTES,
        *routing_api.ROUTES,
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/{rest:path}", api_not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Mount("/api/v1", routes=api_routes),
            *ws.ROUTES,
            *pages.ROUTES,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.services = svc
    app.add_middleware(SecurityHeaders)
    return app
