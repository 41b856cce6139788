"""Read-side shapes: frozen dataclasses built from rows, handed to the API, templates and
events. Nothing outside ``inbox`` ever sees an ORM row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True)
class ContactView:
    id: int
    name: str | None
    email: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email}


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    channel: str
    subject: str
    status: str
    snoozed_until: datetime | None
    priority: str
    assignee_id: int | None
    team_id: int | None
    contact: ContactView
    tags: tuple[str, ...]
    skills: tuple[tuple[str, int], ...]
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    last_customer_message_at: datetime | None
    last_message_at: datetime
    resolved_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "subject": self.subject,
            "status": self.status,
            "snoozed_until": iso(self.snoozed_until),
            "priority": self.priority,
            "assignee_id": self.assignee_id,
            "team_id": self.team_id,
            "contact": self.contact.to_json(),
            "tags": list(self.tags),
            "skills": [{"skill": s, "level": lvl} for s, lvl in self.skills],
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "first_response_at": iso(self.first_response_at),
            "last_customer_message_at": iso(self.last_customer_message_at),
            "last_message_at": iso(self.last_message_at),
            "resolved_at": iso(self.resolved_at),
        }


@dataclass(frozen=True)
class AttachmentView:
    id: int
    filename: str
    media_type: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "filename": self.filename, "media_type": self.media_type,
            "size": self.size, "sha256": self.sha256,
        }


@dataclass(frozen=True)
class MessageView:
    id: int
    conversation_id: int
    direction: str
    channel: str
    author_agent_id: int | None
    author_contact_id: int | None
    body_text: str
    body_html: str | None
    message_id_header: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    delivery_status: str | None
    delivery_error: str | None
    created_at: datetime
    attachments: tuple[AttachmentView, ...] = ()

    @property
    def internal(self) -> bool:
        return self.direction == "note"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "direction": self.direction,
            "internal": self.internal,
            "channel": self.channel,
            "author_agent_id": self.author_agent_id,
            "author_contact_id": self.author_contact_id,
            "body_text": self.body_text,
            "body_html": self.body_html,
            "message_id": self.message_id_header,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "delivery_status": self.delivery_status,
            "delivery_error": self.delivery_error,
            "created_at": iso(self.created_at),
            "attachments": [a.to_json() for a in self.attachments],
        }


@dataclass(frozen=True)
class ConversationDetail:
    conversation: ConversationSummary
    messages: tuple[MessageView, ...]

    def to_json(self) -> dict[str, Any]:
        data = self.conversation.to_json()
        data["messages"] = [m.to_json() for m in self.messages]
        return data


@dataclass(frozen=True)
class AgentView:
    id: int
    email: str
    name: str
    role: str
    presence: str
    active: bool
    skills: tuple[tuple[str, int], ...]
    capacity: tuple[tuple[str, int], ...]
    team_ids: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "presence": self.presence,
            "active": self.active,
            "skills": {s: lvl for s, lvl in self.skills},
            "capacity": {c: n for c, n in self.capacity},
            "team_ids": list(self.team_ids),
        }
