"""What request handlers need, gathered once by the composition root and kept on
``app.state.services``: never module globals, so tests build their own."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from inbox.config import Settings
from inbox.db import Store
from inbox.ingest import Ingestor


@dataclass
class Services:
    settings: Settings
    store: Store
    ingestor: Ingestor
    secret: str = ""  # the installation's signing secret, loaded at startup


def services(conn: HTTPConnection) -> Services:
    found: Services = conn.app.state.services
    return found
