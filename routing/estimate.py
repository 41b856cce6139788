"""Where a waiting chat stands: its place in the queue and the expected wait.

Computed from the database, so any ``guichet serve`` process can answer (on PostgreSQL
the router's own queue lives in the leader only). The place counts the waiting chats
served before this one: higher priority first, then earlier arrival, as the router
orders them. The expected wait assumes the online agents who could take the chat free a
chat slot every ``handle / slots`` seconds on average, ``handle`` being the mean time
recent chats took from arrival to resolution (8 minutes until 20 chats have been
resolved): ``max(0, place - free slots) * handle / slots``. With nobody online who could
take it there is no estimate (``None``): the widget says no agent is available.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.models import Agent, AgentCapacity, AgentSkill, Conversation, ConversationSkill
from inbox.types import Channel, Presence, Priority, Status

DEFAULT_HANDLE_S = 480.0
HANDLE_SAMPLE = 200  # recent resolved chats averaged
MIN_SAMPLE = 20


@dataclass(frozen=True)
class QueueEstimate:
    position: int  # 1 = next to be served
    expected_wait_s: float | None  # None: nobody online could take it
    agents_online: int  # online agents who could take it

    def to_json(self) -> dict[str, object]:
        wait = None if self.expected_wait_s is None else round(self.expected_wait_s)
        return {"position": self.position, "expected_wait_s": wait,
                "agents_online": self.agents_online}


_RANK = case(
    *((Conversation.priority == p.value, p.rank) for p in Priority), else_=Priority.NORMAL.rank
)


def _waiting_chats() -> ColumnElement[bool]:
    return and_(
        Conversation.channel == Channel.CHAT.value,
        Conversation.status == Status.OPEN.value,
        Conversation.assignee_id.is_(None),
    )


async def chat_estimate(session: AsyncSession, conversation_id: int) -> QueueEstimate | None:
    """The estimate for a waiting chat; None if it is not a chat waiting for an agent."""
    row = (await session.execute(
        select(Conversation.created_at, _RANK).where(
            Conversation.id == conversation_id, _waiting_chats()
        )
    )).first()
    if row is None:
        return None
    created_at, rank = row
    ahead = await session.scalar(
        select(func.count()).select_from(Conversation).where(
            _waiting_chats(),
            tuple_(-_RANK, Conversation.created_at, Conversation.id)
            < tuple_(-rank, created_at, conversation_id),
        )
    )
    position = int(ahead or 0) + 1
    free, slots, online = await _capacity(session, conversation_id)
    if online == 0 or slots == 0:
        return QueueEstimate(position, None, online)
    handle = await _mean_handle(session)
    return QueueEstimate(position, max(0, position - free) * handle / slots, online)


async def _capacity(session: AsyncSession, conversation_id: int) -> tuple[int, int, int]:
    """(free chat slots, chat slots, agents) of the online agents with the needed skills."""
    needs = (await session.execute(
        select(ConversationSkill.skill, ConversationSkill.level)
        .where(ConversationSkill.conversation_id == conversation_id)
    )).all()
    agents = select(Agent.id).where(
        Agent.presence == Presence.ONLINE.value, Agent.active.is_(True)
    )
    for skill, level in needs:
        agents = agents.where(Agent.id.in_(
            select(AgentSkill.agent_id).where(AgentSkill.skill == skill, AgentSkill.level >= level)
        ))
    capacity = dict((await session.execute(
        select(AgentCapacity.agent_id, AgentCapacity.capacity).where(
            AgentCapacity.channel == Channel.CHAT.value, AgentCapacity.capacity > 0,
            AgentCapacity.agent_id.in_(agents),
        )
    )).all())
    if not capacity:
        return 0, 0, 0
    held = dict((await session.execute(
        select(Conversation.assignee_id, func.count()).where(
            Conversation.assignee_id.in_(list(capacity)),
            Conversation.channel == Channel.CHAT.value,
            Conversation.status == Status.OPEN.value,
        ).group_by(Conversation.assignee_id)
    )).all())
    free = sum(max(0, n - held.get(agent_id, 0)) for agent_id, n in capacity.items())
    return free, sum(capacity.values()), len(capacity)


async def _mean_handle(session: AsyncSession) -> float:
    recent = (
        select(Conversation.created_at, Conversation.resolved_at)
        .where(Conversation.channel == Channel.CHAT.value, Conversation.resolved_at.is_not(None))
        .order_by(Conversation.resolved_at.desc())
        .limit(HANDLE_SAMPLE)
        .subquery()
    )
    rows = (await session.execute(select(recent.c.created_at, recent.c.resolved_at))).all()
    if len(rows) < MIN_SAMPLE:
        return DEFAULT_HANDLE_S
    total: float = sum((done - start).total_seconds() for start, done in rows)
    return total / len(rows)
