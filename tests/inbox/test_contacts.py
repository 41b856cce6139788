"""Contacts: one person across channels, and merging two records of one person."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from inbox.contacts import ContactError, merge_contacts
from inbox.db import Store
from inbox.inbound import InboundMessage, Sender
from inbox.ingest import Ingestor
from inbox.models import AuditEntry, Contact, ContactIdentity, Conversation, Message
from inbox.types import Channel
from tests.conftest import inbound
from tests.inbox.support import count


def chat(external_id: str, sender: Sender, **kwargs: Any) -> InboundMessage:
    """A chat message from a visitor who may have told us their email."""
    return replace(inbound(external_id, channel=Channel.CHAT, **kwargs), sender=sender)


async def _contact_of(store: Store, conversation_id: int) -> int:
    async with store.read() as session:
        return (await session.get_one(Conversation, conversation_id)).contact_id


async def _identities(store: Store, contact_id: int) -> set[tuple[str, str]]:
    async with store.read() as session:
        rows = await session.execute(
            select(ContactIdentity.channel, ContactIdentity.value).where(
                ContactIdentity.contact_id == contact_id
            )
        )
        return {(channel, value) for channel, value in rows}


async def test_email_address_case_does_not_split_a_contact(
    store: Store, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(inbound("<1@x>", sender="Jane.Doe@Example.com"))
    second = await ingestor.ingest(inbound("<2@x>", sender=" jane.doe@example.com ", text="b"))
    assert await _contact_of(store, first.conversation_id) == await _contact_of(
        store, second.conversation_id
    )
    assert await count(store, Contact) == 1


async def test_chat_visitor_with_email_joins_the_contact_who_emailed(
    store: Store, ingestor: Ingestor
) -> None:
    mailed = await ingestor.ingest(inbound("<1@x>", sender="jane@example.com", name="Jane"))
    chatted = await ingestor.ingest(
        chat("chat-1", Sender("visitor-42", email="Jane@Example.com"), text="hi from chat")
    )
    contact_id = await _contact_of(store, mailed.conversation_id)

    assert await _contact_of(store, chatted.conversation_id) == contact_id
    assert await count(store, Contact) == 1
    assert await _identities(store, contact_id) == {
        ("email", "jane@example.com"), ("chat", "visitor-42")
    }


async def test_form_submitter_joins_the_contact_who_emailed(
    store: Store, ingestor: Ingestor
) -> None:
    mailed = await ingestor.ingest(inbound("<1@x>", sender="jane@example.com"))
    form = await ingestor.ingest(inbound("form-1", channel=Channel.FORM, sender="JANE@example.com",
                                         text="form question"))
    contact_id = await _contact_of(store, mailed.conversation_id)
    assert await _contact_of(store, form.conversation_id) == contact_id
    assert await _identities(store, contact_id) == {
        ("email", "jane@example.com"), ("form", "jane@example.com")
    }


async def test_chat_visitor_without_email_is_a_new_contact(
    store: Store, ingestor: Ingestor
) -> None:
    await ingestor.ingest(inbound("<1@x>", sender="jane@example.com"))
    await ingestor.ingest(inbound("chat-1", channel=Channel.CHAT, sender="visitor-42"))
    assert await count(store, Contact) == 2


async def test_chat_visitor_who_gives_email_first_is_found_by_email_later(
    store: Store, ingestor: Ingestor
) -> None:
    chatted = await ingestor.ingest(
        chat("chat-1", Sender("visitor-7", email="bob@example.com"))
    )
    mailed = await ingestor.ingest(inbound("<1@x>", sender="BOB@example.com", text="by mail"))
    assert await _contact_of(store, chatted.conversation_id) == await _contact_of(
        store, mailed.conversation_id
    )
    async with store.read() as session:
        contact = await session.get_one(Contact, await _contact_of(store, mailed.conversation_id))
    assert contact.email == "bob@example.com"


async def test_merge_moves_conversations_identities_and_messages(
    store: Store, ingestor: Ingestor
) -> None:
    mailed = await ingestor.ingest(inbound("<1@x>", sender="jane@example.com", name="Jane"))
    chatted = await ingestor.ingest(inbound("chat-1", channel=Channel.CHAT, sender="visitor-9"))
    keep_id = await _contact_of(store, mailed.conversation_id)
    merge_id = await _contact_of(store, chatted.conversation_id)
    assert keep_id != merge_id

    async with store.write() as session:
        await merge_contacts(session, keep_id=keep_id, merge_id=merge_id, actor_id=None)

    assert await _contact_of(store, chatted.conversation_id) == keep_id
    assert await _identities(store, keep_id) == {("email", "jane@example.com"),
                                                 ("chat", "visitor-9")}
    assert await _identities(store, merge_id) == set()
    async with store.read() as session:
        merged = await session.get_one(Contact, merge_id)
        kept = await session.get_one(Contact, keep_id)
        authors = set(await session.scalars(select(Message.author_contact_id)))
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "contact.merge"))
    assert merged.merged_into_id == keep_id
    assert kept.merged_into_id is None and kept.name == "Jane"
    assert authors == {keep_id}
    assert entry is not None
    assert entry.entity_id == str(keep_id) and entry.changes == {"merged": merge_id}
    assert entry.actor_type == "system"


async def test_ingest_after_merge_resolves_to_the_kept_contact(
    store: Store, ingestor: Ingestor
) -> None:
    mailed = await ingestor.ingest(inbound("<1@x>", sender="jane@example.com"))
    chatted = await ingestor.ingest(inbound("chat-1", channel=Channel.CHAT, sender="visitor-9"))
    keep_id = await _contact_of(store, mailed.conversation_id)
    merge_id = await _contact_of(store, chatted.conversation_id)
    async with store.write() as session:
        await merge_contacts(session, keep_id=keep_id, merge_id=merge_id, actor_id=None)

    # The merged visitor continues their chat, and also starts a fresh one.
    continued = await ingestor.ingest(
        inbound("chat-2", channel=Channel.CHAT, sender="visitor-9", text="still here",
                conversation_id=chatted.conversation_id)
    )
    fresh = await ingestor.ingest(inbound("chat-3", channel=Channel.CHAT, sender="visitor-9",
                                          text="new topic"))

    assert continued.conversation_id == chatted.conversation_id
    assert await _contact_of(store, fresh.conversation_id) == keep_id
    async with store.read() as session:
        author = await session.scalar(
            select(Message.author_contact_id).where(Message.id == fresh.message_id)
        )
    assert author == keep_id
    assert await count(store, Contact) == 2


async def test_merge_refuses_self_missing_and_already_merged(
    store: Store, ingestor: Ingestor
) -> None:
    contacts: list[int] = []
    for address in ("a@x.org", "b@x.org", "c@x.org"):
        result = await ingestor.ingest(inbound(f"<{address}>", sender=address))
        contacts.append(await _contact_of(store, result.conversation_id))
    a, b, c = contacts

    with pytest.raises(ContactError, match="itself"):
        async with store.write() as session:
            await merge_contacts(session, keep_id=a, merge_id=a, actor_id=None)
    with pytest.raises(ContactError, match="no such contact"):
        async with store.write() as session:
            await merge_contacts(session, keep_id=a, merge_id=987_654, actor_id=None)

    async with store.write() as session:
        await merge_contacts(session, keep_id=a, merge_id=b, actor_id=None)
    with pytest.raises(ContactError, match="already merged"):
        async with store.write() as session:
            await merge_contacts(session, keep_id=c, merge_id=b, actor_id=None)
    with pytest.raises(ContactError, match="already merged"):
        async with store.write() as session:
            await merge_contacts(session, keep_id=b, merge_id=c, actor_id=None)
    assert await count(store, AuditEntry, AuditEntry.action == "contact.merge") == 1
