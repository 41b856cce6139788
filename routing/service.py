"""The router inside ``guichet serve``: ``routing.core`` fed from the store.

One ``RoutingService`` per process runs as a background worker. On SQLite (one process)
it routes at once; on PostgreSQL only the process holding the advisory lock routes
(``routing.leader``) and the others stand by to take over.

The leader subscribes to domain events first, then loads agents, loads and waiting
conversations from the database, and from then on keeps the router up to date from
events: ``conversation.created`` / ``conversation.updated`` carry the conversation's
summary (status, assignee, channel, priority, skills), ``agent.presence`` the presence.
Every decision is applied by ``inbox.actions.routing.route_conversation``, which
re-checks it under row locks; a refused decision puts the conversation back and the
state is reloaded shortly. The state is also reloaded every ``resync_s`` and whenever
the event stream overflows, so nothing missed stays missed.

Supervisors' routing rules (``routing.rules``) are evaluated on every conversation that
starts waiting, and on all waiting ones again when the rules change: their skills,
priority and SLA decide how it is routed, and the priority, team and tags they set are
written to the conversation (through ``update_conversation``, audited as the system).

An agent who turns away or offline holding chats gets them taken back after
``requeue_after_s`` unless they are online again by then; the chats wait again, ordered
by their original arrival. Email and forms stay with the agent, unless a rule with the
``requeue_when_away`` action matches them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from inbox.actions.conversations import UNSET, ConversationChanges, NotFound, update_conversation
from inbox.actions.routing import end_offer, hand_back, offer_conversation, route_conversation
from inbox.config import Settings
from inbox.db import Store
from inbox.events import DomainEvent, Subscription
from inbox.models import Agent as AgentRow
from inbox.models import AgentCapacity, AgentSkill, ChatOffer, Conversation, Event, Team
from inbox.types import Channel, Presence, Status
from routing.core import Agent, Policy, Router, Waiting
from routing.leader import leadership
from routing.rule_store import (
    Marking,
    Subject,
    current_rules,
    load_subjects,
    marking,
    waiting_for,
)
from routing.rules import Outcome, Rule, evaluate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingSettings:
    policy: Policy = Policy.LEAST_LOADED
    chat_first: bool = True
    requeue_after_s: float = 15.0  # an away agent's chats wait again after this
    sticky_s: float = 120.0  # a returning customer's previous agent is preferred this long
    offer_s: float = 0.0  # > 0: chats are offered, to be accepted within this many seconds
    not_responding_s: float = 120.0  # an agent who let an offer expire gets none this long
    resync_s: float = 30.0  # full reload from the database
    tick_s: float = 0.5  # longest sleep between decisions (relaxations, timers)
    standby_poll_s: float = 1.0  # PostgreSQL: how often a standby asks for leadership


    @classmethod
    def from_settings(cls, settings: Settings) -> RoutingSettings:
        return cls(
            policy=Policy(settings.routing_policy),
            chat_first=settings.routing_chat_first,
            requeue_after_s=float(settings.routing_requeue_s),
            sticky_s=float(settings.routing_sticky_s),
            offer_s=float(settings.routing_offer_s),
            not_responding_s=float(settings.routing_not_responding_s),
        )


@dataclass
class _Offer:
    agent_id: int
    expires: float  # on the service's clock
    waiting: Waiting  # what waits again if the offer ends unaccepted
    ending: bool = False  # an end was asked for; its event will settle it


class _Resync(Exception):
    """The event stream overflowed: reload everything."""


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class RoutingService:
    def __init__(
        self,
        store: Store,
        settings: RoutingSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings or RoutingSettings()
        self.clock = clock
        self.leading = asyncio.Event()  # set while this process routes (for tests)
        self.decisions = 0
        self.refusals = 0
        self._router = self._new_router()
        self._agents: dict[int, Agent] = {}
        self._waiting: dict[int, Waiting] = {}
        self._held: dict[int, tuple[int, Channel]] = {}  # open conversation -> holder
        self._requeue_due: dict[int, float] = {}  # agent -> when its chats go back
        self._resync_at = 0.0
        self._loaded_upto = 0  # events up to this id are in the loaded state already
        self._rules: tuple[Rule, ...] = ()
        self._marks: dict[int, Marking] = {}  # rules' changes still to write
        self._offers: dict[int, _Offer] = {}  # open chat offers, by conversation

    def _new_router(self) -> Router:
        return Router(
            self.settings.policy,
            chat_first=self.settings.chat_first,
            offer_chats=self.settings.offer_s > 0,
            not_responding_s=self.settings.not_responding_s,
        )

    # -- the worker ------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                if self.store.is_sqlite:
                    await self._lead(asyncio.Event())
                else:
                    engine = self.store.write_engine
                    async with leadership(engine, self.settings.standby_poll_s) as lost:
                        await self._lead(lost)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("routing stopped; starting again in 1 s")
            finally:
                self.leading.clear()
            await asyncio.sleep(1.0)

    async def _lead(self, lost: asyncio.Event) -> None:
        subscription = self.store.hub.subscribe()
        try:
            await self._load()
            self.leading.set()
            while not lost.is_set():
                now = self.clock()
                if now >= self._resync_at:
                    await self._load()
                await self._hand_back_due(now)
                await self._end_offers_due(now)
                await self._decide()
                try:
                    events = await self._next_events(subscription)
                except _Resync:
                    subscription.close()
                    subscription = self.store.hub.subscribe()
                    self._resync_at = 0.0
                    continue
                await self._apply_all(events)
        finally:
            subscription.close()

    async def _next_events(self, subscription: Subscription) -> list[DomainEvent]:
        """What arrived, waiting at most ``tick_s`` (or until the next hand-back)."""
        timeout = self.settings.tick_s
        due = [*self._requeue_due.values(), *(o.expires for o in self._offers.values()
                                              if not o.ending)]
        if due:
            timeout = min(timeout, max(0.0, min(due) - self.clock()))
        events: list[DomainEvent] = []
        iterator = aiter(subscription)
        try:
            first = await asyncio.wait_for(anext(iterator), timeout)
        except TimeoutError:
            return events
        except StopAsyncIteration:
            raise _Resync from None
        events.append(first)
        events.extend(subscription.drain())
        if subscription.overflowed:
            raise _Resync
        return events

    # -- state from the database ----------------------------------------------------
    async def _load(self) -> None:
        agents: dict[int, Agent] = {}
        waiting: dict[int, Waiting] = {}
        held: dict[int, tuple[int, Channel]] = {}
        async with self.store.read() as session:
            upto = await session.scalar(select(func.max(Event.id)))
            agent_skills: dict[int, dict[str, int]] = {}
            for agent_id, skill, level in await session.execute(
                select(AgentSkill.agent_id, AgentSkill.skill, AgentSkill.level)
            ):
                agent_skills.setdefault(agent_id, {})[skill] = level
            capacities: dict[int, dict[Channel, int]] = {}
            for agent_id, channel, capacity in await session.execute(
                select(AgentCapacity.agent_id, AgentCapacity.channel, AgentCapacity.capacity)
            ):
                capacities.setdefault(agent_id, {})[Channel(channel)] = capacity
            rows = await session.execute(
                select(AgentRow.id, AgentRow.presence).where(AgentRow.active.is_(True))
            )
            for agent_id, presence in rows:
                agents[agent_id] = Agent(
                    agent_id, Presence(presence), skills=agent_skills.get(agent_id, {}),
                    capacity=capacities.get(agent_id, {}),
                )
            open_ = Conversation.status == Status.OPEN.value
            for conversation_id, assignee_id, channel in await session.execute(
                select(Conversation.id, Conversation.assignee_id, Conversation.channel).where(
                    open_, Conversation.assignee_id.is_not(None)
                )
            ):
                holder = int(assignee_id or 0)  # never 0: the query takes assigned ones
                held[conversation_id] = (holder, Channel(channel))
                if holder in agents:
                    load = agents[holder].load
                    load[Channel(channel)] = load.get(Channel(channel), 0) + 1
            self._rules = await current_rules(session)
            offered = {
                row.conversation_id: row
                for row in await session.scalars(select(ChatOffer))
            }
            unassigned = (await session.scalars(
                select(Conversation.id).where(open_, Conversation.assignee_id.is_(None))
            )).all()
            subjects = await load_subjects(session, unassigned)
        # Rules (patterns may take milliseconds) and the router's queues for a whole
        # backlog are CPU work: done in a thread, off the event loop.
        outcomes = await self._evaluate(subjects.values())
        self._marks = {}
        offers: dict[int, _Offer] = {}
        for subject in subjects.values():
            item = self._waiting_for(subject, outcomes[subject.id])
            row = offered.get(subject.id)
            if row is None:
                waiting[subject.id] = item
                continue
            offers[subject.id] = _Offer(row.agent_id, row.expires_at.timestamp(), item)
            held[subject.id] = (row.agent_id, Channel.CHAT)
            if row.agent_id in agents:
                load = agents[row.agent_id].load
                load[Channel.CHAT] = load.get(Channel.CHAT, 0) + 1
        router = await asyncio.to_thread(self._build, agents, waiting)
        self._router, self._agents, self._waiting, self._held = router, agents, waiting, held
        self._offers = offers
        self._loaded_upto = upto or 0
        now = self.clock()
        holders = {holder for holder, _ in held.values()}
        for agent_id, agent in agents.items():
            if agent.presence != Presence.ONLINE and agent_id in holders:
                self._requeue_due.setdefault(agent_id, now + self.settings.requeue_after_s)
        self._resync_at = now + self.settings.resync_s
        await self._mark()

    def _build(self, agents: Mapping[int, Agent], waiting: Mapping[int, Waiting]) -> Router:
        router = self._new_router()
        for agent in agents.values():
            router.set_agent(agent)
        for item in waiting.values():
            router.enqueue(item)
        return router

    async def _evaluate(self, subjects: Iterable[Subject]) -> dict[int, Outcome | None]:
        """The rules' outcome per conversation, computed in a thread."""
        rules, listed = self._rules, list(subjects)
        if not rules:
            return dict.fromkeys((s.id for s in listed), None)
        return await asyncio.to_thread(
            lambda: {s.id: evaluate(rules, s.facts) for s in listed}
        )

    def _waiting_for(self, subject: Subject, outcome: Outcome | None) -> Waiting:
        if outcome is not None and outcome.errors:
            log.warning("routing rules on conversation %s: %s", subject.id,
                        "; ".join(outcome.errors))
        mark = marking(subject, outcome)
        if mark is not None:
            self._marks[subject.id] = mark
        return waiting_for(subject, outcome, self.settings.sticky_s)

    async def _mark(self) -> None:
        """Write the priority, team and tags the rules set on the conversations just
        evaluated (each change is audited and comes back as an event, which finds
        nothing more to change)."""
        marks, self._marks = self._marks, {}
        for conversation_id, mark in sorted(marks.items()):
            async with self.store.write() as session:
                team_id: int | None = UNSET
                if mark.team is not None:
                    team_id = await session.scalar(select(Team.id).where(Team.name == mark.team))
                    if team_id is None:
                        log.warning("routing rule sets team %r, which does not exist", mark.team)
                        team_id = UNSET
                changes = ConversationChanges(
                    priority=mark.priority, tags=mark.tags, team_id=team_id
                )
                try:
                    await update_conversation(session, conversation_id, None, changes)
                except NotFound:
                    continue

    # -- events ---------------------------------------------------------------------
    async def _apply_all(self, events: list[DomainEvent]) -> None:
        """Apply events in order; conversations that wait are (re)read and evaluated
        against the rules together at the end."""
        fresh: set[int] = set()
        for event in events:
            if event.id <= self._loaded_upto:
                continue
            if event.kind in ("conversation.created", "conversation.updated"):
                conversation_id = self._conversation(event.payload["conversation"])
                if conversation_id is not None:
                    fresh.add(conversation_id)
                else:
                    fresh.discard(int(event.payload["conversation"]["id"]))
            elif event.kind == "agent.presence":
                self._presence(
                    int(event.payload["agent_id"]), Presence(event.payload["presence"])
                )
            elif event.kind == "routing.rules":
                self._resync_at = 0.0  # new rules: re-evaluate everything waiting
            elif event.kind == "conversation.offer_ended":
                conversation_id = int(event.payload["conversation"]["id"])
                offer = self._offers.get(conversation_id)
                if offer is not None and offer.agent_id == int(event.payload["agent_id"]):
                    reason = event.payload["reason"]
                    if reason == "declined":  # never offered to that agent again
                        offer.waiting = replace(
                            offer.waiting,
                            declined_by=offer.waiting.declined_by | {offer.agent_id},
                        )
                    self._offer_ended(conversation_id, self.clock(), reason == "expired")
        if not fresh:
            return
        async with self.store.read() as session:
            subjects = await load_subjects(session, fresh)
        outcomes = await self._evaluate(subjects.values())
        for conversation_id in sorted(fresh):
            subject = subjects.get(conversation_id)
            if subject is None or conversation_id in self._held:
                continue
            item = self._waiting_for(subject, outcomes[conversation_id])
            if self._waiting.get(conversation_id) != item:
                self._waiting[conversation_id] = item
                self._router.enqueue(item)
        await self._mark()

    def _conversation(self, summary: Mapping[str, Any]) -> int | None:
        """Apply a conversation's new state; its id if it waits (to be evaluated)."""
        conversation_id = int(summary["id"])
        channel = Channel(summary["channel"])
        assignee = summary["assignee_id"]
        is_open = summary["status"] == Status.OPEN.value
        holder = (int(assignee), channel) if is_open and assignee is not None else None
        offer = self._offers.get(conversation_id)
        if offer is not None:
            if is_open and assignee is None:
                holder = (offer.agent_id, Channel.CHAT)  # still on offer
            else:
                del self._offers[conversation_id]  # accepted, or closed while on offer
        before = self._held.get(conversation_id)
        if before != holder:
            now = self.clock()
            if before is not None:
                del self._held[conversation_id]
                if before[0] in self._agents:
                    self._router.release(before[0], before[1], now)
            if holder is not None:
                self._held[conversation_id] = holder
                agent = self._agents.get(holder[0])
                if agent is not None:
                    agent.load[channel] = agent.load.get(channel, 0) + 1
                    self._router.set_agent(agent)
        if is_open and assignee is None:
            return conversation_id
        if self._waiting.pop(conversation_id, None) is not None:
            self._router.remove(conversation_id)
        return None

    def _presence(self, agent_id: int, presence: Presence) -> None:
        agent = self._agents.get(agent_id)
        if agent is None:
            self._resync_at = 0.0  # an agent this router has not loaded yet
            return
        now = self.clock()
        self._router.set_presence(agent_id, presence, now)
        if presence == Presence.ONLINE:
            self._requeue_due.pop(agent_id, None)
        else:
            self._requeue_due.setdefault(agent_id, now + self.settings.requeue_after_s)

    # -- decisions ------------------------------------------------------------------
    async def _decide(self) -> None:
        now = self.clock()
        for assignment in self._router.decide(now):
            conversation_id, agent_id = assignment.conversation_id, assignment.agent_id
            item = self._waiting.pop(conversation_id, None)
            async with self.store.write() as session:
                if assignment.offer:
                    expires = now + self.settings.offer_s
                    routed = await offer_conversation(
                        session, conversation_id, agent_id, _utc(expires)
                    )
                else:
                    routed = await route_conversation(session, conversation_id, agent_id)
            if routed.refused is None:
                self.decisions += 1
                self._held[conversation_id] = (agent_id, assignment.channel)
                if assignment.offer and item is not None:
                    self._offers[conversation_id] = _Offer(agent_id, expires, item)
                continue
            # The router's picture was stale: undo, and reload it soon.
            self.refusals += 1
            log.info("routing of %s to agent %s refused: %s", conversation_id, agent_id,
                     routed.refused.value)
            self._router.remove(conversation_id)
            self._router.release(agent_id, assignment.channel, now)
            if item is not None:
                self._waiting[conversation_id] = item
            self._resync_at = min(self._resync_at, now + 0.2)

    async def _end_offers_due(self, now: float) -> None:
        """Withdraw offers that expired (the agent is then not responding for a while)
        and offers to agents who are no longer online."""
        for conversation_id, offer in sorted(self._offers.items()):
            agent = self._agents.get(offer.agent_id)
            away = agent is None or agent.presence != Presence.ONLINE
            if offer.ending or (offer.expires > now and not away):
                continue
            reason = "agent_away" if away and offer.expires > now else "expired"
            async with self.store.write() as session:
                ended = await end_offer(session, conversation_id, offer.agent_id, reason)
            if not ended:
                offer.ending = True  # accepted or declined meanwhile: its event settles it
                continue
            self._offer_ended(conversation_id, now, reason == "expired")

    def _offer_ended(self, conversation_id: int, now: float, not_responding: bool) -> None:
        """The chat offered waits again, keeping its place; the agent's load drops."""
        offer = self._offers.pop(conversation_id)
        self._held.pop(conversation_id, None)
        self._waiting[conversation_id] = offer.waiting
        self._router.requeue(offer.waiting, offer.agent_id, now)
        agent = self._agents.get(offer.agent_id)
        if not_responding and agent is not None:
            agent.not_responding_until = now + self.settings.not_responding_s
            self._router.set_agent(agent)

    async def _requeued_by_rule(self, agent_id: int) -> list[int]:
        """The agent's email and form work that a rule says must not wait for them."""
        mine = [c for c, (holder, channel) in self._held.items()
                if holder == agent_id and channel != Channel.CHAT and c not in self._offers]
        if not mine or not self._rules:
            return []
        async with self.store.read() as session:
            subjects = await load_subjects(session, mine)
        outcomes = await self._evaluate(subjects.values())
        return [c for c, outcome in sorted(outcomes.items())
                if outcome is not None and outcome.requeue_when_away]

    async def _hand_back_due(self, now: float) -> None:
        for agent_id, due in sorted(self._requeue_due.items()):
            if due > now:
                continue
            del self._requeue_due[agent_id]
            also = await self._requeued_by_rule(agent_id)
            async with self.store.write() as session:
                handed = await hand_back(
                    session, agent_id, [Channel.CHAT.value], "agent_away", also
                )
            if handed:
                log.info("agent %s is away: chats %s wait again", agent_id, handed)

