"""Domain events: every kind an action emits matches ``EVENT_SCHEMA``, and events reach
subscribers only after their transaction commits (in-process on SQLite, through
LISTEN/NOTIFY on PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from inbox.actions.agents import set_presence
from inbox.actions.conversations import (
    ConversationChanges,
    add_message,
    start_conversation,
    update_conversation,
)
from inbox.actions.routing import accept_offer, end_offer, offer_conversation
from inbox.actions.rules import create_rule
from inbox.auth import create_session, end_session
from inbox.db import Store
from inbox.events import EVENT_SCHEMA, DomainEvent, EventHub, Subscription, record_event
from inbox.inbound import InboundAttachment, ThreadHeaders
from inbox.ingest import Ingestor, IngestResult
from inbox.models import AgentCapacity, Event
from inbox.models.base import utcnow
from inbox.outbox import Delivery, DeliveryError, OutboxWorker
from inbox.pgnotify import PgEventListener
from inbox.types import Channel, Presence, Status
from tests.conftest import IS_PG, _pg_admin_dsn, inbound
from tests.inbox.support import count, new_agent, next_event, stored_events

LISTENER_APP = "guichet_test_listener_" + secrets.token_hex(4)
SUMMARY_KEYS = {
    "id", "channel", "subject", "status", "snoozed_until", "priority", "assignee_id", "team_id",
    "contact", "tags", "skills", "created_at", "updated_at", "first_response_at",
    "last_customer_message_at", "last_message_at", "resolved_at",
}
MESSAGE_KEYS = {
    "id", "conversation_id", "direction", "internal", "channel", "author_agent_id",
    "author_contact_id", "body_text", "body_html", "message_id", "in_reply_to", "references",
    "delivery_status", "delivery_error", "created_at", "attachments",
}

sqlite_only = pytest.mark.skipif(IS_PG, reason="in-process dispatch is the SQLite path")
pg_only = pytest.mark.skipif(not IS_PG, reason="LISTEN/NOTIFY needs PostgreSQL")


def check_event(event: DomainEvent) -> None:
    """Fail unless ``event`` has a known kind and the payload shape that kind promises."""
    assert event.kind in EVENT_SCHEMA, event.kind
    assert EVENT_SCHEMA[event.kind] <= event.payload.keys(), (event.kind, event.payload.keys())
    if "conversation" in event.payload:
        conversation = event.payload["conversation"]
        assert set(conversation) == SUMMARY_KEYS
        assert conversation["id"] == event.conversation_id
        assert set(conversation["contact"]) == {"id", "name", "email"}
    if "message" in event.payload:
        message = event.payload["message"]
        assert set(message) == MESSAGE_KEYS
        assert message["conversation_id"] == event.conversation_id
    if "changes" in event.payload:
        assert isinstance(event.payload["changes"], dict) and event.payload["changes"]
    if event.kind == "agent.presence":
        assert event.payload["presence"] in {p.value for p in Presence}
    json = event.to_json()
    assert json["kind"] == event.kind and json["id"] == event.id


async def test_every_action_emits_events_matching_the_schema(
    store: Store, ingestor: Ingestor
) -> None:
    agent_id = await new_agent(store, "ann@support.example")
    created = await ingestor.ingest(
        inbound("<a@x>", thread=ThreadHeaders("<a@x>"), html="<p>hi</p>",
                attachments=(InboundAttachment("a.txt", "text/plain", b"abc"),))
    )
    cid = created.conversation_id
    async with store.write() as session:
        await add_message(session, cid, agent_id, "We are on it")
        await add_message(session, cid, agent_id, "note to self", internal=True)
        await update_conversation(
            session, cid, agent_id,
            ConversationChanges(status=Status.RESOLVED, tags=("Billing",), assignee_id=agent_id),
        )
    await ingestor.ingest(inbound("<b@x>", text="again", thread=ThreadHeaders(in_reply_to="<a@x>")))
    async with store.write() as session:
        await start_conversation(session, agent_id, email="bob@example.com", name=None,
                                 subject="Hello", body="We write first")

    async def fail(delivery: Delivery) -> None:
        raise DeliveryError("mailbox full")

    await OutboxWorker(store, {"email": fail}).run_once()
    async with store.write() as session:
        await set_presence(session, agent_id, Presence.ONLINE)
        login = await create_session(session, agent_id, hours=1)
    async with store.write() as session:
        await end_session(session, login)
    async with store.write() as session:
        await create_rule(session, {"name": "r", "actions": []}, agent_id)
    chat = (await ingestor.ingest(inbound("chat-1", channel=Channel.CHAT))).conversation_id
    soon = utcnow() + timedelta(minutes=1)
    async with store.write() as session:
        session.add(AgentCapacity(agent_id=agent_id, channel="chat", capacity=1))
    async with store.write() as session:
        await set_presence(session, agent_id, Presence.ONLINE)
        assert (await offer_conversation(session, chat, agent_id, soon)).refused is None
        assert await end_offer(session, chat, agent_id, "declined")
        assert (await offer_conversation(session, chat, agent_id, soon)).refused is None
        await accept_offer(session, chat, agent_id)

    events = await stored_events(store)
    for event in events:
        check_event(event)
    assert {e.kind for e in events} == set(EVENT_SCHEMA)
    by_kind = {e.kind: e for e in events}
    assert by_kind["message.delivery"].payload["message"]["delivery_error"] == "mailbox full"
    assert by_kind["agent.presence"].payload == {"agent_id": agent_id, "presence": "online"}
    attachments = events[1].payload["message"]["attachments"]
    assert [a["filename"] for a in attachments] == ["a.txt"]


async def test_record_event_refuses_a_payload_missing_keys(store: Store) -> None:
    with pytest.raises(ValueError, match="lacks"):
        async with store.write() as session:
            await record_event(session, "conversation.updated", {"conversation": {}})
    with pytest.raises(KeyError):
        async with store.write() as session:
            await record_event(session, "no.such.kind", {})
    assert await count(store, Event) == 0


@sqlite_only
async def test_events_are_published_after_commit(store: Store, ingestor: Ingestor) -> None:
    agent_id = await new_agent(store, "ann@support.example")
    created = await ingestor.ingest(inbound("<a@x>"))
    subscription = store.hub.subscribe()
    try:
        async with store.write() as session:
            await add_message(session, created.conversation_id, agent_id, "Reply")
            with pytest.raises(TimeoutError):
                await next_event(subscription, within=0.05)
        event = await next_event(subscription, within=1)
        assert event.kind == "message.created"
        assert event.payload["message"]["body_text"] == "Reply"
        # The subscriber's event is the one the database holds, with its id.
        assert event.id == (await stored_events(store))[-1].id
    finally:
        subscription.close()


@sqlite_only
async def test_no_event_for_a_rolled_back_transaction(store: Store, ingestor: Ingestor) -> None:
    agent_id = await new_agent(store, "ann@support.example")
    created = await ingestor.ingest(inbound("<a@x>"))
    before = await count(store, Event)
    subscription = store.hub.subscribe()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            async with store.write() as session:
                await add_message(session, created.conversation_id, agent_id, "lost reply")
                raise RuntimeError("boom")
        # The next thing the subscriber hears is the next committed event, nothing earlier.
        async with store.write() as session:
            await add_message(session, created.conversation_id, agent_id, "kept reply")
        event = await next_event(subscription, within=1)
        assert event.payload["message"]["body_text"] == "kept reply"
        with pytest.raises(TimeoutError):
            await next_event(subscription, within=0.05)
    finally:
        subscription.close()
    assert await count(store, Event) == before + 1


@sqlite_only
async def test_ingest_publishes_created_events_in_order(store: Store, ingestor: Ingestor) -> None:
    subscription = store.hub.subscribe()
    try:
        result = await ingestor.ingest(inbound("<a@x>"))
        first = await next_event(subscription, within=1)
        second = await next_event(subscription, within=1)
    finally:
        subscription.close()
    assert [first.kind, second.kind] == ["conversation.created", "message.created"]
    assert first.conversation_id == second.conversation_id == result.conversation_id
    assert second.payload["message"]["id"] == result.message_id
    # A duplicate ingest commits nothing new and so publishes nothing.
    subscription = store.hub.subscribe()
    try:
        await ingestor.ingest(inbound("<a@x>"))
        with pytest.raises(TimeoutError):
            await next_event(subscription, within=0.05)
    finally:
        subscription.close()


async def test_slow_subscriber_is_dropped_without_blocking_others() -> None:
    hub = EventHub(queue_limit=2)
    slow = hub.subscribe()
    fast = hub.subscribe()
    heard = []
    for i in range(1, 4):
        hub.dispatch([DomainEvent(i, "agent.presence", None,
                                  {"agent_id": 1, "presence": "online"}, utcnow())])
        heard.append((await next_event(fast, within=1)).id)
    assert heard == [1, 2, 3]
    assert slow.overflowed and not fast.overflowed
    assert hub.subscriber_count == 1
    # An overflowed subscription ends its iteration instead of waiting for ever.
    received = [e.id async for e in slow]
    assert len(received) < 3
    fast.close()
    assert hub.subscriber_count == 0


@pytest_asyncio.fixture
async def listener(db_url: str, tmp_path: Path) -> AsyncIterator[PgEventListener]:
    """A running ``PgEventListener`` feeding a second Store on the same database. Its
    connections carry a unique application_name so a test can find and cut them."""
    url = make_url(db_url)
    options = f"{url.query['options']} -capplication_name={LISTENER_APP}"
    other = Store(url.update_query_dict({"options": options}).render_as_string(False),
                  tmp_path / "other")
    listener = PgEventListener(other)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await other.close()


@pytest.fixture
def listening_store(listener: PgEventListener) -> Store:
    return listener.store


async def _ingest_and_hear(ingestor: Ingestor, subscription: Subscription) -> IngestResult:
    """Ingest a message and wait until the listener has passed on both of its events."""
    result = await ingestor.ingest(inbound("<a@x>"))
    kinds = [(await next_event(subscription, within=5)).kind for _ in range(2)]
    assert kinds == ["conversation.created", "message.created"]
    return result


@pg_only
async def test_pg_listener_delivers_committed_events_to_another_store(
    store: Store, ingestor: Ingestor, listening_store: Store
) -> None:
    subscription = listening_store.hub.subscribe()
    try:
        result = await ingestor.ingest(inbound("<a@x>"))
        first = await next_event(subscription, within=5)
        second = await next_event(subscription, within=5)
    finally:
        subscription.close()
    assert [first.kind, second.kind] == ["conversation.created", "message.created"]
    assert first.conversation_id == result.conversation_id
    assert second.payload["message"]["id"] == result.message_id
    check_event(first)
    check_event(second)


@pg_only
async def test_pg_listener_hears_nothing_of_a_rolled_back_transaction(
    store: Store, ingestor: Ingestor, listening_store: Store
) -> None:
    agent_id = await new_agent(store, "ann@support.example")
    subscription = listening_store.hub.subscribe()
    try:
        created = await _ingest_and_hear(ingestor, subscription)
        with pytest.raises(RuntimeError, match="boom"):
            async with store.write() as session:
                await add_message(session, created.conversation_id, agent_id, "lost reply")
                raise RuntimeError("boom")
        async with store.write() as session:
            await add_message(session, created.conversation_id, agent_id, "kept reply")
        event = await next_event(subscription, within=5)
    finally:
        subscription.close()
    assert event.kind == "message.created"
    assert event.payload["message"]["body_text"] == "kept reply"


@pg_only
async def test_pg_write_does_not_dispatch_before_commit(store: Store, ingestor: Ingestor,
                                                        listening_store: Store) -> None:
    agent_id = await new_agent(store, "ann@support.example")
    subscription = listening_store.hub.subscribe()
    try:
        created = await _ingest_and_hear(ingestor, subscription)
        async with store.write() as session:
            await add_message(session, created.conversation_id, agent_id, "Reply")
            with pytest.raises(TimeoutError):
                await next_event(subscription, within=0.3)
        event = await next_event(subscription, within=5)
    finally:
        subscription.close()
    assert event.payload["message"]["body_text"] == "Reply"



@pg_only
async def test_pg_listener_replays_events_committed_while_it_was_cut_off(
    store: Store, ingestor: Ingestor, listener: PgEventListener
) -> None:
    subscription = listener.store.hub.subscribe()
    admin = await asyncpg.connect(_pg_admin_dsn())
    try:
        cut = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND query ILIKE 'LISTEN%'", LISTENER_APP,
        )
        assert cut == 1
        # Committed while the listener's connection is gone: no NOTIFY can reach it.
        result = await ingestor.ingest(inbound("<while-away@x>"))
        heard = [await next_event(subscription, within=5) for _ in range(2)]
        await asyncio.wait_for(listener.connected.wait(), 5)
        # After the replay, new events arrive by NOTIFY again, each exactly once.
        later = await ingestor.ingest(inbound("<after@x>", text="later"))
        again = [await next_event(subscription, within=5) for _ in range(2)]
        with pytest.raises(TimeoutError):
            await next_event(subscription, within=0.3)
    finally:
        subscription.close()
        await admin.close()
    assert [(e.kind, e.conversation_id) for e in heard] == [
        ("conversation.created", result.conversation_id),
        ("message.created", result.conversation_id),
    ]
    assert [e.conversation_id for e in again] == [later.conversation_id] * 2
