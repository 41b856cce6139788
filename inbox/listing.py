"""Conversation lists with filters and keyset pagination.

A cursor names the last row seen by its sort key and id, so a walk stays stable while
conversations arrive: new ones sort before the cursor and never shift the pages after it.
(With ``order=recent`` a conversation that gets a new message during the walk moves to
the top, as in any activity-sorted inbox; ``order=newest`` never moves anything.)
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.access import Viewer, visible
from inbox.models import Conversation, ConversationTag, Message
from inbox.queries import conversation_summaries
from inbox.types import Channel, Status
from inbox.views import ConversationSummary

Order = Literal["recent", "newest", "oldest"]
MAX_LIMIT = 100
MAX_QUERY_CHARS = 200


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class ConversationFilter:
    statuses: tuple[Status, ...] = ()
    channels: tuple[Channel, ...] = ()
    assignee: Literal["any", "none"] | int = "any"
    team_id: int | None = None
    tag: str | None = None
    query: str | None = None
    order: Order = "recent"


@dataclass(frozen=True)
class Page:
    items: tuple[ConversationSummary, ...]
    next_cursor: str | None


def encode_cursor(order: Order, key: datetime | int, row_id: int) -> str:
    raw = json.dumps([order, key.isoformat() if isinstance(key, datetime) else key, row_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[datetime | int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        cursor_order, key, row_id = json.loads(base64.urlsafe_b64decode(padded))
        if cursor_order != order or not isinstance(row_id, int):
            raise ValueError
        if order == "recent":
            parsed = datetime.fromisoformat(key)
            if parsed.tzinfo is None:
                raise ValueError
            return parsed, row_id
        return int(key), row_id
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise BadCursor("cursor is not valid for this list") from None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters(f: ConversationFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.statuses:
        conditions.append(Conversation.status.in_([s.value for s in f.statuses]))
    if f.channels:
        conditions.append(Conversation.channel.in_([c.value for c in f.channels]))
    if f.assignee == "none":
        conditions.append(Conversation.assignee_id.is_(None))
    elif isinstance(f.assignee, int):
        conditions.append(Conversation.assignee_id == f.assignee)
    if f.team_id is not None:
        conditions.append(Conversation.team_id == f.team_id)
    if f.tag:
        conditions.append(
            exists().where(
                ConversationTag.conversation_id == Conversation.id, ConversationTag.tag == f.tag
            )
        )
    if f.query:
        pattern = f"%{_escape_like(f.query.lower())}%"
        conditions.append(
            or_(
                func.lower(Conversation.subject).like(pattern, escape="\\"),
                exists().where(
                    Message.conversation_id == Conversation.id,
                    func.lower(Message.body_text).like(pattern, escape="\\"),
                ),
            )
        )
    return conditions


async def list_conversations(
    session: AsyncSession,
    viewer: Viewer,
    f: ConversationFilter,
    *,
    limit: int = 25,
    cursor: str | None = None,
) -> Page:
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Conversation).where(visible(viewer), *_filters(f))
    keys: tuple[Any, ...]
    if f.order == "recent":
        keys = (Conversation.last_message_at.desc(), Conversation.id.desc())
    elif f.order == "newest":
        keys = (Conversation.id.desc(),)
    else:
        keys = (Conversation.id.asc(),)
    if cursor:
        key, row_id = decode_cursor(cursor, f.order)
        if f.order == "recent":
            assert isinstance(key, datetime)
            query = query.where(
                or_(
                    Conversation.last_message_at < key,
                    and_(Conversation.last_message_at == key, Conversation.id < row_id),
                )
            )
        elif f.order == "newest":
            query = query.where(Conversation.id < row_id)
        else:
            query = query.where(Conversation.id > row_id)
    rows = list(await session.scalars(query.order_by(*keys).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        sort_key: datetime | int = last.last_message_at if f.order == "recent" else last.id
        next_cursor = encode_cursor(f.order, sort_key, last.id)
    return Page(tuple(await conversation_summaries(session, rows)), next_cursor)
