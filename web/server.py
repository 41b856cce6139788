"""The composition root of ``guichet serve``: one process running HTTP, websockets and
background workers over one store.

On PostgreSQL several such processes may share one database; each listens for the
others' events (``inbox.pgnotify``) and claims outbox work with row locks.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator, Mapping

import uvicorn

from channels import SENDERS
from inbox.blobs import BlobStore
from inbox.config import Settings
from inbox.db import Store
from inbox.ingest import Ingestor
from inbox.outbox import OutboxWorker, Sender
from inbox.presence import PresenceSweeper
from routing.service import RoutingService, RoutingSettings
from web.app import Worker, create_app
from web.services import Services
from web.ws import MAX_FRAME_BYTES

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def build_services(settings: Settings) -> Services:
    store = Store.from_settings(settings)
    blobs = BlobStore(settings.data_dir / "attachments")
    return Services(settings=settings, store=store, ingestor=Ingestor(store, blobs))


def workers(svc: Services, senders: Mapping[str, Sender] = SENDERS) -> list[Worker]:
    """Background work beside the web app (the PostgreSQL event listener is the app's own)."""
    return [
        OutboxWorker(svc.store, senders).run,
        PresenceSweeper(svc.store, svc.settings.presence_grace_s).run,
        RoutingService(svc.store, RoutingSettings.from_settings(svc.settings)).run,
    ]


class Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal after a graceful shutdown.

    uvicorn puts the previous handlers back and raises the caught SIGTERM or SIGINT again,
    which kills the process (SIGTERM) or cancels ``asyncio.run`` (SIGINT) before Guichet
    has closed its database pools. Guichet stops by returning from ``serve`` instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def uvicorn_server(svc: Services, worker_list: list[Worker]) -> uvicorn.Server:
    host, port = svc.settings.http
    config = uvicorn.Config(
        create_app(svc, worker_list),
        host=host,
        port=port,
        log_level=svc.settings.log_level,
        ws_max_size=MAX_FRAME_BYTES,
        proxy_headers=False,
        timeout_graceful_shutdown=20,
        lifespan="on",
    )
    return Server(config)
