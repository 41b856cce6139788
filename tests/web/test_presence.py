"""Presence over the agent websocket: the ``presence`` frame, heartbeats recorded in
``agents.last_seen_at``, and the sweeper that turns online agents away once all their
sockets have been silent for the grace period, on real sockets and on both backends.

The server here runs with a 1 s heartbeat and a 2 s grace. Tests about the exact moment
an agent turns away give the sweeper their own clock; tests about sockets kept alive
over time run the real sweeper loop for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from websockets.asyncio.client import ClientConnection, connect

from inbox.actions.agents import set_presence, turn_away_silent_agents
from inbox.config import ConfigError, Settings, load_settings
from inbox.db import Store
from inbox.events import DomainEvent
from inbox.models import Agent, AuditEntry
from inbox.models.base import utcnow
from inbox.presence import Heartbeats, PresenceSweeper
from inbox.types import Presence
from tests.inbox.support import stored_events
from tests.web.support import Person, count

GRACE_S = 2
HEARTBEAT_S = 1


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        {"database_url": db_url, "data_dir": str(tmp_path),
         "presence_grace_s": str(GRACE_S), "heartbeat_s": str(HEARTBEAT_S)},
        environ={},
    )


def url(server: str) -> str:
    return f"ws://{server}/ws/agent"


async def receive(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), within))
    assert isinstance(frame, dict)
    return frame


@contextlib.asynccontextmanager
async def socket(server: str, person: Person) -> AsyncIterator[ClientConnection]:
    async with connect(url(server), additional_headers=person.auth) as ws:
        hello = await receive(ws)
        assert hello == {"type": "hello", "protocol": 1, "agent_id": person.id}
        yield ws


async def send_presence(ws: ClientConnection, value: str) -> dict[str, Any]:
    """Send a presence frame; the answer, skipping the events that may come first."""
    await ws.send(json.dumps({"type": "presence", "presence": value}))
    while True:
        frame = await receive(ws)
        if frame["type"] != "event":
            return frame


async def next_presence_event(ws: ClientConnection, agent_id: int) -> dict[str, Any]:
    while True:
        frame = await receive(ws)
        if frame["type"] == "event" and frame["event"]["kind"] == "agent.presence":
            found: dict[str, Any] = frame["event"]
            if found["agent_id"] == agent_id:
                return found


async def row(store: Store, agent_id: int) -> tuple[str, datetime | None]:
    async with store.read() as session:
        agent = await session.get_one(Agent, agent_id)
        return agent.presence, agent.last_seen_at


async def presence_events(store: Store, agent_id: int) -> list[DomainEvent]:
    return [e for e in await stored_events(store)
            if e.kind == "agent.presence" and e.payload["agent_id"] == agent_id]


async def until(check: Callable[[], Any], within: float = 5.0) -> None:
    """Poll the database until ``check()`` holds (it is written by another task)."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def seen_since(store: Store, agent_id: int, since: datetime) -> None:
    """Wait until the agent's row says it was seen at or after ``since``."""
    async def check() -> bool:
        seen = (await row(store, agent_id))[1]
        return seen is not None and seen >= since
    await until(check)


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@contextlib.asynccontextmanager
async def sweeping(store: Store) -> AsyncIterator[PresenceSweeper]:
    """The real sweeper loop on the real clock, as ``guichet serve`` runs it."""
    sweeper = PresenceSweeper(store, GRACE_S)
    task = asyncio.create_task(sweeper.run())
    try:
        yield sweeper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# The presence frame ---------------------------------------------------------------------


async def test_presence_frame_sets_presence_and_emits_the_event(
    live_server: str, agent: Person, supervisor: Person, store: Store
) -> None:
    async with socket(live_server, supervisor) as watcher, socket(live_server, agent) as ws:
        assert await send_presence(ws, "online") == {"type": "presence", "presence": "online"}
        assert await next_presence_event(ws, agent.id) == await next_presence_event(
            watcher, agent.id
        )
        presence, seen = await row(store, agent.id)
        assert presence == "online" and seen is not None
        events = await presence_events(store, agent.id)
        assert [e.payload for e in events] == [{"agent_id": agent.id, "presence": "online"}]
        assert await count(store, AuditEntry, AuditEntry.action == "agent.presence",
                           AuditEntry.actor_id == agent.id) == 1

        # The same value again is answered and changes nothing.
        assert await send_presence(ws, "online") == {"type": "presence", "presence": "online"}
        assert await send_presence(ws, "away") == {"type": "presence", "presence": "away"}
        changed = await next_presence_event(watcher, agent.id)
        assert (changed["presence"], "reason" in changed) == ("away", False)
    assert [e.payload["presence"] for e in await presence_events(store, agent.id)] == [
        "online", "away"
    ]


async def test_bad_presence_values_get_error_frames(
    live_server: str, agent: Person, store: Store
) -> None:
    async with socket(live_server, agent) as ws:
        for frame in [
            {"type": "presence", "presence": "busy"},
            {"type": "presence", "presence": "ONLINE"},
            {"type": "presence", "presence": ""},
            {"type": "presence", "presence": None},
            {"type": "presence", "presence": 1},
            {"type": "presence", "presence": ["online"]},
            {"type": "presence"},
        ]:
            await ws.send(json.dumps(frame))
            error = await receive(ws)
            assert error["type"] == "error" and error["code"] == "bad_presence", frame
            assert "online, away, offline" in error["message"]
        await ws.send(json.dumps({"type": "ping"}))
        assert await receive(ws) == {"type": "pong"}
    assert (await row(store, agent.id))[0] == "offline"
    assert await presence_events(store, agent.id) == []


# Heartbeats --------------------------------------------------------------------------


async def test_an_open_socket_is_recorded_and_refreshed_without_pings(
    live_server: str, agent: Person, store: Store
) -> None:
    assert (await row(store, agent.id))[1] is None
    before = utcnow()
    async with socket(live_server, agent):
        opened = (await row(store, agent.id))[1]
        assert opened is not None and opened >= before
        # The server refreshes it every half heartbeat while the socket is open.
        await seen_since(store, agent.id, opened + timedelta(seconds=HEARTBEAT_S / 4))


@pytest.mark.parametrize("drop", ["close", "abort"])
async def test_a_dropped_socket_turns_the_agent_away_after_the_grace_and_not_before(
    live_server: str, agent: Person, supervisor: Person, store: Store, drop: str
) -> None:
    async with socket(live_server, supervisor) as watcher:
        async with socket(live_server, agent) as ws:
            await send_presence(ws, "online")
            dropped_at = utcnow()
            if drop == "close":
                await ws.close()
            else:
                assert ws.transport is not None
                ws.transport.abort()  # no close frame: the connection is simply gone
        # The server records the drop itself, so the grace counts from it.
        await seen_since(store, agent.id, dropped_at)
        last_seen = (await row(store, agent.id))[1]
        assert last_seen is not None
        grace = timedelta(seconds=GRACE_S)

        not_yet = PresenceSweeper(store, GRACE_S, now=at(last_seen + grace))
        assert await not_yet.run_once() == []
        assert (await row(store, agent.id))[0] == "online"

        sweeper = PresenceSweeper(store, GRACE_S, now=at(last_seen + grace + timedelta(0, 0, 1)))
        assert await sweeper.run_once() == [agent.id]
        assert (await row(store, agent.id))[0] == "away"
        assert (await next_presence_event(watcher, agent.id))["presence"] == "online"
        pushed = await next_presence_event(watcher, agent.id)
        assert (pushed["presence"], pushed["reason"]) == ("away", "heartbeat_lost")

    events = await presence_events(store, agent.id)
    assert [e.payload for e in events] == [
        {"agent_id": agent.id, "presence": "online"},
        {"agent_id": agent.id, "presence": "away", "reason": "heartbeat_lost"},
    ]
    async with store.read() as session:
        entry = (await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "agent.presence")
            .order_by(AuditEntry.id.desc()).limit(1)
        )).one()
    assert (entry.actor_type, entry.actor_id, entry.entity_id) == ("system", None, str(agent.id))
    assert entry.changes == {"before": "online", "after": "away", "reason": "heartbeat_lost"}
    assert await sweeper.run_once() == []  # idempotent


async def test_a_reconnect_within_the_grace_keeps_the_agent_online(
    live_server: str, agent: Person, store: Store
) -> None:
    async with sweeping(store):
        async with socket(live_server, agent) as ws:
            await send_presence(ws, "online")
        await asyncio.sleep(GRACE_S / 2)
        async with socket(live_server, agent):
            await asyncio.sleep(GRACE_S + 1)  # well past the first socket's grace
            assert (await row(store, agent.id))[0] == "online"

        async def away() -> bool:
            return (await row(store, agent.id))[0] == "away"

        await until(away, within=GRACE_S + 3)
    assert [e.payload.get("reason") for e in await presence_events(store, agent.id)] == [
        None, "heartbeat_lost"
    ]


async def test_with_two_sockets_dropping_one_keeps_the_agent_online(
    live_server: str, agent: Person, store: Store
) -> None:
    async with sweeping(store), socket(live_server, agent) as kept:
        async with socket(live_server, agent) as dropped:
            await send_presence(dropped, "online")
        await asyncio.sleep(GRACE_S + 2)  # the loop's first sweep waits one grace
        assert (await row(store, agent.id))[0] == "online"
        assert (await next_presence_event(kept, agent.id))["presence"] == "online"
        await kept.send(json.dumps({"type": "ping"}))
        assert await receive(kept) == {"type": "pong"}  # and no other presence event
    assert len(await presence_events(store, agent.id)) == 1


async def test_a_started_sweeper_gives_sockets_one_grace_to_come_back(
    store: Store, agent: Person
) -> None:
    async with store.write() as session:
        await set_presence(session, agent.id, Presence.ONLINE,
                           seen_at=utcnow() - timedelta(hours=1))
    async with sweeping(store):
        await asyncio.sleep(GRACE_S / 2)
        assert (await row(store, agent.id))[0] == "online"

        async def away() -> bool:
            return (await row(store, agent.id))[0] == "away"

        await until(away, within=GRACE_S + 2)


@pytest.mark.parametrize("chosen", ["away", "offline"])
async def test_an_agent_who_chose_away_or_offline_is_left_alone(
    live_server: str, agent: Person, store: Store, chosen: str
) -> None:
    async with socket(live_server, agent) as ws:
        await send_presence(ws, "online")
        await send_presence(ws, chosen)
    much_later = PresenceSweeper(store, GRACE_S, now=at(utcnow() + timedelta(days=1)))
    assert await much_later.run_once() == []
    assert (await row(store, agent.id))[0] == chosen
    assert [e.payload["presence"] for e in await presence_events(store, agent.id)] == [
        "online", chosen
    ]


async def test_agents_online_over_the_api_without_a_socket_are_left_alone(
    live_server: str, agent: Person, supervisor: Person, store: Store
) -> None:
    # The supervisor once had a socket, so their row has a last-seen time.
    async with socket(live_server, supervisor):
        pass
    async with httpx.AsyncClient(base_url=f"http://{live_server}") as http:
        for person in (agent, supervisor):
            response = await http.put("/api/v1/agents/me/presence", headers=person.auth,
                                      json={"presence": "online"})
            assert response.status_code == 200
    much_later = PresenceSweeper(store, GRACE_S, now=at(utcnow() + timedelta(days=1)))
    assert await much_later.run_once() == []
    assert await row(store, agent.id) == ("online", None)
    assert await row(store, supervisor.id) == ("online", None)

    # Once a socket beats again, losing it counts.
    async with socket(live_server, supervisor):
        pass
    assert await much_later.run_once() == [supervisor.id]


# Several processes ---------------------------------------------------------------------


async def test_sweepers_of_two_processes_record_each_change_once(
    store: Store, db_url: str, tmp_path: Path, agent: Person, supervisor: Person, admin: Person
) -> None:
    other = Store(db_url, tmp_path / "other")  # a second process's own engines
    ids = sorted([agent.id, supervisor.id, admin.id])
    now = utcnow()
    try:
        for _ in range(3):
            async with store.write() as session:
                for agent_id in ids:
                    await set_presence(session, agent_id, Presence.ONLINE,
                                       seen_at=now - timedelta(minutes=5))
            first = PresenceSweeper(store, GRACE_S, now=at(now))
            second = PresenceSweeper(other, GRACE_S, now=at(now))
            results = await asyncio.gather(first.run_once(), second.run_once(),
                                           first.run_once(), second.run_once())
            assert sorted(i for result in results for i in result) == ids
            now += timedelta(minutes=1)
    finally:
        await other.close()
    for agent_id in ids:
        assert [e.payload.get("reason") for e in await presence_events(store, agent_id)] == [
            None, "heartbeat_lost"
        ] * 3
    assert await count(store, AuditEntry, AuditEntry.action == "agent.presence") == 18


async def test_a_sweeper_waiting_behind_another_finds_nothing_left_to_change(
    store: Store, db_url: str, tmp_path: Path, agent: Person
) -> None:
    now = utcnow()
    async with store.write() as session:
        await set_presence(session, agent.id, Presence.ONLINE, seen_at=now - timedelta(hours=1))
    other = Store(db_url, tmp_path / "other")
    try:
        async with store.write() as session:
            assert await turn_away_silent_agents(session, now - timedelta(minutes=1), now) == [
                agent.id
            ]
            # Not committed yet: the other process's sweep waits for the row locks
            # (PostgreSQL) or the write lock (SQLite), then sees the agent already away.
            waiting = asyncio.create_task(PresenceSweeper(other, GRACE_S, now=at(now)).run_once())
            await asyncio.sleep(0.3)
            assert not waiting.done()
        assert await asyncio.wait_for(waiting, 10) == []
    finally:
        await other.close()
    assert [e.payload.get("reason") for e in await presence_events(store, agent.id)] == [
        None, "heartbeat_lost"
    ]


# Heartbeat writes, alone ---------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def agent_updates(store: Store) -> Iterator[list[str]]:
    """Collects the UPDATE statements on ``agents`` that go to the database."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE AGENTS"):
            seen.append(statement)

    engine = store.write_engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_heartbeat_writes_are_rate_limited_per_agent_and_batched(
    store: Store, agent: Person, supervisor: Person, admin: Person
) -> None:
    clock = FakeMonotonic()
    heartbeats = Heartbeats(store, heartbeat_s=15, monotonic=clock)
    people = [agent.id, supervisor.id, admin.id]
    with agent_updates(store) as updates:
        await asyncio.gather(*(heartbeats.opened(i) for i in people * 10))
        assert len(updates) == 1  # thirty sockets opening at once: one UPDATE
        assert heartbeats.agents == frozenset(people)
        stamps = {i: (await row(store, i))[1] for i in people}
        assert None not in stamps.values()

        clock.now += 7  # under half a heartbeat: pings write nothing
        for i in people:
            await heartbeats.seen(i)
        assert len(updates) == 1
        clock.now += 1
        await heartbeats.seen(agent.id)
        assert len(updates) == 2
        refreshed, first = (await row(store, agent.id))[1], stamps[agent.id]
        assert refreshed is not None and first is not None and refreshed > first

        # A close is always written, so the grace counts from the drop.
        await heartbeats.closed(supervisor.id)
        assert len(updates) == 3
        assert heartbeats.agents == frozenset(people)  # nine more of the supervisor's open
        for i in [agent.id, admin.id] * 10 + [supervisor.id] * 9:
            await heartbeats.closed(i)
        assert heartbeats.agents == frozenset()


async def test_a_heartbeat_never_moves_last_seen_back(store: Store, agent: Person) -> None:
    later, earlier = utcnow(), utcnow() - timedelta(seconds=30)
    for moment in (later, earlier):
        await Heartbeats(store, 15, now=at(moment)).closed(agent.id)
    assert (await row(store, agent.id))[1] == later


# Settings ------------------------------------------------------------------------------


def test_presence_settings_default_and_validate() -> None:
    defaults = load_settings({}, environ={})
    assert (defaults.presence_grace_s, defaults.heartbeat_s) == (20, 15)
    for environ, named in [
        ({"GUICHET_PRESENCE_GRACE_S": "0"}, "GUICHET_PRESENCE_GRACE_S: must be 1-3600"),
        ({"GUICHET_PRESENCE_GRACE_S": "3601"}, "GUICHET_PRESENCE_GRACE_S: must be 1-3600"),
        ({"GUICHET_PRESENCE_GRACE_S": "soon"}, "GUICHET_PRESENCE_GRACE_S: must be a whole"),
        ({"GUICHET_HEARTBEAT_S": "0"}, "GUICHET_HEARTBEAT_S: must be 1-300"),
        ({"GUICHET_HEARTBEAT_S": "1.5"}, "GUICHET_HEARTBEAT_S: must be a whole"),
        ({"GUICHET_PRESENCE_GRACE_S": "10"},
         "GUICHET_PRESENCE_GRACE_S: must be at least GUICHET_HEARTBEAT_S (15)"),
    ]:
        with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
            load_settings({}, environ=environ)
    tight = load_settings({}, environ={"GUICHET_PRESENCE_GRACE_S": "5",
                                       "GUICHET_HEARTBEAT_S": "5"})
    assert (tight.presence_grace_s, tight.heartbeat_s) == (5, 5)
