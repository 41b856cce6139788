"""Contacts: resolving who wrote a message, and merging two records of one person."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from inbox.audit import audit
from inbox.bulk import IdRanges, insert_rows
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


Identity = tuple[Channel, str]


def identities(channel: Channel, sender: Sender) -> tuple[Identity, ...]:
    """The identities a sender brings: the channel's address first, then the email if known."""
    address = normalise(channel, sender.address)
    email = sender.email.strip().lower() if sender.email else None
    if channel in (Channel.EMAIL, Channel.FORM):
        email = email or address
    found = [(channel, address)]
    if email and (Channel.EMAIL, email) not in found:
        found.append((Channel.EMAIL, email))
    return tuple(found)


# Built once: on the ingest path, building a statement costs more than running it.
_IDENTITIES = select(ContactIdentity.value, ContactIdentity.contact_id).where(
    ContactIdentity.channel == bindparam("channel"),
    ContactIdentity.value.in_(bindparam("values", expanding=True)),
)
_CONTACTS = select(Contact.id, Contact.name, Contact.email, Contact.merged_into_id).where(
    Contact.id.in_(bindparam("ids", expanding=True))
)


def _known(session: Session, wanted: set[Identity]) -> dict[Identity, int]:
    """Which of ``wanted`` are on file, and whose: one query per channel."""
    known: dict[Identity, int] = {}
    for channel in sorted({c for c, _ in wanted}):
        values = sorted(v for c, v in wanted if c == channel)
        rows = session.execute(_IDENTITIES, {"channel": channel.value, "values": values})
        known.update(((channel, value), contact_id) for value, contact_id in rows)
    return known


def _live_views(session: Session, ids: set[int]) -> dict[int, ContactView]:
    """Each contact id mapped to the live contact it is, following merges."""
    rows: dict[int, tuple[int | None, ContactView]] = {}
    todo = set(ids)
    for _ in range(32):
        if not todo:
            break
        result = session.execute(_CONTACTS, {"ids": sorted(todo)})
        for cid, name, email, merged_into in result:
            rows[cid] = (merged_into, ContactView(cid, name, email))
        todo = {m for m, _ in rows.values() if m is not None and m not in rows}
    views: dict[int, ContactView] = {}
    for cid in ids:
        current = cid
        for _ in range(32):
            merged_into, view = rows[current]
            if merged_into is None:
                views[cid] = view
                break
            current = merged_into
        else:
            raise ContactError(f"contact {cid}: merge chain too long")
    return views


def resolve_contacts(
    session: Session,
    senders: Sequence[tuple[Channel, Sender]],
    ranges: IdRanges | None = None,
) -> list[ContactView]:
    """The contact behind each sender, creating new contacts and identities as needed.

    A sender known on one channel gains the other identity it brings. Senders later in
    the list see the contacts made for earlier ones, so the same new person twice in one
    batch is one contact. A constant number of statements, however many senders.
    """
    wanted = [identities(channel, sender) for channel, sender in senders]
    known = _known(session, {i for ids in wanted for i in ids})
    views = _live_views(session, set(known.values()))
    now = utcnow()
    # A contact new in this batch is an index into ``created`` until it has an id.
    owner: dict[Identity, ContactView | int] = {i: views[c] for i, c in known.items()}
    created: list[dict[str, Any]] = []
    chosen: list[ContactView | int] = []
    new_identities: list[tuple[Identity, ContactView | int]] = []
    for (_, sender), ids in zip(senders, wanted, strict=True):
        found = next((owner[i] for i in ids if i in owner), None)
        if found is None:
            name = sender.name.strip()[:200] if sender.name else None
            email = next((v for c, v in ids if c == Channel.EMAIL), None)
            found = len(created)
            created.append({"name": name or None, "email": email, "created_at": now})
        for identity in ids:
            if identity not in owner:
                owner[identity] = found
                new_identities.append((identity, found))
        chosen.append(found)
    new_ids = insert_rows(session, Contact, created, ranges)
    made = [
        ContactView(i, row["name"], row["email"])
        for i, row in zip(new_ids, created, strict=True)
    ]

    def view(found: ContactView | int) -> ContactView:
        return made[found] if isinstance(found, int) else found

    insert_rows(session, ContactIdentity, [
        {"contact_id": view(found).id, "channel": c.value, "value": v, "created_at": now}
        for (c, v), found in new_identities
    ], ranges)
    return [view(found) for found in chosen]


async def resolve_contact(session: AsyncSession, channel: Channel, sender: Sender) -> ContactView:
    """The contact behind ``sender``, created with its identities if new."""
    views = await session.run_sync(resolve_contacts, [(channel, sender)])
    return views[0]


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
