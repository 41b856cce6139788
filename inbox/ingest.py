"""The one ingest path: every channel's inbound message enters the store here.

``Ingestor.ingest`` resolves the contact, threads the message onto a conversation or
opens one, stores the message and its attachments, and records events, all in one
transaction. It is idempotent on channel + external id + content hash: the same message
twice, even concurrently, is stored once, and the second call returns the first one's ids.

Concurrent calls are stored together: a ``Batcher`` hands up to ``MAX_BATCH`` waiting
messages to ``_store``, which works set-wise, with about fifteen statements and one
commit for the whole batch. If a batch fails, each of its messages is tried again alone,
so one bad message fails only its own caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

import nh3
from sqlalchemy import BindParameter, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inbox.batch import MAX_BATCH, Batcher
from inbox.blobs import BlobStore
from inbox.bulk import IdRanges, insert_plain, insert_rows, table_of
from inbox.contacts import resolve_contacts
from inbox.db import Store
from inbox.events import EventSpec, insert_events
from inbox.inbound import InboundMessage
from inbox.models import (
    Attachment,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationSkill,
    ConversationTag,
    Event,
    Message,
    Team,
)
from inbox.models.base import utcnow
from inbox.queries import message_view, summary_of
from inbox.threading import DEFAULT_THREADERS, SameAs, Target, Threadable, Threader, header
from inbox.types import Channel, Direction, Status
from inbox.views import AttachmentView, ContactView

log = logging.getLogger(__name__)

RETRIES = 3
INLINE_TEXT_CHARS = 64 * 1024


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


@dataclass(frozen=True)
class _Prepared:
    """A message with the work done outside the transaction: hash, clean HTML, blobs."""

    message: InboundMessage
    content_hash: str
    html: str | None
    blobs: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.message.channel.value, self.message.external_id, self.content_hash)


@dataclass
class _Conversation:
    """A conversation as this batch sees and changes it (the columns a summary needs)."""

    id: int
    channel: str
    subject: str
    status: str
    snoozed_until: datetime | None
    priority: str
    contact_id: int
    assignee_id: int | None
    team_id: int | None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    last_customer_message_at: datetime | None
    last_message_at: datetime
    resolved_at: datetime | None
    tags: list[str] = field(default_factory=list)
    skills: list[tuple[str, int]] = field(default_factory=list)
    created: bool = False  # opened by this batch
    reopened: bool = False


COLUMNS = tuple(
    f.name for f in fields(_Conversation) if f.name not in ("tags", "skills", "created", "reopened")
)
CHANGED = ("status", "snoozed_until", "resolved_at", "last_message_at",
           "last_customer_message_at", "updated_at")


@dataclass
class _NewMessage:
    """A message row as inserted, and what its view needs."""

    id: int
    conversation_id: int
    direction: str
    channel: str
    author_agent_id: int | None
    author_contact_id: int | None
    body_text: str
    body_html: str | None
    external_id: str
    content_hash: str
    message_id_header: str | None
    in_reply_to: str | None
    references: str | None
    meta: dict[str, Any]
    delivery_status: str | None
    delivery_error: str | None
    created_at: datetime


MESSAGE_COLUMNS = tuple(f.name for f in fields(_NewMessage) if f.name != "id")

# The statements of the store step, built once: building one costs more than running it.
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_STORED = select(
    Message.external_id, Message.content_hash, Message.id, Message.conversation_id
).where(Message.channel == bindparam("channel"), Message.external_id.in_(_IDS))
_TEAMS = select(Team.name, Team.id).where(Team.name.in_(bindparam("names", expanding=True)))
_CONVERSATIONS = (
    select(*(table_of(Conversation).c[name] for name in COLUMNS))
    .where(Conversation.id.in_(_IDS)).order_by(Conversation.id).with_for_update()
)
_TAGS = (
    select(ConversationTag.conversation_id, ConversationTag.tag)
    .where(ConversationTag.conversation_id.in_(_IDS)).order_by(ConversationTag.tag)
)
_SKILLS = (
    select(ConversationSkill.conversation_id, ConversationSkill.skill, ConversationSkill.level)
    .where(ConversationSkill.conversation_id.in_(_IDS)).order_by(ConversationSkill.skill)
)
_TOUCH = (
    update(table_of(Conversation))
    .where(table_of(Conversation).c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in CHANGED})
)


class Ingestor:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        threaders: Mapping[Channel, Threader] = DEFAULT_THREADERS,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.threaders = threaders
        self._batcher: Batcher[_Prepared, IngestResult] = Batcher(self._run_batch, max_batch)

    async def ingest(self, message: InboundMessage) -> IngestResult:
        """Store ``message`` durably and return where it went. Safe to call concurrently."""
        if message.html or message.attachments or len(message.text) > INLINE_TEXT_CHARS:
            prepared = await asyncio.to_thread(self._prepare, message)
        else:  # a hash of a short text: cheaper than the trip to a thread and back
            prepared = self._prepare(message)
        return await self._batcher.submit(prepared)

    async def ingest_many(
        self, messages: Sequence[InboundMessage]
    ) -> list[IngestResult | Exception]:
        """Store several messages together (a mailbox fetch, say): one outcome per message,
        a result or the exception that kept that message out, in order."""
        prepared = await asyncio.to_thread(lambda: [_attempt(self._prepare, m) for m in messages])
        ready = [p for p in prepared if isinstance(p, _Prepared)]
        stored = iter(await self._batcher.submit_many(ready))
        return [next(stored) if isinstance(p, _Prepared) else p for p in prepared]

    def _prepare(self, message: InboundMessage) -> _Prepared:
        """CPU and file work, done in a thread so the event loop stays free."""
        return _Prepared(
            message,
            message.content_hash,
            sanitise_html(message.html),
            tuple(self.blobs.put(a.data) for a in message.attachments),
        )

    async def _run_batch(self, batch: Sequence[_Prepared]) -> list[IngestResult | Exception]:
        if len(batch) > 1:
            try:
                return list(await self._transaction(batch))
            except Exception as exc:
                log.info("ingest batch of %d failed (%s); storing one by one", len(batch), exc)
        return [await self._alone(item) for item in batch]

    async def _alone(self, item: _Prepared) -> IngestResult | Exception:
        for attempt in range(RETRIES):
            try:
                return (await self._transaction([item]))[0]
            except IntegrityError as exc:
                # A concurrent ingest (another process, on PostgreSQL) of the same message,
                # contact or identity won the race. A retry sees its committed rows.
                if attempt == RETRIES - 1:
                    return exc
                log.debug("ingest retry %d for %s", attempt + 1, item.message.external_id)
            except Exception as exc:
                return exc
        raise AssertionError("unreachable")

    async def _transaction(self, batch: Sequence[_Prepared]) -> list[IngestResult]:
        return await self.store.write_sync(self._store, batch)

    def _store(self, session: Session, batch: Sequence[_Prepared]) -> list[IngestResult]:
        results: list[IngestResult | None] = [None] * len(batch)
        on_file = _stored(session, batch)
        first: dict[tuple[str, str, str], int] = {}  # key -> first index of it in the batch
        fresh: list[int] = []
        for i, item in enumerate(batch):
            if item.key in on_file:
                message_id, conversation_id = on_file[item.key]
                results[i] = IngestResult(conversation_id, message_id, False, True)
            elif item.key not in first:
                first[item.key] = i
                fresh.append(i)

        ranges = IdRanges(Contact, ContactIdentity, Conversation, Message, Attachment, Event)
        contacts = resolve_contacts(
            session, [(batch[i].message.channel, batch[i].message.sender) for i in fresh], ranges
        )
        contact_of = dict(zip(fresh, contacts, strict=True))
        targets = self._thread(session, batch, fresh, contact_of)
        now = utcnow()
        conversation_of = self._conversations(
            session, batch, fresh, contact_of, targets, now, ranges
        )

        messages = [
            _message_row(batch[i], conversation_of[i].id, contact_of[i].id, now) for i in fresh
        ]
        ids = insert_rows(session, Message, [
            {name: getattr(m, name) for name in MESSAGE_COLUMNS} for m in messages
        ], ranges)
        for message, message_id in zip(messages, ids, strict=True):
            message.id = message_id
        row_of = dict(zip(fresh, messages, strict=True))
        attachments = self._attachments(session, batch, row_of, ranges)

        # Every message of a conversation in this batch sees it as the batch leaves it:
        # all of them arrive at the same ``now``.
        summaries: dict[int, dict[str, Any]] = {}
        events: list[EventSpec] = []
        for i in fresh:
            conversation, row = conversation_of[i], row_of[i]
            summary = summaries.get(conversation.id)
            opened = summary is None and conversation.created
            if summary is None:
                summary = summary_of(
                    conversation, contact_of[i], conversation.tags, conversation.skills
                ).to_json()
                summaries[conversation.id] = summary
                if conversation.created:
                    events.append(
                        ("conversation.created", {"conversation": summary}, conversation.id)
                    )
                elif conversation.reopened:
                    events.append((
                        "conversation.updated",
                        {"conversation": summary, "changes": {"status": Status.OPEN.value}},
                        conversation.id,
                    ))
            view = message_view(row, attachments.get(i, ())).to_json()
            events.append(
                ("message.created", {"conversation": summary, "message": view}, conversation.id)
            )
            results[i] = IngestResult(conversation.id, row.id, opened, False)
        insert_events(session, events, ranges)

        for i, item in enumerate(batch):
            if results[i] is None:  # the same message twice in this batch
                again = results[first[item.key]]
                assert again is not None
                results[i] = IngestResult(again.conversation_id, again.message_id, False, True)
        return [r for r in results if r is not None]

    def _attachments(
        self,
        session: Session,
        batch: Sequence[_Prepared],
        row_of: dict[int, _NewMessage],
        ranges: IdRanges,
    ) -> dict[int, list[AttachmentView]]:
        owners = [
            (i, AttachmentView(0, a.filename[:255], a.media_type[:255], len(a.data), sha))
            for i in row_of
            for a, sha in zip(batch[i].message.attachments, batch[i].blobs, strict=True)
        ]
        ids = insert_rows(session, Attachment, [
            {"message_id": row_of[i].id, "filename": v.filename, "media_type": v.media_type,
             "size": v.size, "sha256": v.sha256}
            for i, v in owners
        ], ranges)
        found: dict[int, list[AttachmentView]] = {}
        for (i, v), attachment_id in zip(owners, ids, strict=True):
            found.setdefault(i, []).append(replace(v, id=attachment_id))
        return found

    def _thread(
        self,
        session: Session,
        batch: Sequence[_Prepared],
        fresh: list[int],
        contact_of: dict[int, ContactView],
    ) -> dict[int, Target]:
        """Each fresh message's target, with ``SameAs`` pointing at batch indices."""
        targets: dict[int, Target] = {}
        for channel in Channel:
            mine = [i for i in fresh if batch[i].message.channel == channel]
            if not mine:
                continue
            threader = self.threaders.get(channel, DEFAULT_THREADERS[channel])
            answers = threader(
                session, [Threadable(batch[i].message, contact_of[i].id) for i in mine]
            )
            if len(answers) != len(mine):
                raise RuntimeError(
                    f"{channel.value} threader answered {len(answers)} of {len(mine)}"
                )
            for n, (i, target) in enumerate(zip(mine, answers, strict=True)):
                if isinstance(target, SameAs):
                    if not 0 <= target.index < n:
                        raise RuntimeError(
                            f"{channel.value} threader: SameAs must name an earlier message"
                        )
                    target = SameAs(mine[target.index])
                targets[i] = target
        return targets

    def _conversations(
        self,
        session: Session,
        batch: Sequence[_Prepared],
        fresh: list[int],
        contact_of: dict[int, ContactView],
        targets: dict[int, Target],
        now: datetime,
        ranges: IdRanges,
    ) -> dict[int, _Conversation]:
        """Each fresh message's conversation, opened, reopened and touched as needed, and
        written back."""
        known = _load(session, sorted({t for t in targets.values() if isinstance(t, int)}))
        opening = [i for i in fresh if targets[i] is None]
        teams = _team_ids(session, {batch[i].message.routing.team for i in opening})
        conversation_of: dict[int, _Conversation] = {}
        for i in fresh:
            target = targets[i]
            if target is None:
                conversation = _open(batch[i].message, contact_of[i].id, teams, now)
            elif isinstance(target, SameAs):
                conversation = conversation_of[target.index]
            else:
                conversation = known[target]
            if conversation.status != Status.OPEN.value:
                conversation.status = Status.OPEN.value
                conversation.snoozed_until = None
                conversation.resolved_at = None
                conversation.reopened = True
            conversation.last_message_at = max(conversation.last_message_at, now)
            conversation.last_customer_message_at = now
            conversation.updated_at = now
            conversation_of[i] = conversation

        new = [conversation_of[i] for i in opening]
        ids = insert_rows(session, Conversation, [
            {name: getattr(c, name) for name in COLUMNS if name != "id"} for c in new
        ], ranges)
        for conversation, conversation_id in zip(new, ids, strict=True):
            conversation.id = conversation_id
        insert_plain(session, ConversationSkill, [
            {"conversation_id": c.id, "skill": skill, "level": level}
            for c in new
            for skill, level in c.skills
        ])
        if known:
            session.execute(
                _TOUCH,
                [
                    {"b_id": c.id, **{f"b_{name}": getattr(c, name) for name in CHANGED}}
                    for c in known.values()
                ],
            )
        return conversation_of


def _load(session: Session, ids: list[int]) -> dict[int, _Conversation]:
    """Conversations to continue, locked in id order so that two processes never wait
    on each other in a circle, with their tags and skills."""
    if not ids:
        return {}
    rows = session.execute(_CONVERSATIONS, {"ids": ids})
    known = {row.id: _Conversation(**row._mapping) for row in rows}
    for conversation_id, tag in session.execute(_TAGS, {"ids": ids}):
        known[conversation_id].tags.append(tag)
    for conversation_id, skill, level in session.execute(_SKILLS, {"ids": ids}):
        known[conversation_id].skills.append((skill, level))
    return known


def _attempt(
    prepare: Callable[[InboundMessage], _Prepared], message: InboundMessage
) -> _Prepared | Exception:
    try:
        return prepare(message)
    except Exception as exc:
        return exc


def _stored(
    session: Session, batch: Sequence[_Prepared]
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """Which of the batch's messages are on file already: key -> (message, conversation)."""
    keys = {item.key for item in batch}
    by_channel: dict[str, set[str]] = {}
    for channel, wanted_id, _ in keys:
        by_channel.setdefault(channel, set()).add(wanted_id)
    found: dict[tuple[str, str, str], tuple[int, int]] = {}
    for channel, ids in sorted(by_channel.items()):
        rows = session.execute(_STORED, {"channel": channel, "ids": sorted(ids)})
        for external_id, content_hash, message_id, conversation_id in rows:
            key = (channel, external_id or "", content_hash or "")
            if key in keys:
                found[key] = (message_id, conversation_id)
    return found


def _team_ids(session: Session, names: set[str | None]) -> dict[str, int]:
    wanted = sorted(n for n in names if n)
    if not wanted:
        return {}
    rows = session.execute(_TEAMS, {"names": wanted})
    found = {name: team_id for name, team_id in rows}
    for name in set(wanted) - found.keys():
        log.warning("channel named unknown team %r; leaving conversation without team", name)
    return found


def _open(
    message: InboundMessage, contact_id: int, teams: dict[str, int], now: datetime
) -> _Conversation:
    return _Conversation(
        id=0,  # until inserted
        channel=message.channel.value,
        subject=(message.subject or "").strip()[:998] or _subject_from(message.text),
        status=Status.OPEN.value,
        snoozed_until=None,
        priority=message.routing.priority.value,
        contact_id=contact_id,
        assignee_id=None,
        team_id=teams.get(message.routing.team or ""),
        created_at=now,
        updated_at=now,
        first_response_at=None,
        last_customer_message_at=None,
        last_message_at=now,
        resolved_at=None,
        skills=sorted(dict(message.routing.skills).items()),
        created=True,
    )


def _message_row(
    item: _Prepared, conversation_id: int, contact_id: int, now: datetime
) -> _NewMessage:
    message = item.message
    return _NewMessage(
        id=0,  # until inserted
        conversation_id=conversation_id,
        direction=Direction.INBOUND.value,
        channel=message.channel.value,
        author_agent_id=None,
        author_contact_id=contact_id,
        body_text=message.text,
        body_html=item.html,
        external_id=message.external_id,
        content_hash=item.content_hash,
        message_id_header=header(message.thread.message_id),
        in_reply_to=header(message.thread.in_reply_to),
        references=" ".join(message.thread.references) or None,
        # Arrival time orders the thread; the sender's own claim is kept for display.
        meta={**dict(message.meta), "received_at": message.received_at.isoformat()},
        delivery_status=None,
        delivery_error=None,
        created_at=now,
    )


def _subject_from(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return (first[:77] + "...") if len(first) > 80 else (first or "(no subject)")
