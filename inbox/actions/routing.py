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
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.actions.conversations import ActionError
from inbox.audit import audit
from inbox.events import record_event
from inbox.models import Agent, AgentCapacity, ChatOffer, Conversation
from inbox.models.base import utcnow
from inbox.queries import conversation_summary
from inbox.types import Channel, Presence, Status
from inbox.views import iso


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
    """Open conversations the agent holds on ``channel``, and chats offered to it."""
    count = await session.scalar(
        select(func.count()).select_from(Conversation).where(
            Conversation.assignee_id == agent_id,
            Conversation.channel == channel,
            Conversation.status == Status.OPEN.value,
        )
    )
    offered = 0
    if channel == Channel.CHAT.value:
        offered = await session.scalar(
            select(func.count()).select_from(ChatOffer).where(ChatOffer.agent_id == agent_id)
        ) or 0
    return int(count or 0) + int(offered)


async def _claim(
    session: AsyncSession, conversation_id: int, agent_id: int
) -> Conversation | Refusal:
    """Lock the agent, then the conversation (every router takes locks in this order), and
    check the decision still holds: agent online with room, conversation open, unassigned
    and not offered to anyone."""
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is None or not agent.active or agent.presence != Presence.ONLINE.value:
        return Refusal.AGENT_UNAVAILABLE
    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    if (
        conversation is None
        or conversation.assignee_id is not None
        or conversation.status != Status.OPEN.value
        or await session.get(ChatOffer, conversation_id) is not None
    ):
        return Refusal.TAKEN
    capacity = await session.scalar(
        select(AgentCapacity.capacity).where(
            AgentCapacity.agent_id == agent_id, AgentCapacity.channel == conversation.channel
        )
    )
    if await open_load(session, agent_id, conversation.channel) >= (capacity or 0):
        return Refusal.FULL
    return conversation


async def route_conversation(
    session: AsyncSession, conversation_id: int, agent_id: int
) -> Routed:
    """Assign a waiting conversation to the agent the router chose, if that still holds."""
    conversation = await _claim(session, conversation_id, agent_id)
    if isinstance(conversation, Refusal):
        return Routed(conversation_id, agent_id, conversation)
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


async def offer_conversation(
    session: AsyncSession, conversation_id: int, agent_id: int, expires_at: datetime
) -> Routed:
    """Offer a waiting chat to the agent the router chose, until ``expires_at``."""
    conversation = await _claim(session, conversation_id, agent_id)
    if isinstance(conversation, Refusal):
        return Routed(conversation_id, agent_id, conversation)
    session.add(ChatOffer(conversation_id=conversation_id, agent_id=agent_id,
                          offered_at=utcnow(), expires_at=expires_at))
    await session.flush()
    summary = (await conversation_summary(session, conversation_id)).to_json()
    await record_event(
        session, "conversation.offered",
        {"conversation": summary, "agent_id": agent_id, "expires_at": iso(expires_at)},
        conversation_id,
    )
    await audit(
        session, None, "conversation.offer", "conversation", conversation_id,
        {"agent_id": agent_id, "expires_at": iso(expires_at)},
    )
    return Routed(conversation_id, agent_id)


class OfferGone(ActionError):
    """The offer is not open for this agent any more (accepted, declined or expired)."""


async def accept_offer(session: AsyncSession, conversation_id: int, agent_id: int) -> None:
    """The agent takes the chat offered to them: it becomes theirs."""
    offer = await session.get(ChatOffer, conversation_id, with_for_update=True)
    if offer is None or offer.agent_id != agent_id or offer.expires_at <= utcnow():
        raise OfferGone(f"conversation {conversation_id} is not on offer to you")
    conversation = await session.get_one(Conversation, conversation_id, with_for_update=True)
    await session.delete(offer)
    conversation.assignee_id = agent_id
    conversation.updated_at = utcnow()
    await session.flush()
    summary = (await conversation_summary(session, conversation_id)).to_json()
    await record_event(
        session, "conversation.updated",
        {"conversation": summary, "changes": {"assignee_id": agent_id, "by": "offer"}},
        conversation_id,
    )
    await audit(
        session, agent_id, "conversation.accept", "conversation", conversation_id,
        {"before": {"assignee_id": None}, "after": {"assignee_id": agent_id}},
    )


async def end_offer(
    session: AsyncSession, conversation_id: int, agent_id: int, reason: str
) -> bool:
    """Withdraw an open offer (``reason``: ``declined`` by the agent, ``expired``, or
    ``agent_away``); False if it was not open for that agent any more."""
    offer = await session.get(ChatOffer, conversation_id, with_for_update=True)
    if offer is None or offer.agent_id != agent_id:
        return False
    await session.delete(offer)
    await session.flush()
    summary = (await conversation_summary(session, conversation_id)).to_json()
    await record_event(
        session, "conversation.offer_ended",
        {"conversation": summary, "agent_id": agent_id, "reason": reason}, conversation_id,
    )
    await audit(
        session, agent_id if reason == "declined" else None, "conversation.offer_end",
        "conversation", conversation_id, {"agent_id": agent_id, "reason": reason},
    )
    return True


async def hand_back(
    session: AsyncSession, agent_id: int, channels: Sequence[str], reason: str,
    also: Sequence[int] = (),
) -> list[int]:
    """Unassign the open conversations on ``channels`` (and those in ``also``) of an agent
    who is not online, so they wait again (keeping their age: routing orders them by
    arrival). Returns their ids; nothing if the agent is online again."""
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is None or agent.presence == Presence.ONLINE.value:
        return []
    rows = await session.scalars(
        select(Conversation)
        .where(
            Conversation.assignee_id == agent_id,
            Conversation.status == Status.OPEN.value,
            or_(Conversation.channel.in_(channels), Conversation.id.in_(list(also))),
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
