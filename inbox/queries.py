"""Read queries that turn rows into the frozen views of ``inbox.views``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.models import (
    Agent,
    AgentCapacity,
    AgentSkill,
    Attachment,
    Contact,
    Conversation,
    ConversationSkill,
    ConversationTag,
    Message,
    TeamMember,
)
from inbox.views import (
    AgentView,
    AttachmentView,
    ContactView,
    ConversationDetail,
    ConversationSummary,
    MessageView,
)


class ConversationFields(Protocol):
    """What a summary is built from: a ``Conversation`` row, or ingest's working copy."""

    @property
    def id(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def snoozed_until(self) -> datetime | None: ...
    @property
    def priority(self) -> str: ...
    @property
    def assignee_id(self) -> int | None: ...
    @property
    def team_id(self) -> int | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def first_response_at(self) -> datetime | None: ...
    @property
    def last_customer_message_at(self) -> datetime | None: ...
    @property
    def last_message_at(self) -> datetime: ...
    @property
    def resolved_at(self) -> datetime | None: ...


class MessageFields(Protocol):
    """What a message view is built from: a ``Message`` row, or ingest's new row."""

    @property
    def id(self) -> int: ...
    @property
    def conversation_id(self) -> int: ...
    @property
    def direction(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def author_agent_id(self) -> int | None: ...
    @property
    def author_contact_id(self) -> int | None: ...
    @property
    def body_text(self) -> str: ...
    @property
    def body_html(self) -> str | None: ...
    @property
    def message_id_header(self) -> str | None: ...
    @property
    def in_reply_to(self) -> str | None: ...
    @property
    def references(self) -> str | None: ...
    @property
    def delivery_status(self) -> str | None: ...
    @property
    def delivery_error(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


def summary_of(
    c: ConversationFields,
    contact: ContactView,
    tags: Sequence[str],
    skills: Sequence[tuple[str, int]],
) -> ConversationSummary:
    return ConversationSummary(
        id=c.id, channel=c.channel, subject=c.subject, status=c.status,
        snoozed_until=c.snoozed_until, priority=c.priority,
        assignee_id=c.assignee_id, team_id=c.team_id, contact=contact,
        tags=tuple(tags), skills=tuple(skills),
        created_at=c.created_at, updated_at=c.updated_at,
        first_response_at=c.first_response_at,
        last_customer_message_at=c.last_customer_message_at,
        last_message_at=c.last_message_at, resolved_at=c.resolved_at,
    )


async def conversation_summaries(
    session: AsyncSession, conversations: Sequence[Conversation]
) -> list[ConversationSummary]:
    """Summaries in the order given, with contacts, tags and skills in three queries."""
    if not conversations:
        return []
    ids = [c.id for c in conversations]
    contact_ids = {c.contact_id for c in conversations}
    contacts = {
        row.id: row
        for row in (await session.scalars(select(Contact).where(Contact.id.in_(contact_ids))))
    }
    tags: dict[int, list[str]] = defaultdict(list)
    for conv_id, tag in await session.execute(
        select(ConversationTag.conversation_id, ConversationTag.tag)
        .where(ConversationTag.conversation_id.in_(ids))
        .order_by(ConversationTag.tag)
    ):
        tags[conv_id].append(tag)
    skills: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for conv_id, skill, level in await session.execute(
        select(ConversationSkill.conversation_id, ConversationSkill.skill, ConversationSkill.level)
        .where(ConversationSkill.conversation_id.in_(ids))
        .order_by(ConversationSkill.skill)
    ):
        skills[conv_id].append((skill, level))
    result = []
    for c in conversations:
        contact = contacts[c.contact_id]
        view = ContactView(contact.id, contact.name, contact.email)
        result.append(summary_of(c, view, tags[c.id], skills[c.id]))
    return result


async def conversation_summary(session: AsyncSession, conversation_id: int) -> ConversationSummary:
    conversation = await session.get_one(Conversation, conversation_id)
    return (await conversation_summaries(session, [conversation]))[0]


def message_view(
    message: MessageFields, attachments: Sequence[AttachmentView | Attachment] = ()
) -> MessageView:
    return MessageView(
        id=message.id, conversation_id=message.conversation_id, direction=message.direction,
        channel=message.channel, author_agent_id=message.author_agent_id,
        author_contact_id=message.author_contact_id, body_text=message.body_text,
        body_html=message.body_html, message_id_header=message.message_id_header,
        in_reply_to=message.in_reply_to,
        references=tuple((message.references or "").split()),
        delivery_status=message.delivery_status, delivery_error=message.delivery_error,
        created_at=message.created_at,
        attachments=tuple(
            a if isinstance(a, AttachmentView)
            else AttachmentView(a.id, a.filename, a.media_type, a.size, a.sha256)
            for a in attachments
        ),
    )


async def conversation_detail(
    session: AsyncSession, conversation_id: int, *, include_notes: bool = True
) -> ConversationDetail | None:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    query = select(Message).where(Message.conversation_id == conversation_id)
    if not include_notes:
        query = query.where(Message.direction != "note")
    messages = list(await session.scalars(query.order_by(Message.created_at, Message.id)))
    attachments: dict[int, list[Attachment]] = defaultdict(list)
    if messages:
        for attachment in await session.scalars(
            select(Attachment)
            .where(Attachment.message_id.in_([m.id for m in messages]))
            .order_by(Attachment.id)
        ):
            attachments[attachment.message_id].append(attachment)
    summary = (await conversation_summaries(session, [conversation]))[0]
    return ConversationDetail(
        summary, tuple(message_view(m, attachments[m.id]) for m in messages)
    )


async def agent_view(session: AsyncSession, agent_id: int) -> AgentView | None:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        return None
    skills = await session.execute(
        select(AgentSkill.skill, AgentSkill.level)
        .where(AgentSkill.agent_id == agent_id)
        .order_by(AgentSkill.skill)
    )
    capacity = await session.execute(
        select(AgentCapacity.channel, AgentCapacity.capacity)
        .where(AgentCapacity.agent_id == agent_id)
        .order_by(AgentCapacity.channel)
    )
    teams = await session.scalars(
        select(TeamMember.team_id)
        .where(TeamMember.agent_id == agent_id)
        .order_by(TeamMember.team_id)
    )
    return AgentView(
        id=agent.id, email=agent.email, name=agent.name, role=agent.role,
        presence=agent.presence, active=agent.active,
        skills=tuple((s, lvl) for s, lvl in skills), capacity=tuple((c, n) for c, n in capacity),
        team_ids=tuple(teams),
    )


async def agent_by_email(session: AsyncSession, email: str) -> Agent | None:
    return await session.scalar(select(Agent).where(Agent.email == email.strip().lower()))
