"""Threading: which existing conversation, if any, an inbound message continues.

Each channel has a ``Threader``; ``Ingestor`` is given the mapping, so a channel can plug
in its own rules without touching ingest. The defaults here are deliberately plain:

* a message that names its conversation (a chat session, a portal reply) continues it,
  provided that conversation belongs to the same contact;
* email continues the conversation holding a message whose Message-ID the new message
  names in In-Reply-To or References;
* anything else starts a new conversation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.inbound import InboundMessage
from inbox.models import Conversation, Message
from inbox.types import Channel


class Threader(Protocol):
    async def __call__(
        self, session: AsyncSession, message: InboundMessage, contact_id: int
    ) -> int | None: ...


async def by_conversation_hint(
    session: AsyncSession, message: InboundMessage, contact_id: int
) -> int | None:
    if message.conversation_id is None:
        return None
    owner = await session.scalar(
        select(Conversation.contact_id).where(Conversation.id == message.conversation_id)
    )
    return message.conversation_id if owner == contact_id else None


async def by_email_headers(
    session: AsyncSession, message: InboundMessage, contact_id: int
) -> int | None:
    hinted = await by_conversation_hint(session, message, contact_id)
    if hinted is not None:
        return hinted
    parents = [h for h in (message.thread.in_reply_to, *message.thread.references) if h]
    if not parents:
        return None
    found = await session.scalar(
        select(Message.conversation_id)
        .where(Message.message_id_header.in_(parents[-50:]), Message.channel == message.channel)
        .order_by(Message.id.desc())
        .limit(1)
    )
    return found


async def never(session: AsyncSession, message: InboundMessage, contact_id: int) -> int | None:
    return None


DEFAULT_THREADERS: Mapping[Channel, Threader] = {
    Channel.EMAIL: by_email_headers,
    Channel.CHAT: by_conversation_hint,
    Channel.FORM: by_conversation_hint,
}
