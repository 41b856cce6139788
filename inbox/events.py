"""Domain events: recorded inside the transaction that causes them, published after commit.

``record_event`` writes an ``events`` row and remembers the event on the session.
``Store.write`` publishes what the session remembered only once the commit succeeded:
on SQLite straight to the in-process ``EventHub``; on PostgreSQL through ``pg_notify``
issued inside the transaction, which PostgreSQL delivers to every listening process at
commit and never for a rolled-back transaction (see ``inbox.pgnotify``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from inbox.bulk import IdRanges, insert_rows
from inbox.models import Event
from inbox.models.base import utcnow
from inbox.views import iso

log = logging.getLogger(__name__)

PENDING_KEY = "guichet.pending_events"

# Every event kind and the keys its payload always carries; tests/inbox/test_events.py
# checks each kind an action emits against this table.
EVENT_SCHEMA: dict[str, frozenset[str]] = {
    "conversation.created": frozenset({"conversation"}),
    "conversation.updated": frozenset({"conversation", "changes"}),
    "message.created": frozenset({"conversation", "message"}),
    "message.delivery": frozenset({"conversation", "message"}),
    "agent.presence": frozenset({"agent_id", "presence"}),
    "routing.rules": frozenset({"version"}),
    "conversation.offered": frozenset({"conversation", "agent_id", "expires_at"}),
    "conversation.offer_ended": frozenset({"conversation", "agent_id", "reason"}),
    # Internal: closes the websockets of a login session; never forwarded to clients.
    "session.ended": frozenset({"agent_id", "session_id"}),
}
INTERNAL_KINDS = frozenset({"session.ended"})


@dataclass(frozen=True)
class DomainEvent:
    id: int
    kind: str
    conversation_id: int | None
    payload: dict[str, Any]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "conversation_id": self.conversation_id,
            "created_at": iso(self.created_at),
            **self.payload,
        }

    @classmethod
    def from_row(cls, row: Event) -> DomainEvent:
        return cls(row.id, row.kind, row.conversation_id, row.payload, row.created_at)


EventSpec = tuple[str, dict[str, Any], int | None]  # kind, payload, conversation id


def insert_events(
    session: Session, specs: list[EventSpec], ranges: IdRanges | None = None
) -> list[DomainEvent]:
    """Write several events with one INSERT; they are published after the commit."""
    now = utcnow()
    for kind, payload, _ in specs:
        missing = EVENT_SCHEMA[kind] - payload.keys()
        if missing:
            raise ValueError(f"event {kind} lacks {sorted(missing)}")
    ids = insert_rows(session, Event, [
        {"kind": kind, "conversation_id": conversation_id, "payload": payload, "created_at": now}
        for kind, payload, conversation_id in specs
    ], ranges)
    events = [
        DomainEvent(event_id, kind, conversation_id, payload, now)
        for event_id, (kind, payload, conversation_id) in zip(ids, specs, strict=True)
    ]
    session.info.setdefault(PENDING_KEY, []).extend(events)
    return events


async def record_events(session: AsyncSession, specs: list[EventSpec]) -> list[DomainEvent]:
    return await session.run_sync(insert_events, specs)


async def record_event(
    session: AsyncSession, kind: str, payload: dict[str, Any], conversation_id: int | None = None
) -> DomainEvent:
    return (await record_events(session, [(kind, payload, conversation_id)]))[0]


def pending_events(session: AsyncSession | Session) -> list[DomainEvent]:
    events: list[DomainEvent] = session.info.pop(PENDING_KEY, [])
    return events


class Subscription:
    """One listener's bounded queue. A listener too slow to keep up is marked overflowed
    and dropped, so one stuck websocket never holds memory for everyone else."""

    def __init__(self, hub: EventHub, limit: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[DomainEvent | None] = asyncio.Queue(limit)
        self.overflowed = False

    def _offer(self, event: DomainEvent) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._hub.unsubscribe(self)
            self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[DomainEvent]:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event

    def drain(self) -> list[DomainEvent]:
        """The events already queued, without waiting (none past an overflow)."""
        events = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                self._queue.put_nowait(None)  # iteration still ends here
                break
            events.append(event)
        return events

    def close(self) -> None:
        self._hub.unsubscribe(self)


class EventHub:
    """In-process fan-out of committed events to subscribers (agent websockets, workers)."""

    def __init__(self, queue_limit: int = 1000) -> None:
        self._subscribers: set[Subscription] = set()
        self._queue_limit = queue_limit

    def subscribe(self) -> Subscription:
        subscription = Subscription(self, self._queue_limit)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def dispatch(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            for subscription in list(self._subscribers):
                subscription._offer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
