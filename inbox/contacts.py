"""Contacts: resolving who wrote a message, and merging two records of one person."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.audit import audit
from inbox.inbound import Sender
from inbox.models import Contact, ContactIdentity, Conversation, Message
from inbox.models.base import utcnow
from inbox.types import Channel


class ContactError(ValueError):
    pass


class ContactNotFound(ContactError):
    pass


def normalise(channel: Channel, address: str) -> str:
    address = address.strip()
    return address.lower() if channel in (Channel.EMAIL, Channel.FORM) else address


async def _live(session: AsyncSession, contact_id: int) -> int:
    """Follow merges to the contact that absorbed this one."""
    for _ in range(32):
        merged_into = await session.scalar(
            select(Contact.merged_into_id).where(Contact.id == contact_id)
        )
        if merged_into is None:
            return contact_id
        contact_id = merged_into
    raise ContactError(f"contact {contact_id}: merge chain too long")


async def _find(session: AsyncSession, channel: Channel, value: str) -> int | None:
    return await session.scalar(
        select(ContactIdentity.contact_id).where(
            ContactIdentity.channel == channel.value, ContactIdentity.value == value
        )
    )


async def resolve_contact(session: AsyncSession, channel: Channel, sender: Sender) -> int:
    """The contact behind ``sender``, created with its identities if new."""
    now = utcnow()
    address = normalise(channel, sender.address)
    email = sender.email.strip().lower() if sender.email else None
    if channel in (Channel.EMAIL, Channel.FORM):
        email = email or address
    contact_id = await _find(session, channel, address)
    if contact_id is None and email:
        contact_id = await _find(session, Channel.EMAIL, email)
    if contact_id is None:
        name = sender.name.strip()[:200] if sender.name else None
        contact = Contact(name=name or None, email=email, created_at=now)
        session.add(contact)
        await session.flush()
        contact_id = contact.id
    else:
        contact_id = await _live(session, contact_id)
    wanted = {(channel, address)}
    if email:
        wanted.add((Channel.EMAIL, email))
    for ident_channel, value in wanted:
        if await _find(session, ident_channel, value) is None:
            session.add(
                ContactIdentity(
                    contact_id=contact_id, channel=ident_channel.value, value=value, created_at=now
                )
            )
    return contact_id


async def merge_contacts(
    session: AsyncSession, *, keep_id: int, merge_id: int, actor_id: int | None
) -> None:
    """Move everything of ``merge_id`` onto ``keep_id``; the merged row stays as a pointer."""
    if keep_id == merge_id:
        raise ContactError("cannot merge a contact into itself")
    keep = await session.get(Contact, keep_id, with_for_update=True)
    merged = await session.get(Contact, merge_id, with_for_update=True)
    if keep is None or merged is None:
        raise ContactNotFound(f"no such contact: {merge_id if keep else keep_id}")
    if keep.merged_into_id is not None or merged.merged_into_id is not None:
        raise ContactError("contact was already merged")
    await session.execute(
        update(ContactIdentity).where(ContactIdentity.contact_id == merge_id).values(
            contact_id=keep_id
        )
    )
    await session.execute(
        update(Conversation).where(Conversation.contact_id == merge_id).values(contact_id=keep_id)
    )
    await session.execute(
        update(Message).where(Message.author_contact_id == merge_id).values(
            author_contact_id=keep_id
        )
    )
    keep.name = keep.name or merged.name
    keep.email = keep.email or merged.email
    merged.merged_into_id = keep_id
    await audit(
        session, actor_id, "contact.merge", "contact", keep_id, {"merged": merge_id}
    )
