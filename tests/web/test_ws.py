"""``/ws/agent`` on a real uvicorn server: the hello, committed events filtered by what
each agent may see, ping, error frames, size and rate limits, and who may connect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from inbox.auth import create_session
from inbox.db import Store
from inbox.inbound import RoutingHints
from inbox.ingest import Ingestor
from tests.conftest import inbound
from tests.web.support import PASSWORD, Person, csrf_from
from web.auth import SESSION_COOKIE
from web.ws import MAX_FRAME_BYTES, MAX_FRAMES_PER_MINUTE

EVENT_KEYS = {"id", "kind", "conversation_id", "created_at"}


def url(server: str) -> str:
    return f"ws://{server}/ws/agent"


async def receive(ws: ClientConnection, within: float = 1.0) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), within))
    assert isinstance(frame, dict)
    return frame


async def receive_event(ws: ClientConnection, within: float = 1.0) -> dict[str, Any]:
    frame = await receive(ws, within)
    assert frame["type"] == "event", frame
    event: dict[str, Any] = frame["event"]
    assert EVENT_KEYS <= set(event)
    return event


async def hello(ws: ClientConnection, person: Person) -> None:
    assert await receive(ws, 5) == {"type": "hello", "protocol": 1, "agent_id": person.id}


async def closed_with(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    async with asyncio.timeout(5):
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code


async def test_bearer_connect_gets_hello_then_events_of_new_conversations(
    live_server: str, agent: Person, ingestor: Ingestor
) -> None:
    async with connect(url(live_server), additional_headers=agent.auth) as ws:
        await hello(ws, agent)
        result = await ingestor.ingest(inbound("m-1", subject="Live one"))

        created = await receive_event(ws)
        assert created["kind"] == "conversation.created"
        assert created["conversation_id"] == result.conversation_id
        assert created["conversation"]["id"] == result.conversation_id
        assert created["conversation"]["subject"] == "Live one"

        message = await receive_event(ws)
        assert message["kind"] == "message.created"
        assert message["message"]["id"] == result.message_id
        assert message["message"]["direction"] == "inbound"
        assert message["id"] > created["id"]


async def test_api_changes_are_pushed(
    live_server: str, agent: Person, ingestor: Ingestor
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id
    async with connect(url(live_server), additional_headers=agent.auth) as ws:
        await hello(ws, agent)
        async with httpx.AsyncClient(base_url=f"http://{live_server}") as http:
            response = await http.patch(
                f"/api/v1/conversations/{cid}", json={"priority": "urgent"}, headers=agent.auth
            )
            assert response.status_code == 200
        event = await receive_event(ws)
        # On PostgreSQL the ingest's own events, committed before the socket subscribed,
        # may still be on their way through LISTEN/NOTIFY: they may come first.
        while event["kind"] in ("conversation.created", "message.created"):
            assert event["conversation_id"] == cid
            event = await receive_event(ws)
        assert event["kind"] == "conversation.updated"
        assert event["changes"] == {"priority": "urgent"}
        assert event["conversation"]["priority"] == "urgent"


async def test_events_are_filtered_by_visibility(
    live_server: str, agent: Person, supervisor: Person, ingestor: Ingestor
) -> None:
    async with (
        connect(url(live_server), additional_headers=agent.auth) as agent_ws,
        connect(url(live_server), additional_headers=supervisor.auth) as supervisor_ws,
    ):
        await hello(agent_ws, agent)
        await hello(supervisor_ws, supervisor)
        # "Billing" is the supervisor's team, not the agent's
        hidden = await ingestor.ingest(inbound("m-1", routing=RoutingHints(team="Billing")))
        visible = await ingestor.ingest(inbound("m-2"))

        seen = [await receive_event(supervisor_ws) for _ in range(4)]
        assert [(e["kind"], e["conversation_id"]) for e in seen] == [
            ("conversation.created", hidden.conversation_id),
            ("message.created", hidden.conversation_id),
            ("conversation.created", visible.conversation_id),
            ("message.created", visible.conversation_id),
        ]
        assert seen[0]["conversation"]["team_id"] is not None

        # The agent's first events are those of the later, visible conversation.
        first = await receive_event(agent_ws)
        assert (first["kind"], first["conversation_id"]) == (
            "conversation.created", visible.conversation_id
        )
        second = await receive_event(agent_ws)
        assert second["conversation_id"] == visible.conversation_id


async def test_ping_gets_pong(live_server: str, agent: Person) -> None:
    async with connect(url(live_server), additional_headers=agent.auth) as ws:
        await hello(ws, agent)
        await ws.send(json.dumps({"type": "ping"}))
        assert await receive(ws) == {"type": "pong"}
        await ws.send(b'{"type": "ping"}')
        assert await receive(ws) == {"type": "pong"}


async def test_bad_frames_get_error_frames_and_the_socket_stays_open(
    live_server: str, agent: Person
) -> None:
    async with connect(url(live_server), additional_headers=agent.auth) as ws:
        await hello(ws, agent)
        for frame, code in [
            ("this is not json", "malformed"),
            ("{", "malformed"),
            (json.dumps({"type": "subscribe"}), "unknown_type"),
            (json.dumps({"no": "type"}), "unknown_type"),
            (json.dumps([1, 2]), "unknown_type"),
            ("42", "unknown_type"),
        ]:
            await ws.send(frame)
            error = await receive(ws)
            assert error["type"] == "error" and error["code"] == code, frame
            assert isinstance(error["message"], str) and error["message"]
        await ws.send(json.dumps({"type": "ping"}))
        assert await receive(ws) == {"type": "pong"}


async def test_deeply_nested_frame_gets_an_error_frame(live_server: str, agent: Person) -> None:
    async with connect(url(live_server), additional_headers=agent.auth) as ws:
        await hello(ws, agent)
        await ws.send("[" * 50_000)  # under the size limit, over the parser's depth limit
        error = await receive(ws)
        assert error["type"] == "error" and error["code"] == "malformed"
        await ws.send(json.dumps({"type": "ping"}))
        assert await receive(ws) == {"type": "pong"}


async def test_frame_over_64_kib_closes_with_1009(live_server: str, agent: Person) -> None:
    async with connect(url(live_server), additional_headers=agent.auth) as ws:
        await hello(ws, agent)
        await ws.send(json.dumps({"type": "ping", "pad": "x" * MAX_FRAME_BYTES}))
        assert await closed_with(ws) == 1009


async def test_a_frame_just_under_the_limit_is_answered(live_server: str, agent: Person) -> None:
    async with connect(url(live_server), additional_headers=agent.auth) as ws:
        await hello(ws, agent)
        frame = json.dumps({"type": "ping", "pad": ""})
        frame = frame[:-2] + "x" * (MAX_FRAME_BYTES - len(frame)) + '"}'
        assert len(frame.encode()) == MAX_FRAME_BYTES
        await ws.send(frame)
        assert await receive(ws) == {"type": "pong"}


async def test_too_many_frames_close_with_1008(live_server: str, agent: Person) -> None:
    async with connect(url(live_server), additional_headers=agent.auth) as ws:
        await hello(ws, agent)
        for _ in range(MAX_FRAMES_PER_MINUTE + 1):
            await ws.send(json.dumps({"type": "ping"}))
        pongs = 0
        async with asyncio.timeout(5):
            with pytest.raises(ConnectionClosed):
                while True:
                    assert await receive(ws, 5) == {"type": "pong"}
                    pongs += 1
        assert pongs == MAX_FRAMES_PER_MINUTE
        assert ws.close_code == 1008


async def refused(live_server: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url(live_server), **kwargs):
            pass
    status: int = caught.value.response.status_code
    return status


async def test_unauthenticated_connect_is_refused(live_server: str, agent: Person) -> None:
    assert await refused(live_server) == 403
    assert await refused(
        live_server, additional_headers={"Authorization": "Bearer gch_wrong"}
    ) == 403
    assert await refused(
        live_server, additional_headers={"Cookie": f"{SESSION_COOKIE}=forged"},
        origin=f"http://{live_server}",
    ) == 403


async def test_cookie_auth_checks_the_origin(
    live_server: str, agent: Person, store: Store
) -> None:
    async with store.write() as session:
        token = await create_session(session, agent.id, 1)
    cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
    port = live_server.split(":")[1]
    for origin in ("http://evil.example", f"http://evil.example:{port}", "null"):
        assert await refused(live_server, additional_headers=cookie, origin=origin) == 403
    assert await refused(live_server, additional_headers=cookie) == 403  # no Origin at all
    async with connect(
        url(live_server), additional_headers=cookie, origin=f"http://{live_server}"
    ) as ws:
        await hello(ws, agent)
        await ws.send(json.dumps({"type": "ping"}))
        assert await receive(ws) == {"type": "pong"}


async def test_logout_closes_or_silences_the_cookie_socket(
    live_server: str, agent: Person, ingestor: Ingestor
) -> None:
    base = f"http://{live_server}"
    async with httpx.AsyncClient(base_url=base) as http:
        page = await http.get("/login")
        response = await http.post("/login", data={
            "csrf_token": csrf_from(page.text), "email": agent.email, "password": PASSWORD,
        })
        assert response.status_code == 303
        cookie = {"Cookie": f"{SESSION_COOKIE}={http.cookies[SESSION_COOKIE]}"}
        token = csrf_from((await http.get("/")).text)
        async with connect(url(live_server), additional_headers=cookie, origin=base) as ws:
            await hello(ws, agent)
            assert (await http.post("/logout", data={"csrf_token": token})).status_code == 303
            await ingestor.ingest(inbound("m-after-logout", subject="Secret after logout"))
            # A logged-out browser tab must not go on receiving conversations.
            try:
                frame = await receive(ws, 2)
            except (TimeoutError, ConnectionClosed):
                return
            pytest.fail(f"socket still streams after logout: {str(frame)[:200]}")
