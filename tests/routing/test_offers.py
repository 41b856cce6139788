"""Chats offered with an accept timeout (GUICHET_ROUTING_OFFER_S > 0): accepted, they are
the agent's; declined, they go to the next agent at once; left to expire, they go to the
next agent and the one who let it expire gets no offers for a while."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio
from sqlalchemy import select

from inbox.actions.agents import set_presence
from inbox.actions.routing import OfferGone, accept_offer, end_offer
from inbox.db import Store
from inbox.ingest import Ingestor
from inbox.models import ChatOffer
from inbox.types import Channel, Presence
from routing.service import RoutingService
from tests.routing.test_service import (
    FAST,
    agent,
    arrive,
    assignee,
    audited,
    eventually,
    running,
)

OFFERS = replace(FAST, offer_s=0.6, not_responding_s=3.0)


@pytest_asyncio.fixture
async def service(store: Store) -> AsyncIterator[RoutingService]:
    async with running(RoutingService(store, OFFERS)) as service:
        await asyncio.wait_for(service.leading.wait(), 10)
        yield service


async def offered_to(store: Store, conversation_id: int) -> int | None:
    async with store.read() as session:
        return await session.scalar(
            select(ChatOffer.agent_id).where(ChatOffer.conversation_id == conversation_id)
        )


async def test_an_accepted_offer_makes_the_chat_the_agents(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    ada = await agent(store, "ada", {})
    chat = await arrive(ingestor, "chat-a", channel=Channel.CHAT)
    await eventually(lambda: _offered(store, chat, ada))
    assert await assignee(store, chat) is None  # not hers until she accepts
    async with store.write() as session:
        await accept_offer(session, chat, ada)
    assert await assignee(store, chat) == ada
    assert await offered_to(store, chat) is None
    await asyncio.sleep(OFFERS.offer_s * 2)  # no expiry fires for an accepted offer
    assert await assignee(store, chat) == ada
    assert await audited(store, chat) == ["conversation.offer", "conversation.accept"]


async def test_an_expired_offer_goes_to_the_next_agent_and_rests_the_first(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    ada = await agent(store, "ada", {}, chat=1)
    chat = await arrive(ingestor, "chat-b", channel=Channel.CHAT)
    await eventually(lambda: _offered(store, chat, ada))
    bob = await agent(store, "bob", {}, chat=1)
    await eventually(lambda: _offered(store, chat, bob), within=OFFERS.offer_s + 3)
    async with store.write() as session:
        await accept_offer(session, chat, bob)
    with pytest.raises(OfferGone):
        async with store.write() as session:
            await accept_offer(session, chat, ada)  # too late
    # Ada has room but is not responding: a new chat waits rather than going to her.
    later = await arrive(ingestor, "chat-c", channel=Channel.CHAT)
    await asyncio.sleep(1.0)
    assert await offered_to(store, later) is None
    await eventually(lambda: _offered(store, later, ada), within=OFFERS.not_responding_s + 2)
    assert await audited(store, chat) == [
        "conversation.offer", "conversation.offer_end", "conversation.offer",
        "conversation.accept",
    ]


async def test_a_declined_offer_goes_to_the_next_agent_at_once(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    ada = await agent(store, "ada", {}, chat=2)
    bob = await agent(store, "bob", {}, chat=2, presence=Presence.OFFLINE)
    chat = await arrive(ingestor, "chat-d", channel=Channel.CHAT)
    await eventually(lambda: _offered(store, chat, ada))
    async with store.write() as session:
        await set_presence(session, bob, Presence.ONLINE)
    async with store.write() as session:
        assert await end_offer(session, chat, ada, "declined")
    await eventually(lambda: _offered(store, chat, bob), within=OFFERS.offer_s / 2)
    # Declining is not "not responding": Ada gets the next chat.
    async with store.write() as session:
        await set_presence(session, bob, Presence.AWAY)
    other = await arrive(ingestor, "chat-e", channel=Channel.CHAT)
    await eventually(lambda: _offered(store, other, ada), within=OFFERS.offer_s / 2)


async def test_an_offer_to_an_agent_who_goes_away_is_withdrawn(
    store: Store, ingestor: Ingestor, service: RoutingService
) -> None:
    ada = await agent(store, "ada", {})
    chat = await arrive(ingestor, "chat-f", channel=Channel.CHAT)
    await eventually(lambda: _offered(store, chat, ada))
    bob = await agent(store, "bob", {})
    async with store.write() as session:
        await set_presence(session, ada, Presence.AWAY)
    await eventually(lambda: _offered(store, chat, bob), within=OFFERS.offer_s / 2)


async def _offered(store: Store, conversation_id: int, agent_id: int) -> bool:
    return await offered_to(store, conversation_id) == agent_id
