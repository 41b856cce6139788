"""Agents and teams: creation, skills, capacity and presence."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.actions.conversations import EMAIL_ADDRESS, ActionError, AlreadyExists, NotFound
from inbox.audit import audit
from inbox.auth import hash_password
from inbox.events import record_event
from inbox.models import Agent, AgentCapacity, AgentSkill, Team, TeamMember
from inbox.models.base import utcnow
from inbox.types import MAX_SKILL_LEVEL, SKILL_NAME, Channel, Presence, Role

MAX_CAPACITY = 1000


def check_skills(skills: Mapping[str, int]) -> None:
    for skill, level in skills.items():
        if not SKILL_NAME.match(skill):
            raise ActionError(
                f"skill {skill[:70]!r}: use lowercase letters, digits, '.', '_' or '-'", "skills"
            )
        if not 1 <= level <= MAX_SKILL_LEVEL:
            raise ActionError(f"skill {skill}: level must be 1-{MAX_SKILL_LEVEL}", "skills")


def check_capacity(capacity: Mapping[str, int]) -> None:
    for channel, count in capacity.items():
        if channel not in {c.value for c in Channel}:
            raise ActionError(f"capacity: unknown channel {channel[:20]!r}", "capacity")
        if not 0 <= count <= MAX_CAPACITY:
            raise ActionError(f"capacity {channel}: must be 0-{MAX_CAPACITY}", "capacity")


async def create_agent(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    role: Role,
    password: str,
    skills: Mapping[str, int] | None = None,
    capacity: Mapping[str, int] | None = None,
    teams: tuple[str, ...] = (),
    actor_id: int | None = None,
) -> int:
    email = email.strip().lower()
    if not EMAIL_ADDRESS.match(email):
        raise ActionError(f"not an email address: {email[:100]!r}", "email")
    if not name.strip() or len(name) > 200:
        raise ActionError("name must be 1-200 characters", "name")
    skills = dict(skills or {})
    capacity = dict(capacity or {})
    check_skills(skills)
    check_capacity(capacity)
    if await session.scalar(select(Agent.id).where(Agent.email == email)):
        raise AlreadyExists(f"an agent with email {email} exists", "email")
    now = utcnow()
    agent = Agent(
        email=email, name=name.strip(), role=role.value,
        password_hash=await hash_password(password), presence=Presence.OFFLINE.value,
        presence_changed_at=now, active=True, created_at=now,
    )
    session.add(agent)
    await session.flush()
    session.add_all(AgentSkill(agent_id=agent.id, skill=s, level=lvl) for s, lvl in skills.items())
    session.add_all(
        AgentCapacity(agent_id=agent.id, channel=c, capacity=n) for c, n in capacity.items()
    )
    for team_name in teams:
        team_id = await ensure_team(session, team_name, actor_id)
        session.add(TeamMember(team_id=team_id, agent_id=agent.id))
    await audit(
        session, actor_id, "agent.create", "agent", agent.id,
        {"email": email, "role": role.value, "skills": skills, "capacity": capacity,
         "teams": list(teams)},
    )
    return agent.id


async def ensure_team(session: AsyncSession, name: str, actor_id: int | None = None) -> int:
    name = name.strip()
    if not name or len(name) > 100:
        raise ActionError("team name must be 1-100 characters", "team")
    team_id = await session.scalar(select(Team.id).where(Team.name == name))
    if team_id is not None:
        return team_id
    team = Team(name=name, created_at=utcnow())
    session.add(team)
    await session.flush()
    await audit(session, actor_id, "team.create", "team", team.id, {"name": name})
    return team.id


async def set_presence(session: AsyncSession, agent_id: int, presence: Presence) -> bool:
    """Set an agent's presence; returns whether it changed."""
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is None:
        raise NotFound(f"agent {agent_id} does not exist")
    if agent.presence == presence.value:
        return False
    previous = agent.presence
    agent.presence = presence.value
    agent.presence_changed_at = utcnow()
    await record_event(
        session, "agent.presence", {"agent_id": agent_id, "presence": presence.value}
    )
    await audit(
        session, agent_id, "agent.presence", "agent", agent_id,
        {"before": previous, "after": presence.value},
    )
    return True
