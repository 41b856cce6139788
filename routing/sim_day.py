"""One simulated day: seeded conversations and the event loop that feeds a router.

``draw_day`` draws the day's conversations from separate random streams, so every router
sees the same arrivals and the same handle times (common random numbers). ``Simulation``
replays them through a router with the clock passed in: it tells the router what happens
(``enqueue``, ``set_presence``, ``release``, ``requeue``, ``set_agent``), asks ``decide(now)``
after every event, and starts a service for each assignment. It records facts in a
``Ledger`` and judges nothing.

Tier A allows one conversation per agent over all channels: the router is told each
agent has one slot (``Agent.slots``). With the scenario's ``chat_interrupts`` a chat may
take an agent busy with an email or a form: that work is put aside, its remaining handle
time kept, and resumed once the agent holds no chat (preemptive-resume priority, the
discipline the chat bound assumes). An assignment breaking these rules is a router fault
and stops the run.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import accumulate
from typing import Protocol

from inbox.types import Channel, Presence, Priority
from routing.core import Agent, Assignment, SkillNeed, Waiting
from routing.sim_metrics import AgentTime, Conversation, Ledger
from routing.sim_scenario import AgentSpec, ChangeSkill, Scenario, SetPriority, SupervisorEvent


class RouterFault(RuntimeError):
    """The router decided something the simulator cannot carry out (a bug in the router)."""


class Routes(Protocol):
    """The part of ``routing.core.Router`` the simulator drives."""

    def set_agent(self, agent: Agent) -> None: ...

    def set_presence(self, agent_id: int, presence: Presence, now: float) -> None: ...

    def release(self, agent_id: int, channel: Channel, now: float) -> None: ...

    def enqueue(self, waiting: Waiting) -> None: ...

    def requeue(self, waiting: Waiting, from_agent: int | None, now: float) -> None: ...

    def decide(self, now: float) -> list[Assignment]: ...

    def next_timer(self) -> float | None: ...


@dataclass(frozen=True)
class Streams:
    """Independent random streams, one per kind of randomness."""

    arrivals: random.Random  # arrival times
    mix: random.Random  # channel, skill, VIP
    handle: random.Random  # handle times
    presence: random.Random  # reserved for tier B (scenario L's absences are in its file)

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        return cls(
            *(
                random.Random(f"guichet-sim/{seed}/{name}")
                for name in ("arrivals", "mix", "handle", "presence")
            )
        )


def draw_day(scenario: Scenario, seed: int) -> list[Conversation]:
    """The day's conversations in arrival order, ids from 1."""
    streams = Streams.from_seed(seed)
    times: list[float] = []
    for period in scenario.arrivals:
        rate = period.per_hour / 3600.0
        t = period.start
        while rate > 0:
            t += streams.arrivals.expovariate(rate)
            if t >= period.end:
                break  # memoryless: the next period starts afresh
            times.append(t)
    # Cumulative weights once, not per draw: random.choices draws the same either way.
    channels = list(scenario.channels)
    channel_weights = list(accumulate(scenario.channels.values()))
    dimensions = [
        (list(need.weights), list(accumulate(need.weights.values()))) for need in scenario.needs
    ]
    choices = streams.mix.choices
    vip = scenario.vip
    day = []
    for number, t in enumerate(times, start=1):
        channel = choices(channels, cum_weights=channel_weights)[0]
        skills = tuple(choices(names, cum_weights=shares)[0] for names, shares in dimensions)
        is_vip = streams.mix.random() < vip.share and channel is vip.channel if vip else False
        sla = vip.sla_s if vip and is_vip else scenario.sla_s.get(channel)
        day.append(
            Conversation(
                id=number,
                arrival=t,
                channel=channel,
                skills=skills,
                vip=is_vip,
                handle_s=streams.handle.expovariate(1.0 / scenario.handle_mean_s),
                deadline=None if sla is None else t + sla,
            )
        )
    return day


@dataclass
class _Agent:
    """What the simulator knows of an agent; the router is told the same."""

    id: int
    spec: AgentSpec
    skills: dict[str, int]
    idle_since: float
    presence: Presence = Presence.OFFLINE
    on_shift: bool = False
    away: int = 0
    disconnected: bool = False
    load: dict[Channel, int] = field(default_factory=dict)
    holding: dict[int, int] = field(default_factory=dict)  # conversation id -> service token
    ends: dict[int, float] = field(default_factory=dict)  # in service: when it will be done
    paused: dict[int, float] = field(default_factory=dict)  # put aside: handle time left
    busy_since: float = 0.0
    online_since: float = 0.0

    def wanted_presence(self) -> Presence:
        if not self.on_shift or self.disconnected:
            return Presence.OFFLINE
        return Presence.AWAY if self.away else Presence.ONLINE

    def chats(self) -> int:
        return self.load.get(Channel.CHAT, 0)

    def can_take(self, channel: Channel, interrupts: bool) -> bool:
        """Tier A: one conversation at a time; a chat may interrupt other work."""
        if not self.holding:
            return True
        return interrupts and channel is Channel.CHAT and not self.chats()


Event = Callable[[float], None]


class Simulation:
    """Replays one day's conversations through a router."""

    def __init__(
        self,
        scenario: Scenario,
        router: Routes,
        day: list[Conversation],
        *,
        on_event: Callable[[float], None] | None = None,
        relax_s: Mapping[str, float] | None = None,
    ) -> None:
        self.scenario = scenario
        self.relax_s = relax_s or {}
        self.router = router
        self.ledger = Ledger(scenario)
        self.on_event = on_event
        self._day = [c.fresh() for c in day]  # the same day may be replayed for another router
        self._by_id = {c.id: c for c in self._day}
        self._needs_of: dict[tuple[str, ...], tuple[SkillNeed, ...]] = {}
        self._heap: list[tuple[float, int, Event]] = []
        self._wakeups: set[float] = set()  # times a router wake-up is scheduled for
        self._seq = 0
        self._tokens = 0
        self.waiting: dict[int, Waiting] = {}
        self._priority = {
            name: scenario.priorities.get(name, Priority.NORMAL.rank)
            for name in ("chat", "email", "form", "vip")
        }
        self.agents = {
            number: _Agent(number, spec, dict(spec.skills), idle_since=spec.shift_start)
            for number, spec in enumerate(scenario.agents, start=1)
        }
        self._by_name = {a.spec.name: a for a in self.agents.values()}

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> Ledger:
        self._schedule()
        while self._heap:
            now, _, event = heapq.heappop(self._heap)
            event(now)
            self._decide(now)
            self._wake_router(now)
            if self.on_event:
                self.on_event(now)
        self.ledger.still_waiting = len(self.waiting)
        return self.ledger

    def _wake_router(self, now: float) -> None:
        """Decide again when time alone changes a decision (a skill relaxed after a wait):
        the server decides on a clock tick, the simulator only on events."""
        at = self.router.next_timer()
        if at is not None and at > now and at not in self._wakeups:
            self._wakeups.add(at)
            self._at(at, _nothing)

    def _at(self, when: float, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, event))

    def _schedule(self) -> None:
        scenario = self.scenario
        closing = scenario.day_end + scenario.drain_s
        for agent in self.agents.values():
            self.router.set_agent(self._as_router_agent(agent))
            spec = agent.spec
            self.ledger.agents[agent.id] = AgentTime((spec.shift_start, spec.shift_end))
            # Agents on duty when the day ends work on until the queue is drained.
            end = spec.shift_end if spec.shift_end < scenario.day_end else closing
            self._at(spec.shift_start, partial(self._shift, agent, True))
            self._at(end, partial(self._shift, agent, False))
        for away in scenario.away:
            self._at(away.start, partial(self._away, self._by_name[away.agent], 1))
            self._at(away.end, partial(self._away, self._by_name[away.agent], -1))
        for cut in scenario.disconnects:
            self._at(cut.at, partial(self._disconnect, self._by_name[cut.agent]))
            if cut.back is not None:
                self._at(cut.back, partial(self._reconnect, self._by_name[cut.agent]))
        for change in scenario.supervisor:
            self._at(change.at, partial(self._supervise, change))
        if self._day:
            self._at(self._day[0].arrival, partial(self._arrive, 0))

    # -- events -----------------------------------------------------------------------
    def _arrive(self, index: int, now: float) -> None:
        conv = self._day[index]
        self.ledger.conversations.append(conv)
        self._wait(conv, now)
        self.router.enqueue(self.waiting[conv.id])
        if index + 1 < len(self._day):
            self._at(self._day[index + 1].arrival, partial(self._arrive, index + 1))

    def _complete(self, agent: _Agent, conv_id: int, token: int, now: float) -> None:
        if agent.holding.get(conv_id) != token:
            return  # handed back (disconnect) before it was finished
        conv = self._by_id[conv_id]
        conv.completed = now
        self._drop(agent, conv, now)
        self._resume(agent, now)
        self.router.release(agent.id, conv.channel, now)

    def _shift(self, agent: _Agent, on: bool, now: float) -> None:
        agent.on_shift = on
        self._refresh_presence(agent, now)

    def _away(self, agent: _Agent, delta: int, now: float) -> None:
        agent.away += delta
        self._refresh_presence(agent, now)

    def _disconnect(self, agent: _Agent, now: float) -> None:
        """Offline at once; everything the agent held waits again, keeping its wait."""
        agent.disconnected = True
        self._refresh_presence(agent, now)
        for conv_id in sorted(agent.holding):
            conv = self._by_id[conv_id]
            self._drop(agent, conv, now)
            conv.requeued_at = now
            self._wait(conv, now)
            self.router.requeue(self.waiting[conv_id], agent.id, now)
        self.router.set_agent(self._as_router_agent(agent))

    def _reconnect(self, agent: _Agent, now: float) -> None:
        agent.disconnected = False
        self._refresh_presence(agent, now)

    def _supervise(self, change: SupervisorEvent, now: float) -> None:
        if isinstance(change, SetPriority):
            self._priority[change.target] = change.priority
            for conv_id, waiting in list(self.waiting.items()):
                if _class(self._by_id[conv_id]) == change.target:
                    self.waiting[conv_id] = replace(waiting, priority=change.priority)
                    self.router.enqueue(self.waiting[conv_id])
            return
        assert isinstance(change, ChangeSkill)
        for name in change.agents:
            agent = self._by_name[name]
            if change.level:
                agent.skills[change.skill] = change.level
            else:
                agent.skills.pop(change.skill, None)
            self.router.set_agent(self._as_router_agent(agent))

    # -- decisions ----------------------------------------------------------------------
    def _decide(self, now: float) -> None:
        self._apply(self.router.decide(now), now)

    def _apply(self, batch: list[Assignment], now: float) -> None:
        """Start a service per assignment."""
        interrupts = self.scenario.router.chat_interrupts
        for assignment in batch:
            agent = self.agents[assignment.agent_id]
            if assignment.conversation_id not in self.waiting:
                self.ledger.duplicates += 1  # held already, finished, or never arrived
                self.router.release(agent.id, assignment.channel, now)
                self.router.set_agent(self._as_router_agent(agent))
            elif not agent.can_take(assignment.channel, interrupts):
                raise RouterFault(
                    f"at {now:.3f} s the router gave conversation "
                    f"{assignment.conversation_id} to agent {agent.id}, which holds "
                    f"{sorted(agent.holding)} and has no capacity left"
                )
            else:
                self._serve(agent, self._by_id[assignment.conversation_id], now)

    def _serve(self, agent: _Agent, conv: Conversation, now: float) -> None:
        del self.waiting[conv.id]
        self.ledger.queue_change(now, conv.channel, -1)
        if conv.first_assigned is None:
            conv.first_assigned = now
        if conv.requeued_at is not None:
            conv.reoffer_s.append(now - conv.requeued_at)
            conv.requeued_at = None
        if not agent.holding:
            agent.busy_since = now
        if conv.channel is Channel.CHAT:
            self._pause(agent, now)
        agent.load[conv.channel] = agent.load.get(conv.channel, 0) + 1
        self._start(agent, conv.id, conv.handle_s, now)
        # ``decide`` counted the assignment in the router's load already (and ``release``
        # counts the end): sending the agent again would change nothing but cost time.

    def _start(self, agent: _Agent, conv_id: int, handle_s: float, now: float) -> None:
        self._tokens += 1
        agent.holding[conv_id] = self._tokens
        agent.ends[conv_id] = now + handle_s
        self._at(now + handle_s, partial(self._complete, agent, conv_id, self._tokens))

    def _pause(self, agent: _Agent, now: float) -> None:
        """Put aside the email and form work in service: a chat takes the agent."""
        for conv_id in sorted(agent.ends):
            if self._by_id[conv_id].channel is not Channel.CHAT:
                agent.paused[conv_id] = agent.ends.pop(conv_id) - now
                agent.holding[conv_id] = 0  # no token: its completion event is void

    def _resume(self, agent: _Agent, now: float) -> None:
        if agent.chats():
            return
        for conv_id in sorted(agent.paused):
            self._start(agent, conv_id, agent.paused.pop(conv_id), now)

    # -- bookkeeping ----------------------------------------------------------------------
    def _wait(self, conv: Conversation, now: float) -> None:
        self.waiting[conv.id] = Waiting(
            id=conv.id,
            channel=conv.channel,
            needs=self._needs(conv.skills),
            priority=self._priority[_class(conv)],
            waiting_since=conv.arrival,
            deadline=conv.deadline,
        )
        self.ledger.queue_change(now, conv.channel, +1)

    def _needs(self, skills: tuple[str, ...]) -> tuple[SkillNeed, ...]:
        """What a conversation of that skill cell requires (made once per cell)."""
        needs = self._needs_of.get(skills)
        if needs is None:
            needs = tuple(SkillNeed(s, relax_after_s=self.relax_s.get(s)) for s in skills)
            self._needs_of[skills] = needs
        return needs

    def _drop(self, agent: _Agent, conv: Conversation, now: float) -> None:
        """The agent no longer holds ``conv``."""
        del agent.holding[conv.id]
        agent.ends.pop(conv.id, None)
        agent.paused.pop(conv.id, None)
        agent.load[conv.channel] -= 1
        if not agent.holding:
            agent.idle_since = now
            self.ledger.agents[agent.id].busy.append((agent.busy_since, now))

    def _refresh_presence(self, agent: _Agent, now: float) -> None:
        presence = agent.wanted_presence()
        if presence is agent.presence:
            return
        if agent.presence is Presence.ONLINE:
            self.ledger.agents[agent.id].online.append((agent.online_since, now))
        elif presence is Presence.ONLINE:
            agent.online_since = now
        agent.presence = presence
        self.router.set_presence(agent.id, presence, now)

    def _as_router_agent(self, agent: _Agent) -> Agent:
        return Agent(
            id=agent.id,
            presence=agent.presence,
            skills=dict(agent.skills),
            capacity={channel: 1 for channel, n in agent.spec.capacity.items() if n > 0},
            load={channel: n for channel, n in agent.load.items() if n},
            slots=1,
            idle_since=agent.idle_since,
        )


def _class(conv: Conversation) -> str:
    return "vip" if conv.vip else conv.channel.value


def _nothing(now: float) -> None:
    """An event that only lets the router decide at ``now``."""
