"""Agents' writes to conversations: replies, notes and changes of state."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.audit import audit
from inbox.contacts import resolve_contact
from inbox.events import record_event
from inbox.inbound import Sender
from inbox.ingest import sanitise_html
from inbox.models import (
    Agent,
    Conversation,
    ConversationTag,
    Message,
    OutboxItem,
    Team,
)
from inbox.models.base import utcnow
from inbox.queries import conversation_summary, message_view
from inbox.types import Channel, DeliveryStatus, Direction, Priority, Status
from inbox.views import MessageView, iso

MAX_BODY_CHARS = 100_000
MAX_TAGS = 50
MAX_TAG_CHARS = 64
EMAIL_ADDRESS = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


class ActionError(ValueError):
    """A change the store refuses. ``field`` names the offending input, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AlreadyExists(ActionError):
    """The change would duplicate something unique (an agent's email, say)."""


class NotFound(LookupError):
    pass


UNSET: Any = object()


@dataclass(frozen=True)
class ConversationChanges:
    status: Status | None = None
    snoozed_until: datetime | None = None
    priority: Priority | None = None
    tags: tuple[str, ...] | None = None
    assignee_id: int | None = UNSET
    team_id: int | None = UNSET
    changed: frozenset[str] = field(default=frozenset())


async def _locked(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    return conversation


async def add_message(
    session: AsyncSession,
    conversation_id: int,
    author_id: int,
    body: str,
    *,
    internal: bool = False,
    html: str | None = None,
) -> MessageView:
    """Store an agent's reply and queue it for delivery, or store an internal note.

    The reply and its outbox item are one transaction: a reply is never saved without
    being queued, nor queued without being saved.
    """
    if not body.strip():
        raise ActionError("body must not be empty", "body")
    if len(body) > MAX_BODY_CHARS:
        raise ActionError(f"body is longer than {MAX_BODY_CHARS} characters", "body")
    conversation = await _locked(session, conversation_id)
    now = utcnow()
    direction = Direction.NOTE if internal else Direction.OUTBOUND
    message = Message(
        conversation_id=conversation.id,
        direction=direction.value,
        channel=conversation.channel,
        author_agent_id=author_id,
        body_text=body,
        body_html=sanitise_html(html),
        meta={},
        delivery_status=None if internal else DeliveryStatus.QUEUED.value,
        created_at=now,
    )
    session.add(message)
    await session.flush()
    changes: dict[str, Any] = {}
    if not internal:
        session.add(
            OutboxItem(
                message_id=message.id, channel=conversation.channel, status="pending",
                attempts=0, next_attempt_at=now, created_at=now,
            )
        )
        if conversation.first_response_at is None:
            conversation.first_response_at = now
            changes["first_response_at"] = iso(now)
        conversation.last_message_at = max(conversation.last_message_at, now)
    conversation.updated_at = now
    await session.flush()
    summary = (await conversation_summary(session, conversation.id)).to_json()
    view = message_view(message)
    await record_event(
        session, "message.created", {"conversation": summary, "message": view.to_json()},
        conversation.id,
    )
    return view


def _clean_tags(tags: tuple[str, ...]) -> list[str]:
    cleaned = sorted({t.strip().lower() for t in tags if t.strip()})
    if len(cleaned) > MAX_TAGS:
        raise ActionError(f"at most {MAX_TAGS} tags", "tags")
    for tag in cleaned:
        if len(tag) > MAX_TAG_CHARS:
            raise ActionError(f"tag longer than {MAX_TAG_CHARS} characters: {tag[:20]}...", "tags")
    return cleaned


async def _apply_status(
    conversation: Conversation, changes: ConversationChanges, now: datetime
) -> dict[str, Any]:
    status = changes.status
    if status is None:
        if "snoozed_until" in changes.changed:
            raise ActionError("snoozed_until needs status 'snoozed'", "snoozed_until")
        return {}
    if status is Status.SNOOZED:
        if changes.snoozed_until is None:
            raise ActionError("status 'snoozed' needs snoozed_until", "snoozed_until")
        if changes.snoozed_until <= now:
            raise ActionError("snoozed_until must be in the future", "snoozed_until")
        conversation.snoozed_until = changes.snoozed_until
    elif changes.snoozed_until is not None:
        raise ActionError("snoozed_until is only valid with status 'snoozed'", "snoozed_until")
    else:
        conversation.snoozed_until = None
    if status is Status.RESOLVED and conversation.status != Status.RESOLVED.value:
        conversation.resolved_at = now
    elif status is not Status.RESOLVED:
        conversation.resolved_at = None
    conversation.status = status.value
    return {"status": status.value, "snoozed_until": iso(conversation.snoozed_until)}


async def _apply_assignment(
    session: AsyncSession, conversation: Conversation, changes: ConversationChanges
) -> dict[str, Any]:
    applied: dict[str, Any] = {}
    if changes.assignee_id is not UNSET:
        if changes.assignee_id is not None and not await session.scalar(
            select(Agent.id).where(Agent.id == changes.assignee_id, Agent.active.is_(True))
        ):
            raise ActionError(f"no active agent {changes.assignee_id}", "assignee_id")
        conversation.assignee_id = changes.assignee_id
        applied["assignee_id"] = changes.assignee_id
    if changes.team_id is not UNSET:
        if changes.team_id is not None and await session.get(Team, changes.team_id) is None:
            raise ActionError(f"no team {changes.team_id}", "team_id")
        conversation.team_id = changes.team_id
        applied["team_id"] = changes.team_id
    return applied


async def update_conversation(
    session: AsyncSession, conversation_id: int, actor_id: int | None, changes: ConversationChanges
) -> dict[str, Any]:
    """Change status, priority, tags, assignee or team. Returns what actually changed."""
    conversation = await _locked(session, conversation_id)
    now = utcnow()
    before = {
        "status": conversation.status, "priority": conversation.priority,
        "assignee_id": conversation.assignee_id, "team_id": conversation.team_id,
    }
    applied = await _apply_status(conversation, changes, now)
    if changes.priority is not None:
        conversation.priority = changes.priority.value
        applied["priority"] = changes.priority.value
    applied.update(await _apply_assignment(session, conversation, changes))
    if changes.tags is not None:
        tags = _clean_tags(changes.tags)
        await session.execute(
            delete(ConversationTag).where(ConversationTag.conversation_id == conversation.id)
        )
        session.add_all(ConversationTag(conversation_id=conversation.id, tag=t) for t in tags)
        applied["tags"] = tags
    if not applied:
        return {}
    conversation.updated_at = now
    await session.flush()
    summary = (await conversation_summary(session, conversation.id)).to_json()
    await record_event(
        session, "conversation.updated", {"conversation": summary, "changes": applied},
        conversation.id,
    )
    await audit(
        session, actor_id, "conversation.update", "conversation", conversation.id,
        {"before": {k: before[k] for k in applied if k in before}, "after": applied},
    )
    return applied


async def start_conversation(
    session: AsyncSession,
    agent_id: int,
    *,
    email: str,
    name: str | None,
    subject: str,
    body: str,
    priority: Priority = Priority.NORMAL,
    tags: tuple[str, ...] = (),
    assignee_id: int | None = None,
    team_id: int | None = None,
) -> int:
    """An agent writes to a customer first (an email the customer did not start).

    The conversation, its first outbound message and the outbox row commit together.
    """
    email = email.strip().lower()
    if not EMAIL_ADDRESS.match(email):
        raise ActionError(f"not an email address: {email[:100]!r}", "email")
    if not subject.strip() or len(subject) > 998:
        raise ActionError("subject must be 1-998 characters", "subject")
    contact_id = (await resolve_contact(session, Channel.EMAIL, Sender(email, name))).id
    now = utcnow()
    conversation = Conversation(
        channel=Channel.EMAIL.value, subject=subject.strip(), status=Status.OPEN.value,
        priority=priority.value, contact_id=contact_id, created_at=now, updated_at=now,
        last_message_at=now,
    )
    session.add(conversation)
    await session.flush()
    await audit(
        session, agent_id, "conversation.create", "conversation", conversation.id,
        {"channel": Channel.EMAIL.value, "contact_id": contact_id, "subject": subject.strip()},
    )
    await _apply_assignment(
        session, conversation, ConversationChanges(assignee_id=assignee_id, team_id=team_id)
    )
    if tags:
        session.add_all(
            ConversationTag(conversation_id=conversation.id, tag=t) for t in _clean_tags(tags)
        )
    await session.flush()
    summary = (await conversation_summary(session, conversation.id)).to_json()
    await record_event(session, "conversation.created", {"conversation": summary}, conversation.id)
    await add_message(session, conversation.id, agent_id, body)
    return conversation.id
