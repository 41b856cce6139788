"""Delivering queued replies: the outbox worker and the sender interface channels fill.

A reply and its outbox row commit together (``inbox.actions.conversations.add_message``).
The worker claims due rows, hands each to its channel's sender, and records the result.
A claim is a lease: a worker that dies mid-send leaves the row ``sending`` with a lease
that runs out, and the next claim picks it up again. Delivery is at least once; senders
make resending harmless (email keeps the same Message-ID).

On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so several processes share the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.db import Store
from inbox.events import Subscription, record_event
from inbox.models import Message, OutboxItem
from inbox.models.base import utcnow
from inbox.queries import conversation_summary, message_view
from inbox.types import DeliveryStatus, Direction
from inbox.views import ConversationSummary, MessageView

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
BATCH = 20


class DeliveryError(Exception):
    """A send failed. ``permanent`` failures are not retried."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class Delivery:
    outbox_id: int
    attempt: int
    message: MessageView
    conversation: ConversationSummary


class Sender(Protocol):
    async def __call__(self, delivery: Delivery) -> None: ...


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (attempt - 1), 3600))


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.senders = senders
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        subscription = self.store.hub.subscribe()
        waker = asyncio.create_task(self._wake_on_replies(subscription))
        try:
            while True:
                try:
                    while await self.run_once():
                        pass
                except (SQLAlchemyError, OSError):
                    # The database is down or busy: keep the worker, try again next round.
                    log.exception("outbox round failed; retrying in %.0fs", self.poll_seconds)
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            subscription.close()
            waker.cancel()

    async def _wake_on_replies(self, subscription: Subscription) -> None:
        async for event in subscription:
            if event.kind != "message.created":
                continue
            if event.payload["message"]["direction"] == Direction.OUTBOUND.value:
                self._wake.set()

    async def run_once(self) -> int:
        """Claim and deliver one batch; returns how many were attempted."""
        if not self.senders:
            return 0
        claimed = await self._claim()
        for delivery in claimed:
            await self._deliver(delivery)
        return len(claimed)

    async def _claim(self) -> list[Delivery]:
        now = self.clock()
        async with self.store.write() as session:
            query = (
                select(OutboxItem)
                .where(
                    OutboxItem.channel.in_(list(self.senders)),
                    or_(
                        (OutboxItem.status == "pending") & (OutboxItem.next_attempt_at <= now),
                        (OutboxItem.status == "sending") & (OutboxItem.next_attempt_at <= now),
                    ),
                )
                .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
                .limit(BATCH)
            )
            if not self.store.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            items = list(await session.scalars(query))
            deliveries = []
            for item in items:
                item.status = "sending"
                item.attempts += 1
                item.next_attempt_at = now + LEASE
                message = await session.get_one(Message, item.message_id)
                message.delivery_status = DeliveryStatus.SENDING.value
                summary = await conversation_summary(session, message.conversation_id)
                deliveries.append(Delivery(item.id, item.attempts, message_view(message), summary))
            return deliveries

    async def _deliver(self, delivery: Delivery) -> None:
        sender = self.senders[delivery.message.channel]
        error: DeliveryError | None = None
        try:
            await sender(delivery)
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # a sender bug must not stop the other deliveries
            log.exception("sender for %s crashed", delivery.message.channel)
            error = DeliveryError(f"internal error: {type(exc).__name__}")
        async with self.store.write() as session:
            await self._record(session, delivery, error)

    async def _record(
        self, session: AsyncSession, delivery: Delivery, error: DeliveryError | None
    ) -> None:
        now = self.clock()
        item = await session.get_one(OutboxItem, delivery.outbox_id, with_for_update=True)
        if item.status != "sending" or item.attempts != delivery.attempt:
            # Our lease ran out and another claim took the row over: its result stands.
            log.warning("outbox %d: dropping the late result of attempt %d (now attempt %d, %s)",
                        item.id, delivery.attempt, item.attempts, item.status)
            return
        message = await session.get_one(Message, item.message_id, with_for_update=True)
        if error is None:
            item.status, item.sent_at, item.last_error = "sent", now, None
            message.delivery_status, message.delivery_error = DeliveryStatus.SENT.value, None
        elif error.permanent or item.attempts >= MAX_ATTEMPTS:
            item.status, item.last_error = "failed", str(error)
            message.delivery_status = DeliveryStatus.FAILED.value
            message.delivery_error = str(error)
        else:
            item.status, item.last_error = "pending", str(error)
            item.next_attempt_at = now + backoff(item.attempts)
            message.delivery_status = DeliveryStatus.QUEUED.value
            message.delivery_error = str(error)
        await session.flush()
        summary = (await conversation_summary(session, message.conversation_id)).to_json()
        await record_event(
            session, "message.delivery",
            {"conversation": summary, "message": message_view(message).to_json()},
            message.conversation_id,
        )
