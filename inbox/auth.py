"""Credentials: argon2 password hashes, API tokens, login sessions and login throttling.

Tokens are 32 random bytes shown once; the store keeps only their SHA-256, so a leaked
database does not leak working credentials.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.audit import audit
from inbox.events import record_event
from inbox.models import Agent, ApiToken, AuthSession, InstanceSetting, LoginFailure, TeamMember
from inbox.models.base import utcnow
from inbox.types import Role

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verifying against this when the email is unknown keeps the timing of both answers alike.
    return _hasher.hash("guichet-dummy-password")

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_MAX_FAILURES = 10
TOKEN_PREFIX = "gch_"


class PasswordPolicyError(ValueError):
    pass


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordPolicyError(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordPolicyError(f"password must be at most {MAX_PASSWORD_CHARS} characters")


async def hash_password(password: str) -> str:
    check_password_policy(password)
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def verify_login(session: AsyncSession, email: str, password: str) -> int | None:
    """The agent id if the password matches an active agent, else ``None``."""
    if len(password) > MAX_PASSWORD_CHARS:
        return None
    row = (
        await session.execute(
            select(Agent.id, Agent.password_hash).where(
                Agent.email == _login_key(email), Agent.active.is_(True)
            )
        )
    ).first()
    ok = await asyncio.to_thread(_verify, row.password_hash if row else _dummy_hash(), password)
    return row.id if row and ok else None


def _login_key(email: str) -> str:
    return email.strip().lower()[:320]


async def login_throttled(session: AsyncSession, ip: str, email: str) -> bool:
    since = utcnow() - LOGIN_WINDOW
    by_ip = await session.scalar(
        select(func.count()).where(LoginFailure.ip == ip, LoginFailure.at > since)
    )
    by_email = await session.scalar(
        select(func.count()).where(
            LoginFailure.email == _login_key(email), LoginFailure.at > since
        )
    )
    return (by_ip or 0) >= LOGIN_MAX_FAILURES or (by_email or 0) >= LOGIN_MAX_FAILURES


async def record_login_failure(session: AsyncSession, ip: str, email: str) -> None:
    now = utcnow()
    await session.execute(delete(LoginFailure).where(LoginFailure.at < now - LOGIN_WINDOW))
    session.add(LoginFailure(ip=ip[:64], email=_login_key(email), at=now))


async def create_session(session: AsyncSession, agent_id: int, hours: int) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await session.execute(delete(AuthSession).where(AuthSession.expires_at < now))
    session.add(
        AuthSession(
            agent_id=agent_id, token_hash=token_hash(token), created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    await audit(session, agent_id, "agent.login", "agent", agent_id, {})
    return token


async def end_session(session: AsyncSession, token: str) -> None:
    """Log out: the session row goes, and websockets opened with it close (on every process)."""
    row = await session.scalar(
        select(AuthSession).where(AuthSession.token_hash == token_hash(token))
    )
    if row is None:
        return
    await session.delete(row)
    await record_event(session, "session.ended", {"agent_id": row.agent_id, "session_id": row.id})
    await audit(session, row.agent_id, "agent.logout", "agent", row.agent_id, {})


async def create_api_token(session: AsyncSession, agent_id: int) -> str:
    token = new_token()
    session.add(ApiToken(agent_id=agent_id, token_hash=token_hash(token), created_at=utcnow()))
    await audit(session, agent_id, "token.create", "agent", agent_id, {})
    return token


class Credential(NamedTuple):
    agent_id: int
    role: Role
    team_ids: frozenset[int]
    session_id: int | None  # the login session, for cookie credentials


async def agent_for_credential(
    session: AsyncSession, *, session_token: str | None = None, api_token: str | None = None,
    now: datetime | None = None,
) -> Credential | None:
    """Resolve a session cookie or a bearer token to the agent behind it."""
    now = now or utcnow()
    query: Any
    if api_token is not None:
        query = select(Agent.id, Agent.role, literal(None).label("session_id")).join(
            ApiToken, ApiToken.agent_id == Agent.id
        ).where(ApiToken.token_hash == token_hash(api_token), ApiToken.revoked_at.is_(None))
    elif session_token is not None:
        query = select(Agent.id, Agent.role, AuthSession.id.label("session_id")).join(
            AuthSession, AuthSession.agent_id == Agent.id
        ).where(AuthSession.token_hash == token_hash(session_token), AuthSession.expires_at > now)
    else:
        return None
    row = (await session.execute(query.where(Agent.active.is_(True)))).first()
    if row is None:
        return None
    teams = await session.scalars(select(TeamMember.team_id).where(TeamMember.agent_id == row.id))
    return Credential(row.id, Role(row.role), frozenset(teams), row.session_id)


async def instance_secret(session: AsyncSession, key: str) -> str:
    """A random secret shared by every process of the installation, created on first use."""
    value = await session.scalar(select(InstanceSetting.value).where(InstanceSetting.key == key))
    if value is not None:
        return value
    candidate = secrets.token_urlsafe(48)
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    if dialect == "postgresql":
        await session.execute(
            pg_insert(InstanceSetting).values(key=key, value=candidate).on_conflict_do_nothing()
        )
    else:
        await session.execute(
            insert(InstanceSetting).values(key=key, value=candidate).prefix_with("OR IGNORE")
        )
    stored = await session.scalar(select(InstanceSetting.value).where(InstanceSetting.key == key))
    assert stored is not None
    return stored


