"""The router inside the server: conversations stored through the one ingest path are
assigned by skill, presence and capacity; refusals and away agents are handled; on
PostgreSQL only one of several services routes, and another takes over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from inbox.actions.agents import create_agent, ensure_team, set_presence
from inbox.actions.conversations import ConversationChanges, update_conversation
from inbox.actions.rules import create_rule
from inbox.db import Store
from inbox.inbound import RoutingHints
from inbox.ingest import Ingestor
from inbox.models import AuditEntry, Conversation, ConversationTag, Team
from inbox.pgnotify import PgEventListener
from inbox.types import Channel, Presence, Role, Status
from routing import rule_store
from routing.rule_store import check_definition
from routing.service import RoutingService, RoutingSettings
from tests.conftest import inbound

FAST = RoutingSettings(requeue_after_s=0.3, resync_s=5.0, tick_s=0.05, standby_poll_s=0.1)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(service: RoutingService) -> AsyncIterator[RoutingService]:
    """The service as ``guichet serve`` runs it: on PostgreSQL with the event listener
    that brings every process's events to this one."""
    tasks = [asyncio.create_task(service.run())]
    if not service.store.is_sqlite:
        listener = PgEventListener(service.store)
        tasks.append(asyncio.create_task(listener.run()))
        await asyncio.wait_for(listener.connected.wait(), 10)
    try:
        yield service
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def agent(
    store: Store, name: str, skills: dict[str, int], chat: int = 2, email: int = 5,
    presence: Presence = Presence.ONLINE,
) -> int:
    async with store.write() as session:
        agent_id = await create_agent(
            session, email=f"{name}@example.com", name=name, role=Role.AGENT,
            password="correct horse battery", skills=skills,
            capacity={"chat": chat, "email": email, "form": 1},
        )
    if presence is not Presence.OFFLINE:
        async with store.write() as session:
            await set_presence(session, agent_id, presence)
    return agent_id


async def arrive(
    ingestor: Ingestor, key: str, skills: tuple[tuple[str, int], ...] = (),
    channel: Channel = Channel.EMAIL,
) -> int:
    result = await ingestor.ingest(
        inbound(key, channel=channel, sender=f"{key}@customers.example",
                routing=RoutingHints(skills=skills))
    )
    return result.conversation_id


async def audited(store: Store, conversation_id: int) -> list[str]:
    """The audit log's actions on a conversation, in order."""
    async with store.read() as session:
        return list((await session.scalars(
            select(AuditEntry.action).where(
                AuditEntry.entity_type == "conversation",
                AuditEntry.entity_id == str(conversation_id),
            ).order_by(AuditEntry.id)
        )).all())


async def assignee(store: Store, conversation_id: int) -> int | None:
    async with store.read() as session:
        return await session.scalar(
            select(Conversation.assignee_id).where(Conversation.id == conversation_id)
        )


@pytest_asyncio.fixture
async def service(store: Store) -> AsyncIterator[RoutingService]:
    async with running(RoutingService(store, FAST)) as service:
        await asyncio.wait_for(service.leading.wait(), 10)
        yield service


async def test_new_conversation_goes_to_the_agent_with_the_skill(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    await agent(store, "billing-only", {"billing": 1})
    tech = await agent(store, "tech-only", {"tech": 2})
    await service.leading.wait()
    conversation = await arrive(ingestor, "c1", skills=(("tech", 2),))
    await eventually(lambda: _is(store, conversation, tech))


async def test_nobody_eligible_leaves_it_waiting_until_someone_is(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    away = await agent(store, "later", {"tech": 1}, presence=Presence.AWAY)
    conversation = await arrive(ingestor, "c2", skills=(("tech", 1),))
    await asyncio.sleep(0.3)
    assert await assignee(store, conversation) is None
    async with store.write() as session:
        await set_presence(session, away, Presence.ONLINE)
    await eventually(lambda: _is(store, conversation, away))


async def test_capacity_is_respected_and_freed_capacity_is_used(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    only = await agent(store, "solo", {}, email=1)
    first = await arrive(ingestor, "c3")
    second = await arrive(ingestor, "c4")
    await eventually(lambda: _is(store, first, only))
    await asyncio.sleep(0.3)
    assert await assignee(store, second) is None
    async with store.write() as session:
        await update_conversation(
            session, first, only, ConversationChanges(status=Status.RESOLVED)
        )
    await eventually(lambda: _is(store, second, only))


async def test_chats_of_an_agent_who_went_away_wait_again_and_go_elsewhere(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    first = await agent(store, "first", {})
    chat = await arrive(ingestor, "chat-1", channel=Channel.CHAT)
    email = await arrive(ingestor, "mail-1")
    await eventually(lambda: _is(store, chat, first))
    await eventually(lambda: _is(store, email, first))
    second = await agent(store, "second", {}, presence=Presence.OFFLINE)
    async with store.write() as session:
        await set_presence(session, first, Presence.AWAY)
    async with store.write() as session:
        await set_presence(session, second, Presence.ONLINE)
    await eventually(lambda: _is(store, chat, second))
    assert await assignee(store, email) == first  # email stays: no rule says otherwise
    assert await audited(store, chat) == [
        "conversation.route", "conversation.requeue", "conversation.route",
    ]


async def test_an_agent_back_within_the_grace_keeps_the_chat(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    first = await agent(store, "first", {})
    chat = await arrive(ingestor, "chat-2", channel=Channel.CHAT)
    await eventually(lambda: _is(store, chat, first))
    await agent(store, "second", {})
    async with store.write() as session:
        await set_presence(session, first, Presence.AWAY)
    async with store.write() as session:
        await set_presence(session, first, Presence.ONLINE)
    await asyncio.sleep(FAST.requeue_after_s * 3)
    assert await assignee(store, chat) == first


async def test_a_decision_on_stale_state_is_refused_not_applied(
    store: Store, ingestor: Ingestor
) -> None:
    """A conversation assigned by hand behind the router's back is not assigned again."""
    service = RoutingService(store, FAST)
    a = await agent(store, "a", {})
    conversation = await arrive(ingestor, "c5")
    await service._load()
    async with store.write() as session:
        await update_conversation(
            session, conversation, None, ConversationChanges(assignee_id=a)
        )
    await service._decide()  # decides on the state loaded before the manual assignment
    assert (service.decisions, service.refusals) == (0, 1)
    assert await assignee(store, conversation) == a


async def test_one_router_per_database_and_another_takes_over(
    store: Store, ingestor: Ingestor, db_url: str, tmp_path: Path
) -> None:
    if store.is_sqlite:
        pytest.skip("SQLite runs one process: there is no leadership to share")
    other_store = Store(db_url, tmp_path)
    first = RoutingService(store, FAST)
    second = RoutingService(other_store, FAST)
    try:
        async with running(first), running(second):
            await eventually(lambda: _any_leads(first, second))
            await asyncio.sleep(0.5)
            assert first.leading.is_set() != second.leading.is_set()
            leader, standby = (first, second) if first.leading.is_set() else (second, first)
            await agent(store, "a", {}, email=10)
            conversations = [await arrive(ingestor, f"m{i}") for i in range(5)]
            await eventually(lambda: _all_assigned(store, conversations))
            assert standby.decisions == 0 and leader.decisions == 5
        # Both stopped; the standby alone now: it takes the lead.
        async with running(standby):
            await asyncio.wait_for(standby.leading.wait(), 5)
            more = await arrive(ingestor, "after")
            await eventually(lambda: _all_assigned(store, [more]))
    finally:
        await other_store.close()


async def _is(store: Store, conversation_id: int, agent_id: int) -> bool:
    return await assignee(store, conversation_id) == agent_id


async def _any_leads(*services: RoutingService) -> bool:
    return any(s.leading.is_set() for s in services)


async def _all_assigned(store: Store, ids: list[int]) -> bool:
    async with store.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(Conversation).where(
                Conversation.id.in_(ids), Conversation.assignee_id.is_not(None)
            )
        )
    return count == len(ids)


async def test_returning_customer_goes_back_to_their_previous_agent(
    store: Store, ingestor: Ingestor
) -> None:
    for sticky_s, expect_previous in ((120.0, True), (0.0, False)):
        service = RoutingService(store, replace(FAST, sticky_s=sticky_s))
        async with running(service):
            await asyncio.wait_for(service.leading.wait(), 10)
            busy = await agent(store, f"busy-{sticky_s}", {}, email=5)
            first = await arrive_from(ingestor, f"first-{sticky_s}", f"kim{sticky_s}@x.example")
            await eventually(lambda first=first, busy=busy: _is(store, first, busy))
            async with store.write() as session:
                await update_conversation(
                    session, first, busy, ConversationChanges(status=Status.RESOLVED)
                )
            # Someone less loaded (busy holds another conversation) comes online.
            await arrive(ingestor, f"other-{sticky_s}")
            await eventually(lambda busy=busy: _holds(store, busy, 1))
            idle = await agent(store, f"idle-{sticky_s}", {}, email=5)
            again = await arrive_from(ingestor, f"again-{sticky_s}", f"kim{sticky_s}@x.example")
            expected = busy if expect_previous else idle
            await eventually(lambda again=again, expected=expected: _is(store, again, expected))
        async with store.write() as session:  # out of the way of the next round
            for agent_id in (busy, idle):
                await set_presence(session, agent_id, Presence.OFFLINE)


async def arrive_from(ingestor: Ingestor, key: str, sender: str) -> int:
    return (await ingestor.ingest(inbound(key, sender=sender))).conversation_id


async def _holds(store: Store, agent_id: int, count: int) -> bool:
    async with store.read() as session:
        held = await session.scalar(
            select(func.count()).select_from(Conversation).where(
                Conversation.assignee_id == agent_id, Conversation.status == Status.OPEN.value
            )
        )
    return held == count


async def test_rules_set_priority_team_and_tags_and_route_by_skill(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    rule = check_definition({
        "name": "refunds", "conditions": [{"field": "subject", "op": "contains",
                                           "value": "refund"}],
        "actions": [{"type": "require_skill", "skill": "billing"},
                    {"type": "set_priority", "priority": "urgent"},
                    {"type": "set_team", "team": "Money"},
                    {"type": "add_tags", "tags": ["refund"]}],
    })
    async with store.write() as session:
        await ensure_team(session, "Money")
        await create_rule(session, rule, None)
    await agent(store, "generalist", {})
    biller = await agent(store, "biller", {"billing": 1})
    refund = (await ingestor.ingest(inbound("r1", subject="Refund my order"))).conversation_id
    other = (await ingestor.ingest(inbound("o1", subject="Hello"))).conversation_id
    await eventually(lambda: _is(store, refund, biller))
    await eventually(lambda: _assigned(store, other))
    async with store.read() as session:
        row = (await session.execute(
            select(Conversation.priority, Team.name)
            .outerjoin(Team, Team.id == Conversation.team_id)
            .where(Conversation.id == refund)
        )).one()
        tags = (await session.scalars(
            select(ConversationTag.tag).where(ConversationTag.conversation_id == refund)
        )).all()
        untouched = await session.scalar(
            select(Conversation.priority).where(Conversation.id == other)
        )
    assert tuple(row) == ("urgent", "Money") and list(tags) == ["refund"]
    assert untouched == "normal"


async def _assigned(store: Store, conversation_id: int) -> bool:
    return await assignee(store, conversation_id) is not None


async def test_a_rule_can_send_an_away_agents_email_to_someone_else(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    rule = check_definition({
        "name": "urgent mail does not wait", "actions": [{"type": "requeue_when_away"}],
        "conditions": [{"field": "subject", "op": "contains", "value": "urgent"}],
    })
    async with store.write() as session:
        await create_rule(session, rule, None)
    first = await agent(store, "first", {})
    urgent = (await ingestor.ingest(inbound("u1", subject="URGENT: down"))).conversation_id
    calm = (await ingestor.ingest(inbound("n1", subject="A question"))).conversation_id
    await eventually(lambda: _is(store, urgent, first))
    await eventually(lambda: _is(store, calm, first))
    second = await agent(store, "second", {})
    async with store.write() as session:
        await set_presence(session, first, Presence.OFFLINE)
    await eventually(lambda: _is(store, urgent, second))
    assert await assignee(store, calm) == first


async def test_subjects_are_read_in_chunks(
    store: Store, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both databases bound the parameters of one statement: a backlog of any size is
    read a chunk at a time."""
    ids = [await arrive(ingestor, f"chunk-{i}") for i in range(5)]
    monkeypatch.setattr(rule_store, "SUBJECT_CHUNK", 2)
    chunks: list[int] = []
    read_chunk = rule_store._subjects

    async def counted(session: Any, wanted: list[int]) -> dict[int, Any]:
        chunks.append(len(wanted))
        return await read_chunk(session, wanted)

    monkeypatch.setattr(rule_store, "_subjects", counted)
    async with store.read() as session:
        subjects = await rule_store.load_subjects(session, [*ids, 999_999])
    assert chunks == [2, 2, 2]
    assert sorted(subjects) == sorted(ids)
    assert {s.facts.subject for s in subjects.values()} == {"Where is my order?"}
