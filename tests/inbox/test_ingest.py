"""The one ingest path: idempotency (also under concurrency), new conversations, HTML."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.blobs import BlobStore
from inbox.db import Store
from inbox.inbound import InboundMessage, InvalidInbound, RoutingHints, Sender, ThreadHeaders
from inbox.ingest import Ingestor, IngestResult
from inbox.models import (
    Contact,
    ContactIdentity,
    Conversation,
    ConversationSkill,
    Event,
    Message,
)
from inbox.threading import DEFAULT_THREADERS, Target, Threadable
from inbox.types import Channel, Direction, Priority, Status
from tests.conftest import inbound
from tests.inbox.support import count, next_event


async def test_same_message_twice_is_stored_once(store: Store, ingestor: Ingestor) -> None:
    message = inbound("<dup@example.com>")
    first = await ingestor.ingest(message)
    second = await ingestor.ingest(message)

    assert not first.duplicate and first.created_conversation
    assert second.duplicate and not second.created_conversation
    assert (second.conversation_id, second.message_id) == (first.conversation_id, first.message_id)
    assert await count(store, Message) == 1
    assert await count(store, Conversation) == 1


async def test_concurrent_ingest_of_one_message_stores_one_row(
    store: Store, ingestor: Ingestor
) -> None:
    message = inbound("<race@example.com>", sender="racer@example.com")
    results = await asyncio.gather(*(ingestor.ingest(message) for _ in range(10)))

    assert sum(not r.duplicate for r in results) == 1
    assert {(r.conversation_id, r.message_id) for r in results} == {
        (results[0].conversation_id, results[0].message_id)
    }
    assert await count(store, Message) == 1
    assert await count(store, Conversation) == 1
    assert await count(store, Contact) == 1


async def test_reused_external_id_with_other_content_is_a_new_message(
    store: Store, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(inbound("<reused@example.com>", text="First question"))
    second = await ingestor.ingest(inbound("<reused@example.com>", text="Another question"))

    assert not second.duplicate
    assert second.message_id != first.message_id
    async with store.read() as session:
        bodies = set(await session.scalars(select(Message.body_text)))
    assert bodies == {"First question", "Another question"}


async def test_same_external_id_on_another_channel_is_not_a_duplicate(
    store: Store, ingestor: Ingestor
) -> None:
    await ingestor.ingest(inbound("id-1", channel=Channel.EMAIL, sender="a@example.com"))
    result = await ingestor.ingest(inbound("id-1", channel=Channel.FORM, sender="a@example.com"))

    assert not result.duplicate
    assert await count(store, Message) == 2


async def test_concurrent_messages_from_one_new_sender_make_one_contact(
    store: Store, ingestor: Ingestor
) -> None:
    messages = [
        inbound(f"<m{i}@example.com>", sender="New.Person@Example.com", text=f"question {i}")
        for i in range(10)
    ]
    results = await asyncio.gather(*(ingestor.ingest(m) for m in messages))

    assert not any(r.duplicate for r in results)
    assert len({r.message_id for r in results}) == 10
    assert await count(store, Message) == 10
    assert await count(store, Contact) == 1
    async with store.read() as session:
        identities = (await session.execute(
            select(ContactIdentity.channel, ContactIdentity.value)
        )).all()
        owners = set(await session.scalars(select(Conversation.contact_id)))
        authors = set(await session.scalars(select(Message.author_contact_id)))
    assert [tuple(i) for i in identities] == [("email", "new.person@example.com")]
    assert len(owners) == 1 and owners == authors


async def test_a_failing_message_does_not_stop_the_others(store: Store) -> None:
    """Concurrent ingests share a commit on SQLite; one that fails must take only its own
    rows and events with it."""

    def fragile(session: Session, batch: Sequence[Threadable]) -> list[Target]:
        if any(t.message.text == "boom" for t in batch):
            raise RuntimeError("threader failed")
        return DEFAULT_THREADERS[Channel.EMAIL](session, batch)

    ingestor = Ingestor(store, BlobStore(store.data_dir / "blobs"), {Channel.EMAIL: fragile})
    messages = [inbound(f"<{i}@x>", sender=f"s{i}@example.com", text=f"fine {i}")
                for i in range(4)]
    messages.insert(2, inbound("<boom@x>", sender="boom@example.com", text="boom"))
    subscription = store.hub.subscribe()
    try:
        results = await asyncio.gather(*(ingestor.ingest(m) for m in messages),
                                       return_exceptions=True)
        if store.is_sqlite:
            heard = [await next_event(subscription, within=1) for _ in range(8)]
            with pytest.raises(TimeoutError):
                await next_event(subscription, within=0.05)
            assert {e.conversation_id for e in heard} == {
                r.conversation_id for r in results if isinstance(r, IngestResult)
            }
    finally:
        subscription.close()

    assert isinstance(results[2], RuntimeError)
    assert all(isinstance(r, IngestResult) and not r.duplicate for i, r in enumerate(results)
               if i != 2)
    assert await count(store, Message) == 4
    assert await count(store, Conversation) == 4
    assert await count(store, Event) == 8
    assert await count(store, ContactIdentity, ContactIdentity.value == "boom@example.com") == 0
    assert await count(store, Contact) == 4
    # The failed message can be ingested again once the fault is gone.
    retried = await Ingestor(store, BlobStore(store.data_dir / "blobs")).ingest(messages[2])
    assert not retried.duplicate


async def test_new_conversation_takes_subject_priority_and_skills(
    store: Store, ingestor: Ingestor
) -> None:
    message = inbound(
        "form-1", channel=Channel.FORM, subject="  Refund please  ",
        routing=RoutingHints(skills=(("billing", 3), ("french", 2)), priority=Priority.HIGH),
    )
    result = await ingestor.ingest(message)

    async with store.read() as session:
        conversation = await session.get_one(Conversation, result.conversation_id)
        skills = (await session.execute(
            select(ConversationSkill.skill, ConversationSkill.level)
            .where(ConversationSkill.conversation_id == result.conversation_id)
            .order_by(ConversationSkill.skill)
        )).all()
        row = await session.get_one(Message, result.message_id)
    assert conversation.subject == "Refund please"
    assert conversation.status == Status.OPEN.value
    assert conversation.priority == Priority.HIGH.value
    assert conversation.channel == Channel.FORM.value
    assert conversation.last_message_at >= row.created_at
    assert [tuple(s) for s in skills] == [("billing", 3), ("french", 2)]
    assert row.direction == Direction.INBOUND.value
    assert row.body_text == message.text


async def test_new_conversation_times_match_its_first_message(
    store: Store, ingestor: Ingestor
) -> None:
    result = await ingestor.ingest(inbound("<times@example.com>"))
    async with store.read() as session:
        conversation = await session.get_one(Conversation, result.conversation_id)
        row = await session.get_one(Message, result.message_id)
    assert conversation.last_message_at == row.created_at
    assert conversation.last_customer_message_at == conversation.last_message_at


async def test_subject_falls_back_to_first_line_of_text(store: Store, ingestor: Ingestor) -> None:
    long_line = "x" * 100
    short = await ingestor.ingest(inbound("c-1", channel=Channel.CHAT, subject="",
                                          sender="v1", text="\n\n  Hi there  \nmore"))
    long = await ingestor.ingest(inbound("c-2", channel=Channel.CHAT, subject="",
                                         sender="v2", text=long_line))
    async with store.read() as session:
        first = await session.get_one(Conversation, short.conversation_id)
        second = await session.get_one(Conversation, long.conversation_id)
    assert first.subject == "Hi there"
    assert second.subject == "x" * 77 + "..."


async def test_html_is_sanitised(store: Store, ingestor: Ingestor) -> None:
    html = (
        '<p onclick="steal()">Hello <b>there</b></p>'
        "<script>alert('x')</script>"
        '<a href="https://example.com/" onmouseover="evil()">link</a>'
        '<iframe src="https://evil.example/"></iframe>'
    )
    result = await ingestor.ingest(inbound("<html@example.com>", html=html))

    async with store.read() as session:
        stored = await session.scalar(
            select(Message.body_html).where(Message.id == result.message_id)
        )
    assert stored is not None
    lowered = stored.lower()
    for forbidden in ("<script", "alert(", "onclick", "onmouseover", "steal()", "<iframe"):
        assert forbidden not in lowered
    assert "<b>there</b>" in stored
    assert 'href="https://example.com/"' in stored
    assert "noopener" in stored


async def test_plain_message_has_no_html(store: Store, ingestor: Ingestor) -> None:
    result = await ingestor.ingest(inbound("<plain@example.com>"))
    async with store.read() as session:
        row = await session.get_one(Message, result.message_id)
    assert row.body_html is None


def _long_name() -> InboundMessage:
    return inbound("<name@x>", name="N" * 300)  # Contact.name is String(200)


def _long_chat_email() -> InboundMessage:
    sender = Sender("visitor-1", email="x" * 330 + "@example.com")  # String(320)
    return replace(inbound("c-1", channel=Channel.CHAT), sender=sender)


def _long_message_id() -> InboundMessage:
    ids = ThreadHeaders(message_id="<" + "m" * 1200 + ">", in_reply_to="<" + "a" * 1200 + ">")
    return inbound("<long@x>", thread=ids)  # message_id_header is String(998)


def _long_skill_name() -> InboundMessage:
    return inbound("<skill@x>", routing=RoutingHints(skills=(("s" * 100, 1),)))  # String(64)


def _skill_level_out_of_range() -> InboundMessage:
    return inbound("<level@x>", routing=RoutingHints(skills=(("billing", 11),)))  # CHECK 1-10


@pytest.mark.parametrize("build", [
    pytest.param(_long_name, id="sender-name-300"),
    pytest.param(_long_chat_email, id="sender-email-342"),
    pytest.param(_long_message_id, id="message-id-1202"),
    pytest.param(_long_skill_name, id="skill-name-100"),
    pytest.param(_skill_level_out_of_range, id="skill-level-11"),
])
async def test_every_accepted_message_can_be_stored(
    store: Store, ingestor: Ingestor, build: Callable[[], InboundMessage]
) -> None:
    """A field the schema cannot hold is refused when the message is built
    (``InvalidInbound``, which adapters answer in their protocol's terms) or stored; never
    a database error that depends on the backend."""
    try:
        message = build()
    except InvalidInbound:
        return
    result = await ingestor.ingest(message)
    assert await count(store, Message, Message.id == result.message_id) == 1


def test_inbound_message_refuses_bad_fields() -> None:
    with pytest.raises(InvalidInbound, match="timezone"):
        inbound(received_at=datetime(2026, 1, 1))
    with pytest.raises(InvalidInbound, match="external_id"):
        inbound("")
    with pytest.raises(InvalidInbound, match="sender"):
        InboundMessage(
            channel=Channel.CHAT, external_id="x", sender=Sender(""), text="hi",
            received_at=inbound().received_at,
        )
