"""Small helpers the inbox tests share: counting rows, reading committed events, agents."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from inbox.actions.agents import create_agent
from inbox.db import Store
from inbox.events import DomainEvent, Subscription
from inbox.models import Event
from inbox.types import Role

PASSWORD = "correct horse battery staple"


async def count(store: Store, model: Any, *where: Any) -> int:
    async with store.read() as session:
        return (await session.scalar(select(func.count()).select_from(model).where(*where))) or 0


async def stored_events(store: Store, conversation_id: int | None = None) -> list[DomainEvent]:
    """Committed events, oldest first (works on every backend, unlike the in-process hub)."""
    query = select(Event).order_by(Event.id)
    if conversation_id is not None:
        query = query.where(Event.conversation_id == conversation_id)
    async with store.read() as session:
        return [DomainEvent.from_row(row) for row in await session.scalars(query)]


async def new_agent(
    store: Store, email: str, role: Role = Role.AGENT, teams: tuple[str, ...] = ()
) -> int:
    async with store.write() as session:
        return await create_agent(
            session, email=email, name=email.split("@")[0], role=role, password=PASSWORD,
            teams=teams,
        )


async def next_event(subscription: Subscription, within: float = 5.0) -> DomainEvent:
    """The next event a subscription receives within ``within`` seconds, else ``TimeoutError``."""
    return await asyncio.wait_for(anext(aiter(subscription)), within)
