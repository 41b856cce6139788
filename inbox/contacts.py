"""Contacts: resolving who wrote a message, and merging two records of one person."""

from __future__ import annotations

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.audit import audit
from inbox.inbound import Sender
from inbox.models import Contact, ContactIdentity, Conversation, Message
from inbox.models.base import utcnow
from inbox.types import Channel
from inbox.views import ContactView


class ContactError(ValueError):
    pass


class ContactNotFound(ContactError):
    pass


def normalise(channel: Channel, address: str) -> str:
    address = address.strip()
    return address.lower() if channel in (Channel.EMAIL, Channel.FORM) else address


async def _live(session: AsyncSession, contact_id: int) -> Contact:
    """The contact row, following merges to the contact that absorbed this one."""
    for _ in range(32):
        contact = await session.get_one(Contact, contact_id)
        if contact.merged_into_id is None:
            return contact
        contact_id = contact.merged_into_id
    raise ContactError(f"contact {contact_id}: merge chain too long")


async def resolve_contact(session: AsyncSession, channel: Channel, sender: Sender) -> ContactView:
    """The contact behind ``sender``, created with its identities if new.

    One query looks up every identity the sender brings (the channel's address, and the
    email when known); a sender known on one channel gains the other identity.
    """
    address = normalise(channel, sender.address)
    email = sender.email.strip().lower() if sender.email else None
    if channel in (Channel.EMAIL, Channel.FORM):
        email = email or address
    wanted = {(channel, address)}
    if email:
        wanted.add((Channel.EMAIL, email))
    rows = await session.execute(
        select(ContactIdentity.channel, ContactIdentity.value, ContactIdentity.contact_id).where(
            or_(*(
                and_(ContactIdentity.channel == c.value, ContactIdentity.value == v)
                for c, v in wanted
            ))
        )
    )
    known = {(Channel(c), v): contact_id for c, v, contact_id in rows}
    found = known.get((channel, address)) or (known.get((Channel.EMAIL, email)) if email else None)
    now = utcnow()
    if found is None:
        name = sender.name.strip()[:200] if sender.name else None
        contact = Contact(name=name or None, email=email, created_at=now)
        session.add(contact)
        await session.flush()
    else:
        contact = await _live(session, found)
    session.add_all(
        ContactIdentity(contact_id=contact.id, channel=c.value, value=v, created_at=now)
        for c, v in wanted
        if (c, v) not in known
    )
    return ContactView(contact.id, contact.name, contact.email)


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
