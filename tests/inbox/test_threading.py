"""Threading: which conversation an inbound message continues, and reopening on reply."""

from __future__ import annotations

from datetime import timedelta

from inbox.actions.conversations import ConversationChanges, update_conversation
from inbox.db import Store
from inbox.inbound import InboundMessage, ThreadHeaders
from inbox.ingest import Ingestor
from inbox.models import Conversation
from inbox.models.base import utcnow
from inbox.types import Channel, Status
from tests.conftest import inbound
from tests.inbox.support import count, stored_events


def original() -> InboundMessage:
    """The first email of a thread, with Message-ID <a@example.com>."""
    return inbound("<a@example.com>", thread=ThreadHeaders(message_id="<a@example.com>"))


async def test_email_reply_by_in_reply_to_joins_the_conversation(ingestor: Ingestor) -> None:
    first = await ingestor.ingest(
        inbound("<a@example.com>", thread=ThreadHeaders(message_id="<a@example.com>"))
    )
    reply = await ingestor.ingest(
        inbound(
            "<b@example.com>", text="Any news?", subject="Re: Where is my order?",
            thread=ThreadHeaders(message_id="<b@example.com>", in_reply_to="<a@example.com>"),
        )
    )
    assert not reply.created_conversation
    assert reply.conversation_id == first.conversation_id
    assert reply.message_id != first.message_id


async def test_email_reply_by_references_only_joins_the_conversation(
    store: Store, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(
        inbound("<a@example.com>", thread=ThreadHeaders(message_id="<a@example.com>"))
    )
    # An unrelated thread in between, so "the latest conversation" would be the wrong answer.
    await ingestor.ingest(
        inbound("<x@example.com>", text="Other topic", thread=ThreadHeaders("<x@example.com>"))
    )
    reply = await ingestor.ingest(
        inbound(
            "<c@example.com>", text="Still waiting",
            thread=ThreadHeaders(
                message_id="<c@example.com>",
                references=("<unknown@example.com>", "<a@example.com>"),
            ),
        )
    )
    assert reply.conversation_id == first.conversation_id
    assert await count(store, Conversation) == 2


async def test_email_without_thread_headers_starts_a_conversation(ingestor: Ingestor) -> None:
    first = await ingestor.ingest(original())
    second = await ingestor.ingest(inbound("<b@example.com>", text="A new question"))
    assert second.created_conversation
    assert second.conversation_id != first.conversation_id


async def test_email_reply_naming_an_unknown_message_starts_a_conversation(
    ingestor: Ingestor,
) -> None:
    first = await ingestor.ingest(original())
    reply = await ingestor.ingest(
        inbound("<b@example.com>", text="?", thread=ThreadHeaders(in_reply_to="<zzz@example.com>"))
    )
    assert reply.created_conversation
    assert reply.conversation_id != first.conversation_id


async def test_chat_hint_continues_own_conversation(ingestor: Ingestor) -> None:
    first = await ingestor.ingest(inbound("c1", channel=Channel.CHAT, sender="visitor-1"))
    second = await ingestor.ingest(
        inbound("c2", channel=Channel.CHAT, sender="visitor-1", text="hello?",
                conversation_id=first.conversation_id)
    )
    assert not second.created_conversation
    assert second.conversation_id == first.conversation_id


async def test_chat_hint_to_another_contacts_conversation_starts_a_new_one(
    store: Store, ingestor: Ingestor
) -> None:
    victim = await ingestor.ingest(inbound("c1", channel=Channel.CHAT, sender="visitor-1"))
    intruder = await ingestor.ingest(
        inbound("c2", channel=Channel.CHAT, sender="visitor-2", text="let me in",
                conversation_id=victim.conversation_id)
    )
    assert intruder.created_conversation
    assert intruder.conversation_id != victim.conversation_id
    async with store.read() as session:
        conversation = await session.get_one(Conversation, victim.conversation_id)
        other = await session.get_one(Conversation, intruder.conversation_id)
    assert conversation.contact_id != other.contact_id


async def test_chat_hint_to_a_missing_conversation_starts_a_new_one(ingestor: Ingestor) -> None:
    result = await ingestor.ingest(
        inbound("c1", channel=Channel.CHAT, sender="visitor-1", conversation_id=999_999)
    )
    assert result.created_conversation
    assert result.conversation_id != 999_999


async def test_reply_to_resolved_conversation_reopens_it(store: Store, ingestor: Ingestor) -> None:
    first = await ingestor.ingest(original())
    async with store.write() as session:
        await update_conversation(
            session, first.conversation_id, None, ConversationChanges(status=Status.RESOLVED)
        )
    async with store.read() as session:
        resolved = await session.get_one(Conversation, first.conversation_id)
    assert resolved.status == Status.RESOLVED.value and resolved.resolved_at is not None
    already = len(await stored_events(store, first.conversation_id))

    reply = await ingestor.ingest(
        inbound("<b@example.com>", text="It broke again",
                thread=ThreadHeaders("<b@example.com>", in_reply_to="<a@example.com>"))
    )

    assert reply.conversation_id == first.conversation_id
    async with store.read() as session:
        reopened = await session.get_one(Conversation, first.conversation_id)
    assert reopened.status == Status.OPEN.value
    assert reopened.resolved_at is None
    new_events = (await stored_events(store, first.conversation_id))[already:]
    assert [e.kind for e in new_events] == ["conversation.updated", "message.created"]
    assert new_events[0].payload["changes"] == {"status": "open"}
    assert new_events[0].payload["conversation"]["status"] == "open"


async def test_reply_to_snoozed_conversation_wakes_it(store: Store, ingestor: Ingestor) -> None:
    first = await ingestor.ingest(inbound("c1", channel=Channel.CHAT, sender="visitor-1"))
    async with store.write() as session:
        await update_conversation(
            session, first.conversation_id, None,
            ConversationChanges(status=Status.SNOOZED, snoozed_until=utcnow() + timedelta(days=1),
                                changed=frozenset({"status", "snoozed_until"})),
        )
    await ingestor.ingest(inbound("c2", channel=Channel.CHAT, sender="visitor-1", text="hi?",
                                  conversation_id=first.conversation_id))
    async with store.read() as session:
        conversation = await session.get_one(Conversation, first.conversation_id)
    assert conversation.status == Status.OPEN.value
    assert conversation.snoozed_until is None


async def test_reply_to_open_conversation_emits_no_update(store: Store, ingestor: Ingestor) -> None:
    first = await ingestor.ingest(inbound("c1", channel=Channel.CHAT, sender="visitor-1"))
    await ingestor.ingest(inbound("c2", channel=Channel.CHAT, sender="visitor-1", text="again",
                                  conversation_id=first.conversation_id))
    kinds = [e.kind for e in await stored_events(store, first.conversation_id)]
    assert kinds == ["conversation.created", "message.created", "message.created"]
