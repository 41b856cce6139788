"""The one ingest path: every channel's inbound message enters the store here.

In one transaction ``Ingestor.ingest`` resolves the contact, threads the message onto a
conversation or opens one, stores the message and its attachments, and records events.
It is idempotent on channel + external id + content hash: the same message twice, even
concurrently, is stored once, and the second call returns the first one's ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import nh3
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.batch import GroupCommitter
from inbox.blobs import BlobStore
from inbox.contacts import resolve_contact
from inbox.db import Store
from inbox.events import EventSpec, record_events
from inbox.inbound import MAX_HEADER_CHARS, InboundMessage
from inbox.models import (
    Attachment,
    Conversation,
    ConversationSkill,
    Message,
    Team,
)
from inbox.models.base import utcnow
from inbox.queries import message_view, summary_of, tags_and_skills
from inbox.threading import DEFAULT_THREADERS, Threader
from inbox.types import Channel, Direction, Status

log = logging.getLogger(__name__)

RETRIES = 3


@dataclass(frozen=True)
class IngestResult:
    conversation_id: int
    message_id: int
    created_conversation: bool
    duplicate: bool


def sanitise_html(html: str | None) -> str | None:
    """HTML safe to show agents: no scripts, handlers, styles or frames."""
    if not html:
        return None
    return nh3.clean(html, link_rel="noopener noreferrer nofollow")


class Ingestor:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        threaders: Mapping[Channel, Threader] = DEFAULT_THREADERS,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.threaders = threaders
        self._group: GroupCommitter[IngestResult] | None = (
            GroupCommitter(store) if store.is_sqlite else None
        )

    async def ingest(self, message: InboundMessage) -> IngestResult:
        """Store ``message`` durably and return where it went. Safe to call concurrently."""
        content_hash = message.content_hash
        html = await asyncio.to_thread(sanitise_html, message.html) if message.html else None
        blobs = [
            await asyncio.to_thread(self.blobs.put, a.data) for a in message.attachments
        ]

        async def work(session: AsyncSession) -> IngestResult:
            return await self._ingest(session, message, content_hash, html, blobs)

        if self._group is not None:
            result: IngestResult = await self._group.submit(work)
            return result
        for attempt in range(RETRIES):
            try:
                async with self.store.write() as session:
                    return await work(session)
            except IntegrityError:
                # A concurrent ingest of the same message, contact or identity won the race.
                # Retrying sees its committed rows: the duplicate check below answers.
                if attempt == RETRIES - 1:
                    raise
                log.debug("ingest retry %d for %s", attempt + 1, message.external_id)
        raise AssertionError("unreachable")

    async def _ingest(
        self,
        session: AsyncSession,
        message: InboundMessage,
        content_hash: str,
        html: str | None,
        blobs: list[str],
    ) -> IngestResult:
        existing = (
            await session.execute(
                select(Message.id, Message.conversation_id).where(
                    Message.channel == message.channel.value,
                    Message.external_id == message.external_id,
                    Message.content_hash == content_hash,
                )
            )
        ).first()
        if existing is not None:
            return IngestResult(existing.conversation_id, existing.id, False, True)

        contact = await resolve_contact(session, message.channel, message.sender)
        contact_id = contact.id
        threader = self.threaders.get(message.channel, DEFAULT_THREADERS[message.channel])
        conversation_id = await threader(session, message, contact_id)
        now = utcnow()
        created = conversation_id is None
        if created:
            conversation = await self._open_conversation(session, message, contact_id, now)
            tags: list[str] = []
            skills = sorted(dict(message.routing.skills).items())
        else:
            conversation = await session.get_one(
                Conversation, conversation_id, with_for_update=True
            )
            tags, skills = await tags_and_skills(session, conversation.id)
        reopened = conversation.status != Status.OPEN.value and not created
        if reopened:
            conversation.status = Status.OPEN.value
            conversation.snoozed_until = None
            conversation.resolved_at = None
        conversation.last_message_at = max(conversation.last_message_at, now)
        conversation.last_customer_message_at = now
        conversation.updated_at = now

        row = Message(
            conversation_id=conversation.id,
            direction=Direction.INBOUND.value,
            channel=message.channel.value,
            author_contact_id=contact_id,
            body_text=message.text,
            body_html=html,
            external_id=message.external_id,
            content_hash=content_hash,
            message_id_header=_header(message.thread.message_id),
            in_reply_to=_header(message.thread.in_reply_to),
            references=" ".join(message.thread.references) or None,
            # Arrival time orders the thread; the sender's own claim is kept for display.
            meta={**dict(message.meta), "received_at": message.received_at.isoformat()},
            created_at=now,
        )
        session.add(row)
        await session.flush()
        attachments = [
            Attachment(
                message_id=row.id, filename=a.filename[:255], media_type=a.media_type[:255],
                size=len(a.data), sha256=sha,
            )
            for a, sha in zip(message.attachments, blobs, strict=True)
        ]
        if attachments:
            session.add_all(attachments)
            await session.flush()

        # Built from the rows just written, not re-read: they are what will commit.
        summary = summary_of(conversation, contact, tags, skills).to_json()
        events: list[EventSpec] = []
        if created:
            events.append(("conversation.created", {"conversation": summary}, conversation.id))
        elif reopened:
            events.append((
                "conversation.updated",
                {"conversation": summary, "changes": {"status": Status.OPEN.value}},
                conversation.id,
            ))
        events.append((
            "message.created",
            {"conversation": summary, "message": message_view(row, attachments).to_json()},
            conversation.id,
        ))
        await record_events(session, events)
        return IngestResult(conversation.id, row.id, created, False)

    async def _open_conversation(
        self, session: AsyncSession, message: InboundMessage, contact_id: int, now: datetime
    ) -> Conversation:
        team_id = None
        if message.routing.team:
            team_id = await session.scalar(select(Team.id).where(Team.name == message.routing.team))
            if team_id is None:
                log.warning("channel named unknown team %r; leaving conversation without team",
                            message.routing.team)
        conversation = Conversation(
            channel=message.channel.value,
            subject=(message.subject or "").strip()[:998] or _subject_from(message.text),
            status=Status.OPEN.value,
            priority=message.routing.priority.value,
            contact_id=contact_id,
            team_id=team_id,
            created_at=now,
            updated_at=now,
            last_message_at=now,
        )
        session.add(conversation)
        await session.flush()
        session.add_all(
            ConversationSkill(conversation_id=conversation.id, skill=skill, level=level)
            for skill, level in dict(message.routing.skills).items()
        )
        return conversation


def _header(value: str | None) -> str | None:
    """A message id no longer than a header line may be; a longer one is junk to thread on."""
    return value if value and len(value) <= MAX_HEADER_CHARS else None


def _subject_from(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return (first[:77] + "...") if len(first) > 80 else (first or "(no subject)")
