"""Threading: which existing conversation, if any, each inbound message continues.

Each channel has a ``Threader``; ``Ingestor`` is given the mapping, so a channel can plug
in its own rules without touching ingest. A threader decides for a whole batch at once,
in a few queries, because ingest stores messages in batches. Its answer per message is a
conversation id, ``SameAs(i)`` for "the conversation of message ``i`` of this batch" (a
reply that arrives together with what it answers), or ``None`` for a new conversation.

The defaults here are deliberately plain:

* a message that names its conversation (a chat session, a portal reply) continues it,
  provided that conversation belongs to the same contact;
* email continues the conversation holding the latest message whose Message-ID the new
  message names in In-Reply-To or References;
* anything else starts a new conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from inbox.inbound import MAX_HEADER_CHARS, InboundMessage
from inbox.models import Conversation, Message
from inbox.types import Channel

# How many of a message's References are looked up; the last ones are the nearest.
MAX_PARENTS = 50


@dataclass(frozen=True)
class Threadable:
    """One message to thread, with the contact ingest resolved for its sender."""

    message: InboundMessage
    contact_id: int


@dataclass(frozen=True)
class SameAs:
    """Continue the conversation of the batch's message at ``index`` (an earlier one)."""

    index: int


Target = int | SameAs | None

# Built once: on the ingest path, building a statement costs more than running it.
_OWNERS = select(Conversation.id, Conversation.contact_id).where(
    Conversation.id.in_(bindparam("ids", expanding=True))
)
_BY_MESSAGE_ID = select(Message.message_id_header, Message.id, Message.conversation_id).where(
    Message.message_id_header.in_(bindparam("ids", expanding=True)),
    Message.channel == Channel.EMAIL.value,
)


class Threader(Protocol):
    """Synchronous, like the rest of the ingest transaction (see ``inbox.ingest``)."""

    def __call__(self, session: Session, batch: Sequence[Threadable]) -> list[Target]: ...


def header(value: str | None) -> str | None:
    """A message id no longer than a header line may be; a longer one is junk to thread on."""
    return value if value and len(value) <= MAX_HEADER_CHARS else None


def by_conversation_hint(session: Session, batch: Sequence[Threadable]) -> list[Target]:
    hinted = sorted({
        t.message.conversation_id for t in batch if t.message.conversation_id is not None
    })
    owners: dict[int, int] = {}
    if hinted:
        rows = session.execute(_OWNERS, {"ids": hinted})
        owners = {conversation_id: contact_id for conversation_id, contact_id in rows}
    return [
        t.message.conversation_id
        if t.message.conversation_id is not None
        and owners.get(t.message.conversation_id) == t.contact_id
        else None
        for t in batch
    ]


def by_email_headers(session: Session, batch: Sequence[Threadable]) -> list[Target]:
    targets = by_conversation_hint(session, batch)
    parents = [
        [h for h in (t.message.thread.in_reply_to, *t.message.thread.references)
         if h is not None and header(h)]
        [-MAX_PARENTS:]
        if target is None else []
        for t, target in zip(batch, targets, strict=True)
    ]
    wanted = sorted({h for hs in parents for h in hs})
    stored: dict[str, tuple[int, int]] = {}  # Message-ID -> (latest message, its conversation)
    if wanted:
        rows = session.execute(_BY_MESSAGE_ID, {"ids": wanted})
        for message_id, row_id, conversation_id in rows:
            if message_id is None:
                continue
            if message_id not in stored or row_id > stored[message_id][0]:
                stored[message_id] = (row_id, conversation_id)
    earlier: dict[str, int] = {}  # Message-ID -> latest index in this batch
    for i, t in enumerate(batch):
        if parents[i]:
            in_batch = [earlier[h] for h in parents[i] if h in earlier]
            on_file = [stored[h] for h in parents[i] if h in stored]
            # What this batch stores comes after everything on file: it is the latest.
            if in_batch:
                targets[i] = SameAs(max(in_batch))
            elif on_file:
                targets[i] = max(on_file)[1]
        own = header(t.message.thread.message_id)
        if own:
            earlier[own] = i
    return targets


def never(session: Session, batch: Sequence[Threadable]) -> list[Target]:
    return [None] * len(batch)


DEFAULT_THREADERS: Mapping[Channel, Threader] = {
    Channel.EMAIL: by_email_headers,
    Channel.CHAT: by_conversation_hint,
    Channel.FORM: by_conversation_hint,
}
