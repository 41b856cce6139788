"""Credentials: passwords, API tokens, login sessions and login throttling."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from inbox.actions.agents import create_agent, ensure_team
from inbox.auth import (
    LOGIN_MAX_FAILURES,
    LOGIN_WINDOW,
    PasswordPolicyError,
    agent_for_credential,
    create_api_token,
    create_session,
    end_session,
    hash_password,
    instance_secret,
    login_throttled,
    record_login_failure,
    verify_login,
)
from inbox.db import Store
from inbox.models import Agent, ApiToken, AuditEntry, AuthSession, LoginFailure
from inbox.models.base import utcnow
from inbox.types import Role
from tests.inbox.support import PASSWORD, count, new_agent


@pytest.fixture
async def agent_id(store: Store) -> int:
    return await new_agent(store, "ann@support.example", teams=("one",))


async def test_verify_login(store: Store, agent_id: int) -> None:
    async with store.read() as session:
        assert await verify_login(session, "ann@support.example", PASSWORD) == agent_id
        assert await verify_login(session, "  ANN@Support.Example ", PASSWORD) == agent_id
        assert await verify_login(session, "ann@support.example", PASSWORD + "x") is None
        assert await verify_login(session, "ann@support.example", "") is None
        assert await verify_login(session, "nobody@support.example", PASSWORD) is None
        assert await verify_login(session, "ann@support.example", "x" * 5000) is None


async def test_inactive_agent_cannot_log_in(store: Store, agent_id: int) -> None:
    async with store.write() as session:
        token = await create_api_token(session, agent_id)
        await session.execute(update(Agent).where(Agent.id == agent_id).values(active=False))
    async with store.read() as session:
        assert await verify_login(session, "ann@support.example", PASSWORD) is None
        assert await agent_for_credential(session, api_token=token) is None


async def test_password_policy(store: Store) -> None:
    with pytest.raises(PasswordPolicyError, match="at least"):
        await hash_password("short")
    with pytest.raises(PasswordPolicyError, match="at most"):
        await hash_password("x" * 1025)
    with pytest.raises(PasswordPolicyError):
        async with store.write() as session:
            await create_agent(session, email="weak@support.example", name="Weak",
                               role=Role.AGENT, password="1234567")
    assert await count(store, Agent) == 0


async def test_api_token_resolves_to_its_agent(store: Store, agent_id: int) -> None:
    async with store.write() as session:
        token = await create_api_token(session, agent_id)
        team_id = await ensure_team(session, "one")
    assert token.startswith("gch_") and len(token) > 40
    async with store.read() as session:
        found = await agent_for_credential(session, api_token=token)
        stored = list(await session.scalars(select(ApiToken.token_hash)))
        assert await agent_for_credential(session, api_token=token + "x") is None
        assert await agent_for_credential(session, session_token=token) is None
        assert await agent_for_credential(session) is None
    assert found == (agent_id, Role.AGENT, frozenset({team_id}), None)
    assert len(stored) == 1 and token not in stored[0] and len(stored[0]) == 64
    assert await count(store, AuditEntry, AuditEntry.action == "token.create") == 1


async def test_revoked_api_token_is_refused(store: Store, agent_id: int) -> None:
    async with store.write() as session:
        token = await create_api_token(session, agent_id)
        await session.execute(update(ApiToken).values(revoked_at=utcnow()))
    async with store.read() as session:
        assert await agent_for_credential(session, api_token=token) is None


async def test_session_lasts_until_it_expires(store: Store, agent_id: int) -> None:
    async with store.write() as session:
        token = await create_session(session, agent_id, hours=2)
    now = utcnow()
    async with store.read() as session:
        valid = await agent_for_credential(session, session_token=token)
        almost = await agent_for_credential(
            session, session_token=token, now=now + timedelta(hours=2) - timedelta(minutes=1)
        )
        expired = await agent_for_credential(
            session, session_token=token, now=now + timedelta(hours=2, seconds=1)
        )
        assert await agent_for_credential(session, api_token=token) is None
    assert valid is not None and valid[0] == agent_id
    assert almost is not None
    assert expired is None
    assert await count(store, AuditEntry, AuditEntry.action == "agent.login") == 1


async def test_ended_session_is_refused(store: Store, agent_id: int) -> None:
    async with store.write() as session:
        token = await create_session(session, agent_id, hours=1)
        other = await create_session(session, agent_id, hours=1)
    async with store.write() as session:
        await end_session(session, token)
    async with store.read() as session:
        assert await agent_for_credential(session, session_token=token) is None
        assert await agent_for_credential(session, session_token=other) is not None


async def test_new_session_clears_expired_ones(store: Store, agent_id: int) -> None:
    async with store.write() as session:
        await create_session(session, agent_id, hours=1)
        await session.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(hours=1)))
    async with store.write() as session:
        await create_session(session, agent_id, hours=1)
    assert await count(store, AuthSession) == 1


async def _fail(store: Store, ip: str, email: str, times: int = 1) -> None:
    for _ in range(times):
        async with store.write() as session:
            await record_login_failure(session, ip, email)


async def _throttled(store: Store, ip: str, email: str) -> bool:
    async with store.read() as session:
        return await login_throttled(session, ip, email)


async def test_login_throttled_after_ten_failures(store: Store) -> None:
    assert LOGIN_MAX_FAILURES == 10
    await _fail(store, "192.0.2.1", "ann@support.example", times=9)
    assert not await _throttled(store, "192.0.2.1", "ann@support.example")
    await _fail(store, "192.0.2.1", "ANN@support.example")
    # Counted per address and per email, so neither a new address nor a new email escapes.
    assert await _throttled(store, "192.0.2.1", "ann@support.example")
    assert await _throttled(store, "198.51.100.7", "Ann@Support.Example")
    assert await _throttled(store, "192.0.2.1", "bob@support.example")
    assert not await _throttled(store, "198.51.100.7", "bob@support.example")


async def test_old_failures_expire(store: Store) -> None:
    await _fail(store, "192.0.2.1", "ann@support.example", times=LOGIN_MAX_FAILURES)
    async with store.write() as session:
        await session.execute(
            update(LoginFailure).values(at=utcnow() - LOGIN_WINDOW - timedelta(seconds=1))
        )
    assert not await _throttled(store, "192.0.2.1", "ann@support.example")
    await _fail(store, "192.0.2.9", "zed@support.example")
    # Recording a failure prunes those outside the window.
    assert await count(store, LoginFailure) == 1


async def test_padded_email_counts_against_the_same_account(store: Store) -> None:
    for i in range(LOGIN_MAX_FAILURES):
        await _fail(store, f"192.0.2.{i}", " " * i + "ann@support.example")
    assert await _throttled(store, "198.51.100.7", "ann@support.example")


async def test_concurrent_first_use_of_instance_secret_agrees(store: Store) -> None:
    async def read() -> str:
        async with store.write() as session:
            return await instance_secret(session, "race")

    values = await asyncio.gather(*(read() for _ in range(5)))
    assert len(set(values)) == 1


async def test_instance_secret_is_created_once(store: Store) -> None:
    async with store.write() as session:
        first = await instance_secret(session, "signing")
    async with store.write() as session:
        again = await instance_secret(session, "signing")
        other = await instance_secret(session, "other")
    assert first == again
    assert other != first and len(first) >= 48

