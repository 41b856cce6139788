"""Chat routing through the API: a waiting chat's place and expected wait, and accepting or
declining a chat offered with an accept timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from inbox.actions.agents import set_presence
from inbox.actions.conversations import ConversationChanges, update_conversation
from inbox.actions.routing import offer_conversation
from inbox.db import Store
from inbox.inbound import RoutingHints
from inbox.ingest import Ingestor
from inbox.models import AgentCapacity
from inbox.types import Channel, Presence, Priority
from tests.conftest import inbound
from tests.web.support import Person, error_of

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def chat(ingestor: Ingestor, key: str, minute: int, **hints: object) -> int:
    message = inbound(key, channel=Channel.CHAT, sender=f"{key}@visitors.example",
                      received_at=START + timedelta(minutes=minute),
                      routing=RoutingHints(**hints))  # type: ignore[arg-type]
    return (await ingestor.ingest(message)).conversation_id


async def queue(client: httpx.AsyncClient, who: Person, conversation_id: int) -> httpx.Response:
    return await client.get(f"/api/v1/conversations/{conversation_id}/queue", headers=who.auth)


async def test_place_and_expected_wait_follow_the_routing_order(
    client: httpx.AsyncClient, store: Store, supervisor: Person, agent: Person,
    ingestor: Ingestor,
) -> None:
    first = await chat(ingestor, "c1", 0)
    second = await chat(ingestor, "c2", 1)
    urgent = await chat(ingestor, "c3", 2, priority=Priority.URGENT)
    nobody = await chat(ingestor, "c4", 3, skills=(("klingon", 1),))
    email = (await ingestor.ingest(inbound("e1"))).conversation_id

    # Nobody online: places, but no estimate.
    body = (await queue(client, supervisor, first)).json()
    assert body == {"position": 2, "expected_wait_s": None, "agents_online": 0}

    async with store.write() as session:
        session.add(AgentCapacity(agent_id=agent.id, channel="chat", capacity=2))
    async with store.write() as session:
        await set_presence(session, agent.id, Presence.ONLINE)
        await update_conversation(session, second, supervisor.id,
                                  ConversationChanges(assignee_id=agent.id))
    # One slot of two is taken; the urgent chat goes first, then the first; 8 min default.
    places = {}
    for conversation_id in (urgent, first, nobody):
        places[conversation_id] = (await queue(client, supervisor, conversation_id)).json()
    assert places[urgent] == {"position": 1, "expected_wait_s": 0, "agents_online": 1}
    assert places[first] == {"position": 2, "expected_wait_s": 240, "agents_online": 1}
    assert places[nobody]["expected_wait_s"] is None  # the skill nobody has
    assert places[nobody]["position"] == 3

    for not_waiting in (email, second):
        assert error_of(await queue(client, supervisor, not_waiting), 404)["code"] == "not_found"


async def test_accept_and_decline_an_offer_through_the_api(
    client: httpx.AsyncClient, store: Store, supervisor: Person, agent: Person,
    ingestor: Ingestor,
) -> None:
    offered = await chat(ingestor, "o1", 0)
    declined = await chat(ingestor, "o2", 1)
    async with store.write() as session:
        session.add(AgentCapacity(agent_id=agent.id, channel="chat", capacity=2))
    async with store.write() as session:
        await set_presence(session, agent.id, Presence.ONLINE)
        for conversation_id in (offered, declined):
            routed = await offer_conversation(
                session, conversation_id, agent.id, datetime.now(UTC) + timedelta(minutes=1)
            )
            assert routed.refused is None
    url = "/api/v1/conversations/{}/{}"
    # Only the agent it was offered to can take it.
    taken = await client.post(url.format(offered, "accept"), headers=supervisor.auth)
    assert error_of(taken, 409)["code"] == "conflict"
    accepted = await client.post(url.format(offered, "accept"), headers=agent.auth)
    assert accepted.status_code == 200 and accepted.json()["assignee_id"] == agent.id
    again = await client.post(url.format(offered, "accept"), headers=agent.auth)
    error_of(again, 409)
    turned_down = await client.post(url.format(declined, "decline"), headers=agent.auth)
    assert turned_down.status_code == 204
    error_of(await client.post(url.format(declined, "decline"), headers=agent.auth), 409)
    for verb in ("accept", "decline"):  # an id no database can hold: a clear answer, no 500
        error_of(await client.post(url.format(2**64, verb), headers=agent.auth), 409)
    body = (await queue(client, supervisor, declined)).json()
    assert body["position"] == 1  # it waits again
