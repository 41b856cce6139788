"""Two ``guichet serve`` processes share one PostgreSQL database. A conversation created
through one process's API reaches an agent websocket connected to the other within 1 s, and
so do a reply and a change made through the first one's API.

Each server answers /healthz only once its LISTEN connection is up (the app's lifespan
waits for it), so no notification can fall into a gap before the test starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import IS_PG, create_database, drop_schema
from tests.e2e.conftest import GUICHET, EventTap, Process, Spawn, cli, free_port, tap

pytestmark = pytest.mark.skipif(not IS_PG, reason="runs in the PostgreSQL pass")

MAX_LATENCY = 1.0
AGENT = "ada@e2e.example"
PASSWORD = "two-processes-pw"


async def serve(processes: Spawn, tmp_path: Path, url: str, name: str) -> tuple[Process, str]:
    port = free_port()
    data_dir = tmp_path / name
    process = processes(
        [GUICHET, "serve", "--http", f"127.0.0.1:{port}", "--database", url,
         "--data-dir", str(data_dir)],
        name=name,
    )
    base = f"http://127.0.0.1:{port}"
    await process.wait_healthy(base)
    return process, base


async def test_events_cross_processes_within_one_second(
    processes: Spawn, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    url, schema = await create_database(tmp_path)
    taps: list[EventTap] = []
    servers: list[Process] = []
    latencies: dict[str, float] = {}
    try:
        assert "database at revision" in await cli("migrate", "--database", url)
        await cli("agent", "add", AGENT, "--name", "Ada", "--role", "agent", "--password-stdin",
                  "--database", url, stdin=PASSWORD + "\n")
        token = (await cli("token", "create", AGENT, "--database", url)).strip()
        assert token and "\n" not in token

        bases = []
        for name in ("serve-a", "serve-b"):
            server, base = await serve(processes, tmp_path, url, name)
            servers.append(server)
            bases.append(base)
        base_a, base_b = bases
        auth = {"Authorization": f"Bearer {token}"}
        for base in (base_b, base_a):
            ws = await connect(base.replace("http://", "ws://") + "/ws/agent",
                               additional_headers=auth, open_timeout=5)
            taps.append(await tap(ws))
        on_b, on_a = taps

        async with httpx.AsyncClient(base_url=base_a, headers=auth, timeout=10) as api:
            # 1. A conversation created through A's API reaches both servers' agents.
            started = time.monotonic()
            response = await api.post("/api/v1/conversations", json={
                "contact": {"email": "kim@customer.example", "name": "Kim"},
                "subject": "Order 88 never came",
                "body": "Hello Kim, we are looking into order 88.",
            })
            assert response.status_code == 201, response.text
            conversation_id = response.json()["id"]
            for where, event_tap in (("B", on_b), ("A", on_a)):
                at, event = await event_tap.next_event(
                    "conversation.created", conversation_id=conversation_id
                )
                assert event["conversation"]["subject"] == "Order 88 never came"
                latencies[f"conversation.created -> {where}"] = at - started

            # 2. A reply posted through A's API reaches B as message.created.
            started = time.monotonic()
            response = await api.post(f"/api/v1/conversations/{conversation_id}/messages",
                                      json={"body": "We are on it, Kim."})
            assert response.status_code == 201, response.text
            message_id = response.json()["id"]
            at, event = await on_b.next_event(
                "message.created", conversation_id=conversation_id,
                where=lambda e: e["message"]["id"] == message_id,
            )
            assert event["message"]["direction"] == "outbound"
            assert event["message"]["body_text"] == "We are on it, Kim."
            latencies["message.created via A -> B"] = at - started

            # 3. A change through A's API reaches B as conversation.updated.
            started = time.monotonic()
            response = await api.patch(f"/api/v1/conversations/{conversation_id}",
                                       json={"priority": "urgent", "tags": ["shipping"]})
            assert response.status_code == 200, response.text
            at, event = await on_b.next_event(
                "conversation.updated", conversation_id=conversation_id
            )
            assert event["conversation"]["priority"] == "urgent"
            assert event["conversation"]["tags"] == ["shipping"]
            assert set(event["changes"]) >= {"priority", "tags"}
            latencies["conversation.updated via A -> B"] = at - started
        record_property("latencies_s", latencies)
        print("latencies (s):", {k: round(v, 3) for k, v in latencies.items()})
        slow = {k: round(v, 3) for k, v in latencies.items() if v >= MAX_LATENCY}
        assert not slow, f"events slower than {MAX_LATENCY}s: {slow}"
    finally:
        for event_tap in taps:
            await event_tap.close()
        for server in servers:  # before the schema goes
            await server.stop()
        await drop_schema(schema)
