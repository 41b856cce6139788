"""``/ws/agent``: committed domain events pushed to agents, filtered to what each may see.

Protocol (version 1), JSON text frames:

* server → client: ``{"type": "hello", "protocol": 1, "agent_id": N}`` once, then
  ``{"type": "event", "event": {...}}`` per event, ``{"type": "pong"}``,
  ``{"type": "presence", "presence": P}`` and
  ``{"type": "error", "code": ..., "message": ...}``;
* client → server: ``{"type": "ping"}``, answered ``pong``; and
  ``{"type": "presence", "presence": "online" | "away" | "offline"}``, which sets the
  agent's own presence and is answered ``{"type": "presence", "presence": P}`` once saved
  (the ``agent.presence`` event follows if it changed); any other value gets an error
  frame with code ``bad_presence``, and a presence that could not be saved one with
  code ``unavailable``.

Heartbeat: an open socket keeps its agent alive. The server records the agent as seen
(``agents.last_seen_at``, shared by every process) when the socket opens, when it closes,
on ``ping`` and every half ``GUICHET_HEARTBEAT_S`` while it stays open; clients send a
``ping`` about every 15 s. When none of an agent's sockets, on any process, has been seen
for ``GUICHET_PRESENCE_GRACE_S``, an ``online`` agent turns ``away`` (an ``agent.presence``
event with ``"reason": "heartbeat_lost"``; see ``inbox.presence``). Reconnecting within the
grace changes nothing; a client that reconnects later sends a ``presence`` frame to
come back online.

Authentication is the session cookie (browsers; the ``Origin`` must be Guichet's own) or
``Authorization: Bearer``. Frames over 64 KiB close the socket with 1009; more than 60
frames a minute, or a client too slow to take its events, close it with 1008.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from inbox.actions.agents import set_presence
from inbox.events import INTERNAL_KINDS, DomainEvent, Subscription
from inbox.models.base import utcnow
from inbox.presence import Heartbeats
from inbox.types import Presence
from web.auth import Principal, principal
from web.services import services

log = logging.getLogger(__name__)

PROTOCOL = 1
MAX_FRAME_BYTES = 65_536
MAX_FRAMES_PER_MINUTE = 60
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009


def _origin_ok(ws: WebSocket, who: Principal) -> bool:
    if not who.via_cookie:
        return True
    origin = ws.headers.get("origin")
    if origin is None:
        return False
    allowed = {urlsplit(services(ws).settings.public_url).netloc, ws.headers.get("host", "")}
    return urlsplit(origin).netloc in allowed


def visible_to(who: Principal, event: DomainEvent) -> bool:
    if event.kind in INTERNAL_KINDS:
        return False
    conversation = event.payload.get("conversation")
    if conversation is None:
        return True
    return who.viewer.can_see_json(conversation)


@dataclass(frozen=True)
class Client:
    """Who is on the other end of one socket, and this process's heartbeat register."""

    who: Principal
    heartbeats: Heartbeats

    @property
    def agent_id(self) -> int:
        return self.who.agent_id


def heartbeats_of(ws: WebSocket) -> Heartbeats:
    """The app's heartbeat register, made with its first agent socket."""
    state = ws.app.state
    found: Heartbeats | None = getattr(state, "heartbeats", None)
    if found is None:
        svc = services(ws)
        found = state.heartbeats = Heartbeats(svc.store, svc.settings.heartbeat_s)
    return found


async def _heartbeat(beat: Awaitable[None]) -> None:
    # A heartbeat that cannot be written must not cost the agent their socket; the
    # periodic refresh writes it again.
    try:
        await beat
    except (SQLAlchemyError, OSError):
        log.warning("agent heartbeat not recorded", exc_info=True)


async def agent_socket(ws: WebSocket) -> None:
    who = await principal(ws)
    if who is None or not _origin_ok(ws, who):
        await ws.close(CLOSE_POLICY, "authentication required")
        return
    subscription = services(ws).store.hub.subscribe()
    try:
        await ws.accept()
        await _serve(ws, Client(who, heartbeats_of(ws)), subscription)
    finally:
        subscription.close()


async def _serve(ws: WebSocket, client: Client, subscription: Subscription) -> None:
    pusher: asyncio.Task[None] | None = None
    try:
        # ``opened`` counts the socket before its first await, so ``closed`` always pairs.
        await _heartbeat(client.heartbeats.opened(client.agent_id))
        await ws.send_json({"type": "hello", "protocol": PROTOCOL, "agent_id": client.agent_id})
        pusher = asyncio.create_task(_push(ws, client.who, subscription))
        await _receive(ws, client)
    except WebSocketDisconnect:
        pass
    finally:
        if pusher is not None:
            pusher.cancel()
        await _heartbeat(client.heartbeats.closed(client.agent_id))


async def _push(ws: WebSocket, who: Principal, subscription: Subscription) -> None:
    try:
        async for event in subscription:
            if event.kind == "session.ended" and event.payload["session_id"] == who.session_id:
                await ws.close(CLOSE_POLICY, "logged out")
                return
            if visible_to(who, event):
                await ws.send_json({"type": "event", "event": event.to_json()})
        # The subscription ended because this client fell too far behind.
        await ws.close(CLOSE_POLICY, "too slow: reconnect and reload")
    except (WebSocketDisconnect, RuntimeError):
        pass


async def _receive(ws: WebSocket, client: Client) -> None:
    window_start, frames = time.monotonic(), 0
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        now = time.monotonic()
        if now - window_start > 60:
            window_start, frames = now, 0
        frames += 1
        if frames > MAX_FRAMES_PER_MINUTE:
            await ws.close(CLOSE_POLICY, "too many frames")
            return
        raw = message.get("text") or message.get("bytes") or b""
        if len(raw) > MAX_FRAME_BYTES:
            await ws.close(CLOSE_TOO_BIG, "frame too large")
            return
        await _answer(ws, client, raw)


async def _answer(ws: WebSocket, client: Client, raw: str | bytes) -> None:
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        await _error(ws, "malformed", "frame is not JSON")
        return
    kind = frame.get("type") if isinstance(frame, dict) else None
    handler = FRAME_HANDLERS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        await _error(ws, "unknown_type", f"unknown frame type {kind!r}"[:200])
        return
    await handler(ws, client, frame)


async def _error(ws: WebSocket, code: str, message: str) -> None:
    await ws.send_json({"type": "error", "code": code, "message": message})


async def on_ping(ws: WebSocket, client: Client, frame: dict[str, Any]) -> None:
    await ws.send_json({"type": "pong"})
    await _heartbeat(client.heartbeats.seen(client.agent_id))


PRESENCES = tuple(p.value for p in Presence)


async def on_presence(ws: WebSocket, client: Client, frame: dict[str, Any]) -> None:
    value = frame.get("presence")
    if not isinstance(value, str) or value not in PRESENCES:
        await _error(ws, "bad_presence", f"presence must be one of {', '.join(PRESENCES)}")
        return
    try:
        async with services(ws).store.write() as session:
            await set_presence(session, client.agent_id, Presence(value), seen_at=utcnow())
    except (SQLAlchemyError, OSError):
        log.warning("presence of agent %d not saved", client.agent_id, exc_info=True)
        await _error(ws, "unavailable", "presence not saved; try again")
        return
    await ws.send_json({"type": "presence", "presence": value})


FrameHandler = Callable[[WebSocket, Client, dict[str, Any]], Awaitable[None]]

# Client frame types and their handlers; anything else is answered ``unknown_type``.
FRAME_HANDLERS: dict[str, FrameHandler] = {
    "ping": on_ping,
    "presence": on_presence,
}


ROUTES = [WebSocketRoute("/ws/agent", agent_socket)]
