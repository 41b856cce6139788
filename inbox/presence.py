"""Presence kept alive by heartbeats: an online agent whose sockets all went silent turns away.

``Heartbeats`` is one process's view of its agents' open connections (the agent
websockets). It records ``agents.last_seen_at`` when a connection opens, when it closes,
when the client pings, and every half heartbeat while it stays open; writes are
rate-limited per agent and batched, so a thousand connected agents cost one UPDATE per
round, not a thousand.

``PresenceSweeper`` runs in every ``guichet serve`` process. Each round it turns away the
online agents whose ``last_seen_at`` is older than the grace period, through one guarded
UPDATE (``turn_away_silent_agents``), so when several processes sweep the same database
each change is recorded once. A process that dies simply stops refreshing its agents, and
another process's sweeper (or its own, once restarted and one grace has passed) turns
them away.

This module keeps the liveness of connections; it knows nothing of websockets themselves.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from inbox.actions.agents import record_heartbeats, turn_away_silent_agents
from inbox.db import Store
from inbox.models.base import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

MAX_SWEEP_INTERVAL_S = 5.0


class Heartbeats:
    """The open connections of this process's agents, and the writes that say they live.

    An agent's row is written at most once per ``heartbeat_s / 2`` by this process (open,
    ping and the periodic refresh share that limit); a close is always written, so that
    the grace period counts from the moment the connection dropped.
    """

    def __init__(
        self,
        store: Store,
        heartbeat_s: float,
        *,
        now: Clock = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.interval_s = heartbeat_s / 2
        self._now = now
        self._monotonic = monotonic
        self._open: Counter[int] = Counter()
        self._written: dict[int, float] = {}  # agent id -> monotonic time of our last write
        self._due: set[int] = set()
        self._flush: asyncio.Future[None] | None = None
        self._refresher: asyncio.Task[None] | None = None

    @property
    def agents(self) -> frozenset[int]:
        """Agents with at least one open connection in this process."""
        return frozenset(self._open)

    async def opened(self, agent_id: int) -> None:
        self._open[agent_id] += 1
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh())
        await self.seen(agent_id)

    async def closed(self, agent_id: int) -> None:
        self._open[agent_id] -= 1
        if self._open[agent_id] <= 0:
            del self._open[agent_id]
        if not self._open and self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        await self._write_soon([agent_id])

    async def seen(self, agent_id: int) -> None:
        """The agent's connection showed life; written unless written lately."""
        if self._is_due(agent_id, self._monotonic()):
            await self._write_soon([agent_id])

    def _is_due(self, agent_id: int, now: float) -> bool:
        return now - self._written.get(agent_id, -math.inf) >= self.interval_s

    async def _refresh(self) -> None:
        # Checking every quarter heartbeat keeps a live agent's row at most 3/4 of a
        # heartbeat old (config requires the grace to be at least one heartbeat).
        while True:
            await asyncio.sleep(self.interval_s / 2)
            now = self._monotonic()
            due = [agent_id for agent_id in self._open if self._is_due(agent_id, now)]
            if not due:
                continue
            try:
                await self._write_soon(due)
            except Exception:  # if this loop died, live agents would turn away
                log.exception("heartbeat refresh of %d agents failed; retrying", len(due))

    async def _write_soon(self, agent_ids: Collection[int]) -> None:
        """Write these agents' heartbeats together with any others due now.

        Callers arriving while a write is under way join the next batch of the same
        flush, so a burst (a reconnect storm, a shutdown) costs a few UPDATEs.
        """
        self._due.update(agent_ids)
        if self._flush is None:
            self._flush = asyncio.ensure_future(self._write_due())
            self._flush.add_done_callback(_retrieve)
        await asyncio.shield(self._flush)

    async def _write_due(self) -> None:
        try:
            while self._due:
                batch, self._due = self._due, set()
                started = self._monotonic()
                async with self.store.write() as session:
                    await record_heartbeats(session, batch, self._now())
                self._written.update(dict.fromkeys(batch, started))
                for agent_id in batch.difference(self._open):
                    self._written.pop(agent_id, None)
        finally:
            self._flush = None


def _retrieve(future: asyncio.Future[None]) -> None:
    # Waiters see the error; this keeps asyncio quiet when every waiter was cancelled.
    if not future.cancelled():
        future.exception()


class PresenceSweeper:
    """Turns away online agents whose connections have all been silent for ``grace_s``.

    ``now`` is the clock; tests pass their own to move time instead of sleeping.
    """

    def __init__(self, store: Store, grace_s: float, *, now: Clock = utcnow) -> None:
        self.store = store
        self.grace = timedelta(seconds=grace_s)
        self.now = now
        # Short enough that an agent whose last socket closed turns away soon after the
        # grace, whichever process notices.
        self.interval_s = min(MAX_SWEEP_INTERVAL_S, grace_s / 3)

    async def run_once(self) -> list[int]:
        """One sweep; returns the agents it turned away."""
        now = self.now()
        async with self.store.write() as session:
            changed = await turn_away_silent_agents(session, now - self.grace, now)
        if changed:
            log.info("presence: %d agent(s) away after losing their heartbeat", len(changed))
        return changed

    async def run(self) -> None:
        # Sockets that were on this process before it (re)started are on their way back:
        # give them one grace period before the first sweep. Other processes, if any, go
        # on sweeping meanwhile.
        await asyncio.sleep(self.grace.total_seconds())
        while True:
            try:
                await self.run_once()
            except (SQLAlchemyError, OSError):
                # The database is down or busy: keep sweeping, try again next round.
                log.exception("presence sweep failed; retrying in %.1fs", self.interval_s)
            await asyncio.sleep(self.interval_s)
