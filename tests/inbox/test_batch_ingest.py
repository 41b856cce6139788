"""Ingest in batches: what one transaction for many messages must still get right.

``Ingestor.ingest_many`` queues all its messages at once, so they are stored as one batch;
each test here would fail if the batch were treated as a set of unrelated messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.actions.conversations import ConversationChanges, update_conversation
from inbox.blobs import BlobStore
from inbox.db import Store
from inbox.inbound import InboundAttachment, Sender, ThreadHeaders
from inbox.ingest import Ingestor, IngestResult
from inbox.models import Attachment, Contact, ContactIdentity, Conversation, Message
from inbox.threading import DEFAULT_THREADERS, Target, Threadable
from inbox.types import Channel, Status
from tests.conftest import inbound
from tests.inbox.support import count, stored_events


def results(outcomes: Sequence[IngestResult | Exception]) -> list[IngestResult]:
    assert all(isinstance(o, IngestResult) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, IngestResult)]


async def test_a_reply_in_the_same_batch_as_its_original_joins_it(
    store: Store, ingestor: Ingestor
) -> None:
    first, unrelated, reply, reply_to_reply = results(await ingestor.ingest_many([
        inbound("<a@x>", thread=ThreadHeaders(message_id="<a@x>")),
        inbound("<u@x>", sender="other@example.com", text="Unrelated"),
        inbound("<b@x>", text="Any news?", thread=ThreadHeaders("<b@x>", in_reply_to="<a@x>")),
        inbound("<c@x>", text="Hello?", thread=ThreadHeaders("<c@x>", references=("<b@x>",))),
    ]))
    assert first.created_conversation and unrelated.created_conversation
    assert not reply.created_conversation and not reply_to_reply.created_conversation
    assert reply.conversation_id == reply_to_reply.conversation_id == first.conversation_id
    assert unrelated.conversation_id != first.conversation_id
    assert await count(store, Conversation) == 2
    kinds = [e.kind for e in await stored_events(store, first.conversation_id)]
    assert kinds == ["conversation.created"] + ["message.created"] * 3


async def test_the_same_message_twice_in_a_batch_is_stored_once(
    store: Store, ingestor: Ingestor
) -> None:
    message = inbound("<dup@x>")
    one, two = results(await ingestor.ingest_many([message, message]))
    assert not one.duplicate and two.duplicate
    assert (one.conversation_id, one.message_id) == (two.conversation_id, two.message_id)
    assert await count(store, Message) == 1


async def test_one_new_person_on_two_channels_in_a_batch_is_one_contact(
    store: Store, ingestor: Ingestor
) -> None:
    by_mail, by_chat, again = results(await ingestor.ingest_many([
        inbound("m1", sender="Pat@Example.com"),
        replace(inbound("c1", channel=Channel.CHAT, text="Hi", subject=""),
                sender=Sender("visitor-7", email="pat@example.com")),
        inbound("m2", sender="pat@example.com", text="Second mail"),
    ]))
    assert by_mail.conversation_id != by_chat.conversation_id
    assert await count(store, Contact) == 1
    async with store.read() as session:
        identities = set(await session.execute(
            select(ContactIdentity.channel, ContactIdentity.value)
        ))
        authors = set(await session.scalars(select(Message.author_contact_id)))
    assert identities == {("email", "pat@example.com"), ("chat", "visitor-7")}
    assert len(authors) == 1
    assert again.conversation_id != by_mail.conversation_id  # no thread headers: a new one


async def test_a_batch_reopens_a_resolved_conversation_once(
    store: Store, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(inbound("<a@x>", thread=ThreadHeaders(message_id="<a@x>")))
    async with store.write() as session:
        await update_conversation(
            session, first.conversation_id, None, ConversationChanges(status=Status.RESOLVED)
        )
    already = len(await stored_events(store, first.conversation_id))
    results(await ingestor.ingest_many([
        inbound(f"<r{i}@x>", text=f"again {i}", thread=ThreadHeaders(in_reply_to="<a@x>"))
        for i in range(3)
    ]))
    async with store.read() as session:
        conversation = await session.get_one(Conversation, first.conversation_id)
    assert conversation.status == Status.OPEN.value and conversation.resolved_at is None
    kinds = [e.kind for e in (await stored_events(store, first.conversation_id))[already:]]
    assert kinds == ["conversation.updated"] + ["message.created"] * 3


async def test_attachments_of_a_batch_go_to_their_own_messages(
    store: Store, ingestor: Ingestor
) -> None:
    stored = results(await ingestor.ingest_many([
        inbound(f"f{i}", sender=f"s{i}@example.com", text=f"file {i}", attachments=tuple(
            InboundAttachment(f"{i}-{n}.txt", "text/plain", f"{i}:{n}".encode())
            for n in range(i)
        ))
        for i in range(4)
    ]))
    async with store.read() as session:
        rows = list(await session.execute(select(Attachment.message_id, Attachment.filename)))
    by_message = {r.message_id: sorted(f for m, f in rows if m == r.message_id) for r in stored}
    assert by_message == {
        r.message_id: [f"{i}-{n}.txt" for n in range(i)] for i, r in enumerate(stored)
    }


async def test_a_failing_message_in_a_batch_fails_alone(store: Store) -> None:
    def fragile(session: Session, batch: Sequence[Threadable]) -> list[Target]:
        if any(t.message.text == "boom" for t in batch):
            raise RuntimeError("threader failed")
        return DEFAULT_THREADERS[Channel.EMAIL](session, batch)

    ingestor = Ingestor(store, BlobStore(store.data_dir / "blobs"), {Channel.EMAIL: fragile})
    outcomes = await ingestor.ingest_many([
        inbound("<a@x>", thread=ThreadHeaders(message_id="<a@x>")),
        inbound("<boom@x>", sender="boom@example.com", text="boom"),
        inbound("<b@x>", text="reply", thread=ThreadHeaders(in_reply_to="<a@x>")),
    ])
    assert isinstance(outcomes[1], RuntimeError)
    first, reply = outcomes[0], outcomes[2]
    assert isinstance(first, IngestResult) and isinstance(reply, IngestResult)
    assert reply.conversation_id == first.conversation_id
    assert await count(store, Message) == 2
    assert await count(store, ContactIdentity, ContactIdentity.value == "boom@example.com") == 0
