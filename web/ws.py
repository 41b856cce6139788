"""``/ws/agent``: committed domain events pushed to agents, filtered to what each may see.

Protocol (version 1), JSON text frames:

* server → client: ``{"type": "hello", "protocol": 1, "agent_id": N}`` once, then
  ``{"type": "event", "event": {...}}`` per event, ``{"type": "pong"}`` and
  ``{"type": "error", "code": ..., "message": ...}``;
* client → server: ``{"type": "ping"}``.

Authentication is the session cookie (browsers; the ``Origin`` must be Guichet's own) or
``Authorization: Bearer``. Frames over 64 KiB close the socket with 1009; more than 60
frames a minute, or a client too slow to take its events, close it with 1008.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlsplit

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from inbox.events import INTERNAL_KINDS, DomainEvent, Subscription
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


async def agent_socket(ws: WebSocket) -> None:
    who = await principal(ws)
    if who is None or not _origin_ok(ws, who):
        await ws.close(CLOSE_POLICY, "authentication required")
        return
    subscription = services(ws).store.hub.subscribe()
    await ws.accept()
    await ws.send_json({"type": "hello", "protocol": PROTOCOL, "agent_id": who.agent_id})
    pusher = asyncio.create_task(_push(ws, who, subscription))
    try:
        await _receive(ws)
    except WebSocketDisconnect:
        pass
    finally:
        subscription.close()
        pusher.cancel()


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


async def _receive(ws: WebSocket) -> None:
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
        await _answer(ws, raw)


async def _answer(ws: WebSocket, raw: str | bytes) -> None:
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        await ws.send_json({"type": "error", "code": "malformed", "message": "frame is not JSON"})
        return
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "ping":
        await ws.send_json({"type": "pong"})
    else:
        message = f"unknown frame type {kind!r}"[:200]
        await ws.send_json({"type": "error", "code": "unknown_type", "message": message})


ROUTES = [WebSocketRoute("/ws/agent", agent_socket)]
