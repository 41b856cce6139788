"""The outbox worker with real sender functions and a clock the test moves."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from inbox.actions.conversations import add_message
from inbox.db import Store
from inbox.ingest import Ingestor
from inbox.models import Event, Message, OutboxItem
from inbox.models.base import utcnow
from inbox.outbox import LEASE, MAX_ATTEMPTS, Delivery, DeliveryError, OutboxWorker, backoff
from inbox.types import Channel, DeliveryStatus
from tests.conftest import IS_PG, inbound
from tests.inbox.support import count, new_agent


class Clock:
    """A clock that only moves when the test says so."""

    def __init__(self) -> None:
        # Replies are queued at the real time, so start just after it.
        self.now = utcnow() + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class Outbox:
    """A sender that records deliveries, or fails with the error it is given."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.error = error

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if self.error is not None:
            raise self.error


@pytest.fixture
async def reply_id(store: Store, ingestor: Ingestor) -> int:
    """A queued email reply."""
    conversation_id = (await ingestor.ingest(inbound("<a@x>"))).conversation_id
    agent_id = await new_agent(store, "ann@support.example")
    async with store.write() as session:
        return (await add_message(session, conversation_id, agent_id, "On its way")).id


async def _state(store: Store, message_id: int) -> tuple[Message, OutboxItem]:
    async with store.read() as session:
        message = await session.get_one(Message, message_id)
        item = await session.scalar(select(OutboxItem).where(OutboxItem.message_id == message_id))
    assert item is not None
    return message, item


async def test_successful_send_marks_the_reply_sent(store: Store, reply_id: int) -> None:
    clock, sender = Clock(), Outbox()
    worker = OutboxWorker(store, {"email": sender}, clock=clock)

    assert await worker.run_once() == 1

    [delivery] = sender.deliveries
    assert delivery.message.id == reply_id and delivery.attempt == 1
    assert delivery.message.body_text == "On its way"
    assert delivery.conversation.contact.email == "customer@example.com"
    message, item = await _state(store, reply_id)
    assert message.delivery_status == DeliveryStatus.SENT.value
    assert message.delivery_error is None
    assert (item.status, item.attempts, item.sent_at) == ("sent", 1, clock.now)
    assert await worker.run_once() == 0
    assert len(sender.deliveries) == 1
    async with store.read() as session:
        event = await session.scalar(select(Event).where(Event.kind == "message.delivery"))
    assert event is not None
    assert event.payload["message"]["delivery_status"] == "sent"


async def test_transient_failure_is_retried_with_backoff(store: Store, reply_id: int) -> None:
    clock, sender = Clock(), Outbox(DeliveryError("421 try again later"))
    worker = OutboxWorker(store, {"email": sender}, clock=clock)
    start = clock.now

    assert await worker.run_once() == 1
    message, item = await _state(store, reply_id)
    assert (item.status, item.attempts) == ("pending", 1)
    assert item.next_attempt_at == start + timedelta(seconds=30)
    assert item.last_error == message.delivery_error == "421 try again later"
    assert message.delivery_status == DeliveryStatus.QUEUED.value

    clock.advance(timedelta(seconds=29))
    assert await worker.run_once() == 0
    clock.advance(timedelta(seconds=1))
    assert await worker.run_once() == 1
    _, item = await _state(store, reply_id)
    assert item.attempts == 2
    assert item.next_attempt_at == clock.now + timedelta(seconds=60)
    assert [d.attempt for d in sender.deliveries] == [1, 2]

    sender.error = None
    clock.advance(timedelta(seconds=60))
    assert await worker.run_once() == 1
    message, item = await _state(store, reply_id)
    assert (item.status, message.delivery_status, message.delivery_error) == ("sent", "sent", None)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff(20) == timedelta(hours=1)


async def test_permanent_failure_marks_the_reply_failed(store: Store, reply_id: int) -> None:
    clock, sender = Clock(), Outbox(DeliveryError("550 5.1.1 no such user", permanent=True))
    worker = OutboxWorker(store, {"email": sender}, clock=clock)

    assert await worker.run_once() == 1
    message, item = await _state(store, reply_id)
    assert message.delivery_status == DeliveryStatus.FAILED.value
    assert message.delivery_error == "550 5.1.1 no such user"
    assert (item.status, item.last_error) == ("failed", "550 5.1.1 no such user")
    clock.advance(timedelta(days=1))
    assert await worker.run_once() == 0


async def test_gives_up_after_max_attempts(store: Store, reply_id: int) -> None:
    clock, sender = Clock(), Outbox(DeliveryError("timeout"))
    worker = OutboxWorker(store, {"email": sender}, clock=clock)
    for _ in range(MAX_ATTEMPTS):
        assert await worker.run_once() == 1
        clock.advance(timedelta(hours=1))
    message, item = await _state(store, reply_id)
    assert (item.status, item.attempts) == ("failed", MAX_ATTEMPTS)
    assert message.delivery_status == DeliveryStatus.FAILED.value
    assert await worker.run_once() == 0


async def test_crashing_sender_is_a_transient_failure(store: Store, reply_id: int) -> None:
    clock, sender = Clock(), Outbox(ZeroDivisionError())
    worker = OutboxWorker(store, {"email": sender}, clock=clock)
    assert await worker.run_once() == 1
    message, item = await _state(store, reply_id)
    assert item.status == "pending"
    assert message.delivery_error == "internal error: ZeroDivisionError"


async def test_sending_row_of_a_dead_worker_is_claimed_after_its_lease(
    store: Store, reply_id: int
) -> None:
    clock = Clock()
    called = asyncio.Event()

    async def hangs(delivery: Delivery) -> None:
        called.set()
        await asyncio.Event().wait()

    dying = asyncio.create_task(OutboxWorker(store, {"email": hangs}, clock=clock).run_once())
    await asyncio.wait_for(called.wait(), 5)
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying
    message, item = await _state(store, reply_id)
    assert (item.status, item.attempts) == ("sending", 1)
    assert message.delivery_status == DeliveryStatus.SENDING.value

    sender = Outbox()
    worker = OutboxWorker(store, {"email": sender}, clock=clock)
    clock.advance(LEASE - timedelta(seconds=1))
    assert await worker.run_once() == 0
    clock.advance(timedelta(seconds=1))
    assert await worker.run_once() == 1
    assert [d.attempt for d in sender.deliveries] == [2]
    message, item = await _state(store, reply_id)
    assert (item.status, message.delivery_status) == ("sent", "sent")


async def test_only_channels_with_a_sender_are_claimed(store: Store, reply_id: int) -> None:
    chat = Outbox()
    assert await OutboxWorker(store, {Channel.CHAT.value: chat}, clock=Clock()).run_once() == 0
    assert await OutboxWorker(store, {}, clock=Clock()).run_once() == 0
    _, item = await _state(store, reply_id)
    assert (item.status, item.attempts) == ("pending", 0)


async def test_two_workers_deliver_each_reply_once(store: Store, ingestor: Ingestor) -> None:
    agent_id = await new_agent(store, "ann@support.example")
    for i in range(6):
        conversation_id = (await ingestor.ingest(inbound(f"<{i}@x>", text=f"q{i}"))).conversation_id
        async with store.write() as session:
            await add_message(session, conversation_id, agent_id, f"answer {i}")
    clock, first, second = Clock(), Outbox(), Outbox()
    workers = [OutboxWorker(store, {"email": s}, clock=clock) for s in (first, second)]

    counts = await asyncio.gather(*(w.run_once() for w in workers))

    delivered = [d.message.id for d in first.deliveries + second.deliveries]
    assert sum(counts) == 6
    assert len(delivered) == len(set(delivered)) == 6
    assert await count(store, OutboxItem, OutboxItem.status == "sent") == 6


async def test_run_wakes_on_a_new_reply(store: Store, ingestor: Ingestor) -> None:
    """The running worker delivers a reply without waiting for its poll interval."""
    conversation_id = (await ingestor.ingest(inbound("<a@x>"))).conversation_id
    agent_id = await new_agent(store, "ann@support.example")
    delivered = asyncio.Event()

    async def sender(delivery: Delivery) -> None:
        delivered.set()

    worker = OutboxWorker(store, {"email": sender}, poll_seconds=60)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.05)  # let it find the empty outbox and start waiting
        async with store.write() as session:
            await add_message(session, conversation_id, agent_id, "hello")
        if IS_PG:
            worker.wake()  # without a PgEventListener nothing feeds this process's hub
        await asyncio.wait_for(delivered.wait(), 5)
        for _ in range(100):  # let the worker record the result before stopping it
            if await count(store, OutboxItem, OutboxItem.status == "sent"):
                break
            await asyncio.sleep(0.02)
        assert await count(store, OutboxItem, OutboxItem.status == "sent") == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_late_result_of_an_expired_claim_does_not_undo_a_send(
    store: Store, reply_id: int
) -> None:
    clock = Clock()
    called, release = asyncio.Event(), asyncio.Event()

    async def slow_then_fails(delivery: Delivery) -> None:
        called.set()
        await release.wait()
        raise DeliveryError("connection reset")

    slow = asyncio.create_task(
        OutboxWorker(store, {"email": slow_then_fails}, clock=clock).run_once()
    )
    await asyncio.wait_for(called.wait(), 5)
    clock.advance(LEASE)
    sender = Outbox()
    assert await OutboxWorker(store, {"email": sender}, clock=clock).run_once() == 1
    release.set()
    assert await asyncio.wait_for(slow, 5) == 1

    message, item = await _state(store, reply_id)
    assert (item.status, message.delivery_status) == ("sent", "sent")
