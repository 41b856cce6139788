"""The router's writes: assigning a waiting conversation, and handing work back.

Each is one transaction that re-checks, under row locks, what the router believed: the
conversation is still open and unassigned, the agent still online with room on the
channel. So a decision made on stale state is refused instead of applied, and two
routers that both believed themselves leader (a network partition, a slow failover)
can never give one conversation to two agents: the second update finds it assigned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.audit import audit
from inbox.events import record_event
from inbox.models import Agent, AgentCapacity, Conversation
from inbox.models.base import utcnow
from inbox.queries import conversation_summary
from inbox.types import Presence, Status


class Refusal(StrEnum):
    """Why a routing decision was not applied."""

    TAKEN = "taken"  # assigned, resolved or snoozed meanwhile
    AGENT_UNAVAILABLE = "agent_unavailable"  # not online, or gone
    FULL = "full"  # no capacity left on the channel


@dataclass(frozen=True)
class Routed:
    conversation_id: int
    agent_id: int
    refused: Refusal | None = None


async def open_load(session: AsyncSession, agent_id: int, channel: str) -> int:
    """Open conversations the agent holds on ``channel``."""
    count = await session.scalar(
        select(func.count()).select_from(Conversation).where(
            Conversation.assignee_id == agent_id,
            Conversation.channel == channel,
            Conversation.status == Status.OPEN.value,
        )
    )
    return int(count or 0)


async def route_conversation(
    session: AsyncSession, conversation_id: int, agent_id: int
) -> Routed:
    """Assign a waiting conversation to the agent the router chose, if that still holds."""
    # The agent first, then the conversation: every router takes locks in this order.
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is None or not agent.active or agent.presence != Presence.ONLINE.value:
        return Routed(conversation_id, agent_id, Refusal.AGENT_UNAVAILABLE)
    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    if (
        conversation is None
        or conversation.assignee_id is not None
        or conversation.status != Status.OPEN.value
    ):
        return Routed(conversation_id, agent_id, Refusal.TAKEN)
    capacity = await session.scalar(
        select(AgentCapacity.capacity).where(
            AgentCapacity.agent_id == agent_id, AgentCapacity.channel == conversation.channel
        )
    )
    if await open_load(session, agent_id, conversation.channel) >= (capacity or 0):
        return Routed(conversation_id, agent_id, Refusal.FULL)
    conversation.assignee_id = agent_id
    conversation.updated_at = utcnow()
    await session.flush()
    summary = (await conversation_summary(session, conversation_id)).to_json()
    changes = {"assignee_id": agent_id, "by": "routing"}
    await record_event(
        session, "conversation.updated", {"conversation": summary, "changes": changes},
        conversation_id,
    )
    await audit(
        session, None, "conversation.route", "conversation", conversation_id,
        {"before": {"assignee_id": None}, "after": {"assignee_id": agent_id}},
    )
    return Routed(conversation_id, agent_id)


async def hand_back(
    session: AsyncSession, agent_id: int, channels: Sequence[str], reason: str
) -> list[int]:
    """Unassign the open conversations on ``channels`` of an agent who is not online, so
    they wait again (keeping their age: routing orders them by arrival). Returns their ids;
    nothing if the agent is online again."""
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is None or agent.presence == Presence.ONLINE.value:
        return []
    rows = await session.scalars(
        select(Conversation)
        .where(
            Conversation.assignee_id == agent_id,
            Conversation.status == Status.OPEN.value,
            Conversation.channel.in_(channels),
        )
        .order_by(Conversation.id)
        .with_for_update()
    )
    handed = []
    now = utcnow()
    for conversation in rows.all():
        conversation.assignee_id = None
        conversation.updated_at = now
        handed.append(conversation.id)
    if not handed:
        return []
    await session.flush()
    for conversation_id in handed:
        summary = (await conversation_summary(session, conversation_id)).to_json()
        changes = {"assignee_id": None, "by": "routing", "reason": reason}
        await record_event(
            session, "conversation.updated", {"conversation": summary, "changes": changes},
            conversation_id,
        )
        await audit(
            session, None, "conversation.requeue", "conversation", conversation_id,
            {"before": {"assignee_id": agent_id}, "after": {"assignee_id": None},
             "reason": reason},
        )
    return handed
