"""Ctrl-C or SIGTERM stops ``guichet serve`` cleanly and loses nothing: a reply accepted
through the API before the signal is still there after a restart, queued in the outbox.

Runs on the pass's backend: a SQLite file in the SQLite pass, a fresh schema on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from inbox.blobs import BlobStore
from inbox.db import Store
from inbox.inbound import InboundMessage, Sender
from inbox.ingest import Ingestor
from inbox.models import OutboxItem
from inbox.types import Channel
from tests.conftest import create_database, drop_schema
from tests.e2e.conftest import GUICHET, Process, Spawn, cli, free_port

AGENT = "stop@e2e.example"
PASSWORD = "clean-stop-pw-1"
# What a clean stop may exit with: 0, or 130 (128 + SIGINT) for Ctrl-C by shell convention.
MAX_POSTS_PER_WORKER = 200
CLEAN_EXIT = {signal.SIGTERM: {0}, signal.SIGINT: {0, 130}}


async def prepare(tmp_path: Path, url: str) -> tuple[str, int]:
    """A migrated database with one agent, their API token and one conversation."""
    await cli("migrate", "--database", url)
    await cli("agent", "add", AGENT, "--name", "Stella", "--role", "agent", "--password-stdin",
              "--database", url, stdin=PASSWORD)
    token = (await cli("token", "create", AGENT, "--database", url)).strip()
    store = Store(url, tmp_path / "seed")
    try:
        result = await Ingestor(store, BlobStore(tmp_path / "seed" / "attachments")).ingest(
            InboundMessage(
                channel=Channel.EMAIL, external_id="<clean-stop-1@customer.example>",
                sender=Sender("rita@customer.example", "Rita"), subject="Broken zipper",
                text="The zipper broke on day one.", received_at=datetime.now(UTC),
            )
        )
    finally:
        await store.close()
    return token, result.conversation_id


async def start(processes: Spawn, tmp_path: Path, url: str, name: str) -> tuple[Process, str]:
    port = free_port()
    server = processes(
        [GUICHET, "serve", "--http", f"127.0.0.1:{port}", "--database", url,
         "--data-dir", str(tmp_path / "data")],
        name=name,
    )
    base = f"http://127.0.0.1:{port}"
    await server.wait_healthy(base)
    return server, base


async def outbox_rows(tmp_path: Path, url: str, message_ids: list[int]) -> dict[int, Any]:
    store = Store(url, tmp_path / "check")
    try:
        async with store.read() as session:
            rows = await session.scalars(
                select(OutboxItem).where(OutboxItem.message_id.in_(message_ids))
            )
            return {row.message_id: (row.status, row.channel) for row in rows}
    finally:
        await store.close()


def assert_clean_exit(server: Process, sig: signal.Signals, status: int) -> None:
    assert status in CLEAN_EXIT[sig], (
        f"{sig.name}: exit status {status}, expected one of {sorted(CLEAN_EXIT[sig])}"
        f"\n{server.tail()}"
    )
    assert "Traceback" not in server.output(), f"{sig.name}: traceback on stop\n{server.tail()}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_reply_survives_a_stop_and_restart(
    processes: Spawn, tmp_path: Path, sig: signal.Signals
) -> None:
    url, schema = await create_database(tmp_path)
    servers: list[Process] = []
    try:
        token, conversation_id = await prepare(tmp_path, url)
        auth = {"Authorization": f"Bearer {token}"}
        first, base = await start(processes, tmp_path, url, "serve-1")
        servers.append(first)
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as api:
            response = await api.post(f"/api/v1/conversations/{conversation_id}/messages",
                                      json={"body": "A new zipper is on its way."})
        assert response.status_code == 201, response.text
        reply = response.json()
        assert reply["delivery_status"] == "queued"
        stop_status = await first.stop(sig)

        second, base = await start(processes, tmp_path, url, "serve-2")
        servers.append(second)
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as api:
            response = await api.get(f"/api/v1/conversations/{conversation_id}")
        assert response.status_code == 200, response.text
        kept = {m["id"]: m for m in response.json()["messages"]}
        assert reply["id"] in kept, "the reply accepted before the stop is gone"
        assert kept[reply["id"]]["body_text"] == "A new zipper is on its way."
        assert kept[reply["id"]]["direction"] == "outbound"
        assert kept[reply["id"]]["delivery_status"] == "queued"
        assert await outbox_rows(tmp_path, url, [reply["id"]]) == {
            reply["id"]: ("pending", "email")
        }
        assert_clean_exit(first, sig, stop_status)
        assert_clean_exit(second, signal.SIGTERM, await second.stop(signal.SIGTERM))
    finally:
        for server in servers:  # before the schema goes
            if server.popen.poll() is None:
                await server.stop()
        await drop_schema(schema)


async def test_replies_accepted_while_stopping_are_all_kept(
    processes: Spawn, tmp_path: Path
) -> None:
    """Replies race a SIGTERM: each one the server acknowledged (201) must survive, with its
    outbox row; the others may be refused, but never half-stored."""
    url, schema = await create_database(tmp_path)
    servers: list[Process] = []
    try:
        token, conversation_id = await prepare(tmp_path, url)
        auth = {"Authorization": f"Bearer {token}"}
        server, base = await start(processes, tmp_path, url, "serve-1")
        servers.append(server)
        path = f"/api/v1/conversations/{conversation_id}/messages"
        answers: list[httpx.Response | None] = []
        enough = asyncio.Event()
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as api:

            async def keep_posting(worker: int) -> None:
                for n in range(MAX_POSTS_PER_WORKER):
                    try:
                        answer = await api.post(path, json={"body": f"reply {worker}.{n}"})
                    except httpx.TransportError:
                        answers.append(None)  # refused or cut off: not acknowledged
                        return
                    answers.append(answer)
                    if len(answers) >= 5:
                        enough.set()

            workers = [asyncio.create_task(keep_posting(w)) for w in range(3)]
            await asyncio.wait_for(enough.wait(), 30)
            server.send(signal.SIGTERM)
            await asyncio.wait_for(asyncio.gather(*workers), 60)
        status = await server.wait(15)
        acknowledged = [r.json()["id"] for r in answers if r is not None and r.status_code == 201]
        print(f"{len(acknowledged)} of {len(answers)} replies acknowledged around the SIGTERM")
        assert acknowledged, "no reply was acknowledged before the stop"
        odd = [r.status_code for r in answers if r is not None and r.status_code != 201]
        assert not odd, f"answers other than 201 or a refused connection: {odd}"

        restarted, base = await start(processes, tmp_path, url, "serve-2")
        servers.append(restarted)
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as api:
            response = await api.get(f"/api/v1/conversations/{conversation_id}")
        assert response.status_code == 200, response.text
        outbound = {m["id"] for m in response.json()["messages"] if m["direction"] == "outbound"}
        assert set(acknowledged) <= outbound, f"lost: {sorted(set(acknowledged) - outbound)}"
        rows = await outbox_rows(tmp_path, url, sorted(outbound))
        assert set(rows) == outbound, "a stored reply has no outbox row"
        assert_clean_exit(server, signal.SIGTERM, status)
    finally:
        for running in servers:
            if running.popen.poll() is None:
                await running.stop()
        await drop_schema(schema)
