"""Action functions: replies and notes, conversation changes, agents, and the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from inbox.actions.agents import create_agent, ensure_team, set_presence
from inbox.actions.conversations import (
    ActionError,
    ConversationChanges,
    NotFound,
    add_message,
    start_conversation,
    update_conversation,
)
from inbox.db import Store
from inbox.ingest import Ingestor
from inbox.models import (
    Agent,
    AuditEntry,
    Conversation,
    ConversationTag,
    Event,
    Message,
    OutboxItem,
)
from inbox.models.base import utcnow
from inbox.queries import agent_view, conversation_detail
from inbox.types import Channel, DeliveryStatus, Direction, Presence, Priority, Role, Status
from tests.conftest import IS_PG, inbound
from tests.inbox.support import PASSWORD, count, new_agent, stored_events


@pytest.fixture
async def conversation_id(ingestor: Ingestor) -> int:
    return (await ingestor.ingest(inbound("<a@x>"))).conversation_id


@pytest.fixture
async def agent_id(store: Store) -> int:
    return await new_agent(store, "ann@support.example")


async def _conversation(store: Store, conversation_id: int) -> Conversation:
    async with store.read() as session:
        return await session.get_one(Conversation, conversation_id)


async def _update(
    store: Store, conversation_id: int, actor_id: int | None, **changes: object
) -> dict[str, object]:
    async with store.write() as session:
        return await update_conversation(
            session, conversation_id, actor_id,
            ConversationChanges(changed=frozenset(changes), **changes),  # type: ignore[arg-type]
        )


async def test_reply_is_queued_with_its_outbox_row(
    store: Store, conversation_id: int, agent_id: int
) -> None:
    async with store.write() as session:
        view = await add_message(session, conversation_id, agent_id, "Your parcel left today.")

    async with store.read() as session:
        message = await session.get_one(Message, view.id)
        item = await session.scalar(select(OutboxItem).where(OutboxItem.message_id == view.id))
    conversation = await _conversation(store, conversation_id)
    assert view.delivery_status == message.delivery_status == DeliveryStatus.QUEUED.value
    assert message.direction == Direction.OUTBOUND.value
    assert message.author_agent_id == agent_id and message.author_contact_id is None
    assert item is not None
    assert (item.status, item.attempts, item.channel) == ("pending", 0, Channel.EMAIL.value)
    assert item.next_attempt_at <= utcnow()
    assert conversation.first_response_at == message.created_at
    assert conversation.last_message_at == message.created_at


async def test_first_response_time_is_set_once(
    store: Store, conversation_id: int, agent_id: int
) -> None:
    async with store.write() as session:
        await add_message(session, conversation_id, agent_id, "First")
    first = (await _conversation(store, conversation_id)).first_response_at
    async with store.write() as session:
        await add_message(session, conversation_id, agent_id, "Second")
    assert (await _conversation(store, conversation_id)).first_response_at == first
    assert await count(store, OutboxItem) == 2


async def test_reply_and_outbox_row_roll_back_together(
    store: Store, conversation_id: int, agent_id: int
) -> None:
    with pytest.raises(RuntimeError):
        async with store.write() as session:
            await add_message(session, conversation_id, agent_id, "lost")
            assert await session.scalar(select(OutboxItem.id)) is not None
            raise RuntimeError("crash before commit")
    assert await count(store, Message, Message.direction == "outbound") == 0
    assert await count(store, OutboxItem) == 0
    assert (await _conversation(store, conversation_id)).first_response_at is None


async def test_internal_note_is_not_queued(
    store: Store, conversation_id: int, agent_id: int
) -> None:
    before = await _conversation(store, conversation_id)
    async with store.write() as session:
        view = await add_message(
            session, conversation_id, agent_id, "Customer is a VIP", internal=True,
            html="<b>VIP</b><script>x()</script>",
        )
    after = await _conversation(store, conversation_id)
    assert view.internal and view.direction == Direction.NOTE.value
    assert view.delivery_status is None
    assert view.body_html is not None and "<script" not in view.body_html
    assert await count(store, OutboxItem) == 0
    assert after.first_response_at is None
    assert after.last_message_at == before.last_message_at
    async with store.read() as session:
        public = await conversation_detail(session, conversation_id, include_notes=False)
        everything = await conversation_detail(session, conversation_id)
    assert public is not None and everything is not None
    assert [m.direction for m in public.messages] == ["inbound"]
    assert [m.direction for m in everything.messages] == ["inbound", "note"]


async def test_add_message_refuses_bad_input(
    store: Store, conversation_id: int, agent_id: int
) -> None:
    with pytest.raises(ActionError) as empty:
        async with store.write() as session:
            await add_message(session, conversation_id, agent_id, "   \n")
    assert empty.value.field == "body"
    with pytest.raises(ActionError, match="longer"):
        async with store.write() as session:
            await add_message(session, conversation_id, agent_id, "x" * 100_001)
    with pytest.raises(NotFound):
        async with store.write() as session:
            await add_message(session, 424_242, agent_id, "hello")
    assert await count(store, Message) == 1


async def test_snooze_needs_a_future_time(store: Store, conversation_id: int) -> None:
    with pytest.raises(ActionError) as missing:
        await _update(store, conversation_id, None, status=Status.SNOOZED)
    assert missing.value.field == "snoozed_until"
    with pytest.raises(ActionError, match="future"):
        await _update(store, conversation_id, None, status=Status.SNOOZED,
                      snoozed_until=utcnow() - timedelta(minutes=1))
    with pytest.raises(ActionError, match="only valid"):
        await _update(store, conversation_id, None, status=Status.OPEN,
                      snoozed_until=utcnow() + timedelta(hours=1))
    with pytest.raises(ActionError, match="needs status"):
        await _update(store, conversation_id, None, snoozed_until=utcnow() + timedelta(hours=1))
    assert (await _conversation(store, conversation_id)).status == Status.OPEN.value

    until = utcnow() + timedelta(hours=3)
    changes = await _update(store, conversation_id, None, status=Status.SNOOZED,
                            snoozed_until=until)
    conversation = await _conversation(store, conversation_id)
    assert conversation.status == Status.SNOOZED.value
    assert conversation.snoozed_until == until
    assert changes["status"] == "snoozed"

    await _update(store, conversation_id, None, status=Status.PENDING)
    conversation = await _conversation(store, conversation_id)
    assert conversation.status == Status.PENDING.value and conversation.snoozed_until is None


async def test_resolve_sets_and_reopen_clears_resolved_at(
    store: Store, conversation_id: int
) -> None:
    await _update(store, conversation_id, None, status=Status.RESOLVED)
    resolved_at = (await _conversation(store, conversation_id)).resolved_at
    assert resolved_at is not None
    await _update(store, conversation_id, None, status=Status.RESOLVED)
    assert (await _conversation(store, conversation_id)).resolved_at == resolved_at
    await _update(store, conversation_id, None, status=Status.OPEN)
    assert (await _conversation(store, conversation_id)).resolved_at is None


async def test_assignee_must_be_an_active_agent(
    store: Store, conversation_id: int, agent_id: int
) -> None:
    with pytest.raises(ActionError) as unknown:
        await _update(store, conversation_id, agent_id, assignee_id=987_654)
    assert unknown.value.field == "assignee_id"
    with pytest.raises(ActionError, match="no team"):
        await _update(store, conversation_id, agent_id, team_id=987_654)

    await _update(store, conversation_id, agent_id, assignee_id=agent_id)
    assert (await _conversation(store, conversation_id)).assignee_id == agent_id
    await _update(store, conversation_id, agent_id, assignee_id=None)
    assert (await _conversation(store, conversation_id)).assignee_id is None
    # Only the successful changes were audited.
    assert await count(store, AuditEntry, AuditEntry.action == "conversation.update") == 2


async def test_tags_are_normalised(store: Store, conversation_id: int) -> None:
    changes = await _update(
        store, conversation_id, None, tags=(" Billing ", "billing", "VIP", "", "  ")
    )
    assert changes == {"tags": ["billing", "vip"]}
    async with store.read() as session:
        tags = list(await session.scalars(
            select(ConversationTag.tag).where(ConversationTag.conversation_id == conversation_id)
            .order_by(ConversationTag.tag)
        ))
    assert tags == ["billing", "vip"]
    # Setting tags replaces them.
    await _update(store, conversation_id, None, tags=("Refund",))
    async with store.read() as session:
        assert list(await session.scalars(select(ConversationTag.tag))) == ["refund"]
    with pytest.raises(ActionError, match="at most"):
        await _update(store, conversation_id, None, tags=tuple(f"t{i}" for i in range(51)))
    with pytest.raises(ActionError, match="longer"):
        await _update(store, conversation_id, None, tags=("x" * 65,))


async def test_update_writes_an_audit_entry(
    store: Store, conversation_id: int, agent_id: int
) -> None:
    await _update(store, conversation_id, agent_id, priority=Priority.URGENT,
                  assignee_id=agent_id)
    async with store.read() as session:
        entries = list(await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "conversation.update")
        ))
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.actor_type, entry.actor_id) == ("agent", agent_id)
    assert (entry.entity_type, entry.entity_id) == ("conversation", str(conversation_id))
    assert entry.changes == {
        "before": {"priority": "normal", "assignee_id": None},
        "after": {"priority": "urgent", "assignee_id": agent_id},
    }


async def test_update_without_changes_records_nothing(store: Store, conversation_id: int) -> None:
    events = await count(store, Event)
    assert await _update(store, conversation_id, None) == {}
    assert await count(store, Event) == events
    assert await count(store, AuditEntry, AuditEntry.action == "conversation.update") == 0
    with pytest.raises(NotFound):
        await _update(store, 424_242, None, priority=Priority.LOW)


async def test_audit_log_is_append_only(
    store: Store, conversation_id: int, agent_id: int, subtests: pytest.Subtests
) -> None:
    await _update(store, conversation_id, agent_id, priority=Priority.HIGH)
    before = await count(store, AuditEntry)
    for statement in ("UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log"):
        with subtests.test(statement):
            with pytest.raises(DBAPIError, match="append-only"):
                async with store.write() as session:
                    await session.execute(text(statement))
            assert await count(store, AuditEntry) == before
            assert await count(store, AuditEntry, AuditEntry.action == "forged") == 0


@pytest.mark.skipif(not IS_PG, reason="SQLite has no TRUNCATE")
async def test_audit_log_refuses_truncate(store: Store, agent_id: int) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        async with store.write() as session:
            await session.execute(text("TRUNCATE audit_log"))
    assert await count(store, AuditEntry) > 0


async def test_create_agent_with_skills_capacity_and_teams(store: Store) -> None:
    async with store.write() as session:
        agent_id = await create_agent(
            session, email=" Bob@Support.Example ", name="Bob", role=Role.SUPERVISOR,
            password=PASSWORD, skills={"billing": 7}, capacity={"chat": 3, "email": 10},
            teams=("Tier 1", "Tier 2"),
        )
        team_id = await ensure_team(session, "Tier 1")
    async with store.read() as session:
        view = await agent_view(session, agent_id)
        agent = await session.get_one(Agent, agent_id)
    assert view is not None
    assert view.email == "bob@support.example" and view.role == "supervisor"
    assert dict(view.skills) == {"billing": 7}
    assert dict(view.capacity) == {"chat": 3, "email": 10}
    assert team_id in view.team_ids and len(view.team_ids) == 2
    assert agent.password_hash != PASSWORD
    assert await count(store, AuditEntry, AuditEntry.action == "agent.create") == 1
    assert await count(store, AuditEntry, AuditEntry.action == "team.create") == 2


async def test_create_agent_refuses_bad_input(store: Store, subtests: pytest.Subtests) -> None:
    cases: list[tuple[str, dict[str, object]]] = [
        ("email", {"email": "not-an-email"}),
        ("name", {"name": "  "}),
        ("skills", {"skills": {"Bad Skill": 3}}),
        ("skills", {"skills": {"billing": 11}}),
        ("capacity", {"capacity": {"fax": 1}}),
        ("capacity", {"capacity": {"chat": -1}}),
    ]
    for field, kwargs in cases:
        with subtests.test(field, **kwargs):
            values: dict[str, object] = {"email": "x@support.example", "name": "X",
                                         "role": Role.AGENT, "password": PASSWORD, **kwargs}
            with pytest.raises(ActionError) as refused:
                async with store.write() as session:
                    await create_agent(session, **values)  # type: ignore[arg-type]
            assert refused.value.field == field
    assert await count(store, Agent) == 0


async def test_create_agent_refuses_duplicate_email(store: Store, agent_id: int) -> None:
    with pytest.raises(ActionError, match="exists"):
        await new_agent(store, "ANN@support.example")


async def test_set_presence_reports_change_once(store: Store, agent_id: int) -> None:
    async with store.write() as session:
        assert await set_presence(session, agent_id, Presence.ONLINE) is True
    async with store.write() as session:
        assert await set_presence(session, agent_id, Presence.ONLINE) is False
    assert await count(store, Event, Event.kind == "agent.presence") == 1
    with pytest.raises(NotFound):
        async with store.write() as session:
            await set_presence(session, 424_242, Presence.AWAY)


async def test_start_conversation_queues_the_first_email(
    store: Store, ingestor: Ingestor, agent_id: int
) -> None:
    earlier = await ingestor.ingest(inbound("<old@x>", sender="jane@example.com"))
    async with store.write() as session:
        team_id = await ensure_team(session, "one")
        conversation_id = await start_conversation(
            session, agent_id, email=" Jane@Example.com ", name="Jane", subject=" Your refund ",
            body="We refunded you.", priority=Priority.HIGH, tags=("Refund", "refund"),
            assignee_id=agent_id, team_id=team_id,
        )
    async with store.read() as session:
        detail = await conversation_detail(session, conversation_id)
        item = await session.scalar(select(OutboxItem))
        earlier_conversation = await session.get_one(Conversation, earlier.conversation_id)
    assert detail is not None
    summary = detail.conversation
    assert (summary.channel, summary.subject, summary.status, summary.priority) == (
        "email", "Your refund", "open", "high"
    )
    assert summary.contact.id == earlier_conversation.contact_id
    assert (summary.assignee_id, summary.team_id, summary.tags) == (agent_id, team_id, ("refund",))
    [message] = detail.messages
    assert (message.direction, message.delivery_status, message.body_text) == (
        "outbound", "queued", "We refunded you."
    )
    assert item is not None and item.message_id == message.id and item.status == "pending"
    kinds = [e.kind for e in await stored_events(store, conversation_id)]
    assert kinds == ["conversation.created", "message.created"]
    assert await count(store, AuditEntry, AuditEntry.action == "conversation.create") == 1


async def test_start_conversation_is_all_or_nothing(
    store: Store, agent_id: int, subtests: pytest.Subtests
) -> None:
    cases: list[tuple[str, dict[str, object]]] = [
        ("email", {"email": "nobody"}),
        ("subject", {"subject": "   "}),
        ("assignee_id", {"assignee_id": 987_654}),
        ("tags", {"tags": ("x" * 65,)}),
        ("body", {"body": "  "}),  # refused only after the conversation row was written
    ]
    for field, kwargs in cases:
        with subtests.test(field):
            values: dict[str, object] = {"email": "jane@example.com", "name": None,
                                         "subject": "Hi", "body": "Hello", **kwargs}
            with pytest.raises(ActionError) as refused:
                async with store.write() as session:
                    await start_conversation(session, agent_id, **values)  # type: ignore[arg-type]
            assert refused.value.field == field
            assert await count(store, Conversation) == 0
            assert await count(store, Message) == 0
            assert await count(store, Event) == 0
