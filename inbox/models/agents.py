"""Agents, their skills and capacities, and teams."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from inbox.models.base import Base, BigId, UTCDateTime
from inbox.types import MAX_SKILL_LEVEL, Channel, Presence, Role, sql_in


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint(f"role IN {sql_in(Role)}", name="role"),
        CheckConstraint(f"presence IN {sql_in(Presence)}", name="presence"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    presence: Mapped[str] = mapped_column(String(16), default=Presence.OFFLINE.value)
    presence_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The last heartbeat of any of the agent's websockets, on any process (inbox.presence).
    # NULL while no socket has beaten since the agent last went online without one: the
    # presence sweeper leaves such agents alone.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgentSkill(Base):
    __tablename__ = "agent_skills"
    __table_args__ = (
        CheckConstraint(f"level BETWEEN 1 AND {MAX_SKILL_LEVEL}", name="level"),
    )

    agent_id: Mapped[int] = mapped_column(BigId, ForeignKey("agents.id"), primary_key=True)
    skill: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)


class AgentCapacity(Base):
    """How many open conversations of one channel an agent may hold at once."""

    __tablename__ = "agent_capacities"
    __table_args__ = (
        CheckConstraint(f"channel IN {sql_in(Channel)}", name="channel"),
        CheckConstraint("capacity >= 0", name="capacity"),
    )

    agent_id: Mapped[int] = mapped_column(BigId, ForeignKey("agents.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer)


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(BigId, ForeignKey("teams.id"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("agents.id"), primary_key=True, index=True
    )
