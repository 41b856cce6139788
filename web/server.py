"""The composition root of ``guichet serve``: one process running HTTP, websockets and
background workers over one store.

On PostgreSQL several such processes may share one database; each listens for the
others' events (``inbox.pgnotify``) and claims outbox work with row locks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import uvicorn

from channels import SENDERS
from inbox.blobs import BlobStore
from inbox.config import Settings
from inbox.db import Store
from inbox.ingest import Ingestor
from inbox.outbox import OutboxWorker, Sender
from web.app import Worker, create_app
from web.services import Services
from web.ws import MAX_FRAME_BYTES

log = logging.getLogger(__name__)


def build_services(settings: Settings) -> Services:
    store = Store.from_settings(settings)
    blobs = BlobStore(settings.data_dir / "attachments")
    return Services(settings=settings, store=store, ingestor=Ingestor(store, blobs))


def workers(svc: Services, senders: Mapping[str, Sender] = SENDERS) -> list[Worker]:
    """Background work beside the web app (the PostgreSQL event listener is the app's own)."""
    return [OutboxWorker(svc.store, senders).run]


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
    return uvicorn.Server(config)
