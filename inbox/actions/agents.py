"""Agents and teams: creation, skills, capacity and presence."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.actions.conversations import EMAIL_ADDRESS, ActionError, AlreadyExists, NotFound
from inbox.audit import audit
from inbox.auth import hash_password
from inbox.events import record_events
from inbox.models import Agent, AgentCapacity, AgentSkill, Team, TeamMember
from inbox.models.base import utcnow
from inbox.types import MAX_SKILL_LEVEL, SKILL_NAME, Channel, Presence, Role

MAX_CAPACITY = 1000
HEARTBEAT_CHUNK = 500  # agents per UPDATE, well under every backend's parameter limit
HEARTBEAT_LOST = "heartbeat_lost"  # the reason of a presence change made by the sweeper


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


async def set_presence(
    session: AsyncSession, agent_id: int, presence: Presence, *, seen_at: datetime | None = None
) -> bool:
    """The agent sets their own presence; returns whether it changed.

    ``seen_at`` is given when the change comes over one of the agent's live websockets and
    counts as a heartbeat. Going online without one (the HTTP API) clears ``last_seen_at``:
    the agent may have no socket at all, so the presence sweeper leaves them alone until
    one of their sockets beats again.
    """
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is None:
        raise NotFound(f"agent {agent_id} does not exist")
    if seen_at is not None:
        if agent.last_seen_at is None or agent.last_seen_at < seen_at:
            agent.last_seen_at = seen_at
    elif presence is Presence.ONLINE:
        agent.last_seen_at = None
    if agent.presence == presence.value:
        return False
    previous = agent.presence
    agent.presence = presence.value
    agent.presence_changed_at = utcnow()
    await _presence_changed(session, [agent_id], previous, presence, actor_id=agent_id)
    return True


async def record_heartbeats(
    session: AsyncSession, agent_ids: Collection[int], seen_at: datetime
) -> None:
    """Note that these agents' websockets were alive at ``seen_at``.

    Liveness, not a change of state: no event and no audit entry. A row already seen later
    (another process's heartbeat that committed first) keeps its time. Rows are locked in
    id order, as ``turn_away_silent_agents`` locks them, so the two never deadlock.
    """
    ids = sorted(agent_ids)
    for start in range(0, len(ids), HEARTBEAT_CHUNK):
        chunk = ids[start : start + HEARTBEAT_CHUNK]
        locked = (
            select(Agent.id)
            .where(Agent.id.in_(chunk), _seen_before(seen_at))
            .order_by(Agent.id)
            .with_for_update()
        )
        await session.execute(
            update(Agent).where(Agent.id.in_(locked)).values(last_seen_at=seen_at)
            .execution_options(synchronize_session=False)
        )


def _seen_before(moment: datetime) -> ColumnElement[bool]:
    return or_(Agent.last_seen_at.is_(None), Agent.last_seen_at < moment)


async def turn_away_silent_agents(
    session: AsyncSession, cutoff: datetime, now: datetime
) -> list[int]:
    """Turn ``away`` every online agent whose websockets have all been silent since before
    ``cutoff``; returns their ids.

    One guarded UPDATE claims the agents, so when several processes sweep at once each
    change is made, and recorded, by exactly one of them: on PostgreSQL a sweeper that
    waited for another's row locks finds the rows no longer online and skips them. Agents
    who never had a socket (``last_seen_at`` NULL) are not touched.
    """
    silent = (
        select(Agent.id)
        .where(
            Agent.presence == Presence.ONLINE.value,
            Agent.last_seen_at.is_not(None),
            Agent.last_seen_at < cutoff,
        )
        .order_by(Agent.id)
        .with_for_update()
    )
    changed = sorted(await session.scalars(
        update(Agent)
        .where(Agent.id.in_(silent), Agent.presence == Presence.ONLINE.value)
        .values(presence=Presence.AWAY.value, presence_changed_at=now)
        .returning(Agent.id)
        .execution_options(synchronize_session=False)
    ))
    if changed:
        await _presence_changed(
            session, changed, Presence.ONLINE.value, Presence.AWAY, reason=HEARTBEAT_LOST
        )
    return changed


async def _presence_changed(
    session: AsyncSession,
    agent_ids: list[int],
    before: str,
    after: Presence,
    *,
    actor_id: int | None = None,
    reason: str | None = None,
) -> None:
    """The event and audit entry of presence changes already written to the rows.

    ``reason`` is left out when the agent made the change; otherwise it says why.
    """
    extra = {} if reason is None else {"reason": reason}
    await record_events(session, [
        ("agent.presence", {"agent_id": agent_id, "presence": after.value, **extra}, None)
        for agent_id in agent_ids
    ])
    for agent_id in agent_ids:
        await audit(
            session, actor_id, "agent.presence", "agent", agent_id,
            {"before": before, "after": after.value, **extra},
        )
