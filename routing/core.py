"""The routing core: which waiting conversation goes to which agent, decided on plain data.

Nothing here touches the database, the network or the wall clock. The server feeds a
``Router`` from the store and applies its decisions through ``inbox`` actions; the
simulator feeds it a seeded day. Both pass ``now`` (seconds on any monotonic scale) into
every call, so the same code gives the same decisions for the same inputs.

Vocabulary:

* A ``Waiting`` conversation has a channel, the skills it needs (each at a minimum level,
  possibly made optional after a wait), a priority, and the time it started waiting.
* An ``Agent`` has a presence, skills with levels, a capacity per channel, and the number
  of conversations it holds per channel (its load).
* An agent is **eligible** for a conversation at ``now`` when it has not declined it
  (``Waiting.declined_by``), is online, not marked not-responding, has capacity left on
  the conversation's channel and, if it has ``slots`` (a cap on conversations over all
  channels), a slot left; and it holds every skill the conversation still requires at
  ``now`` at the required level or above.
* With ``chat_interrupts``, chat may interrupt deferrable work (email and forms): for a
  chat only the chats an agent holds count against its slots, so an agent busy with an
  email can take a chat and put the email aside. An agent that needs no interrupting is
  preferred to one that does; an agent holding a chat still gets no new email or form
  beyond its slots.
* ``decide(now)`` returns the assignments to make now. It is greedy and work-conserving:
  after it returns, no waiting conversation has an eligible agent with capacity left.

Urgency (who is served first) is: priority (urgent first); then, if ``chat_first``, chat
before email and forms; then chat by arrival time and email/forms by SLA deadline
(earliest first; a conversation without a deadline counts as arrival + a day); ties by
arrival, then id.

Choice among eligible agents follows ``Policy``; ties are broken by agent id so results
are reproducible. ``least_occupied`` ranks agents by the share of their present time
(online or holding work) they spent holding work, counted from when the router first
saw them; idle agents are re-ranked every ``OCCUPANCY_REFRESH_S`` as their share falls.
With ``spare_scarce`` (the default) the policy is applied among the eligible agents that
could serve the fewest other waiting conversations: an agent whose other skills are in
demand is kept for that demand (agents with identical skills share one count, kept up
to date as conversations wait and leave). A returning customer's
previous agent (``Waiting.sticky_agent``) is preferred while ``now < sticky_until``
(with no end if ``sticky_until`` is None) if that agent is eligible; after that, any
agent.

``now`` never goes backwards from one call to the next. Agents are grouped by identical
skills, so eligibility is checked once per group; conversations are grouped by channel and
the needs they still have, so one look at the head of a group answers for all of it. Only
groups of conversations that something could have changed for (an agent freed, a
conversation added, a need relaxed) are looked at again by ``decide``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from inbox.types import Channel, Presence
from routing.ranking import Key, Ranked, Ranking, relaxes_at

DEFAULT_DEADLINE_S = 24 * 3600.0
OCCUPANCY_REFRESH_S = 60.0  # least_occupied: idle agents' occupancy is re-read this often


class Policy(StrEnum):
    LEAST_LOADED = "least_loaded"  # lowest load / capacity on that channel, then longest idle
    LONGEST_IDLE = "longest_idle"  # earliest idle_since (time the agent last freed work)
    LEAST_FLEXIBLE = "least_flexible"  # fewest skills, then least loaded
    LEAST_OCCUPIED = "least_occupied"  # lowest share of busy time while present, then idle


@dataclass(frozen=True)
class SkillNeed:
    skill: str
    level: int = 1
    # The need is dropped once the conversation has waited this many seconds (None: never).
    relax_after_s: float | None = None


@dataclass(frozen=True)
class Waiting:
    """A conversation waiting for an agent."""

    id: int
    channel: Channel
    needs: tuple[SkillNeed, ...] = ()
    priority: int = 1  # inbox.types.Priority.rank: 0 low .. 3 urgent
    waiting_since: float = 0.0  # kept when a conversation is re-queued
    deadline: float | None = None  # SLA deadline (email and forms)
    sticky_agent: int | None = None
    sticky_until: float | None = None  # None with a sticky_agent: preferred with no end
    declined_by: frozenset[int] = frozenset()  # agents who turned it down: never again


@dataclass
class Agent:
    id: int
    presence: Presence = Presence.OFFLINE
    skills: Mapping[str, int] = field(default_factory=dict)
    capacity: Mapping[Channel, int] = field(default_factory=dict)  # missing channel: 0
    load: dict[Channel, int] = field(default_factory=dict)  # missing channel: 0
    idle_since: float = 0.0
    not_responding_until: float = 0.0
    slots: int | None = None  # conversations at once over all channels (None: no cap)


@dataclass(frozen=True)
class Assignment:
    conversation_id: int
    agent_id: int
    channel: Channel
    offer: bool  # True for chat when offers are on: the agent must accept in time


# -- internals: groups of agents, classes of conversations (ranked sets: routing.ranking) ----

Needs = frozenset[tuple[str, int]]  # (skill, minimum level) pairs still required
_CHANNELS = tuple(Channel)


def _covers(skills: Mapping[str, int], needs: Needs) -> bool:
    return all(skills.get(skill, 0) >= level for skill, level in needs)


def _required(need: SkillNeed, waiting: Waiting, now: float) -> bool:
    return need.relax_after_s is None or now - waiting.waiting_since < need.relax_after_s


@dataclass(eq=False)
class _Group:
    """Agents with identical skills: eligible for exactly the same conversations."""

    key: frozenset[tuple[str, int]]
    skills: dict[str, int]
    members: int = 0
    backlog: int = 0  # conversations waiting that these agents could serve, all channels
    # Per channel, the members that could take work on it now, best first by the policy.
    free: dict[Channel, Ranking] = field(default_factory=lambda: {c: Ranking() for c in Channel})
    classes: dict[Channel, list[_Class]] = field(default_factory=lambda: {c: [] for c in Channel})


@dataclass(eq=False)
class _Class:
    """Conversations on one channel that still require the same skills at ``now``."""

    channel: Channel
    needs: Needs
    queue: Ranking = field(default_factory=Ranking)  # by urgency
    groups: list[_Group] = field(default_factory=list)  # the groups whose skills cover needs


@dataclass(eq=False)
class _AgentState:
    agent: Agent
    group: _Group
    # Conversations decided for this agent that ``decline`` may still hand back, per channel.
    held: dict[Channel, set[int]]
    timer: float | None = None  # the not-responding end a wake-up is scheduled for
    # Occupancy: seconds busy (holding work) and present (online or busy) so far.
    busy_s: float = 0.0
    present_s: float = 0.0
    since: float | None = None  # when busy_s and present_s were last brought up to date
    busy: bool = False
    present: bool = False

    def account(self, now: float) -> None:
        """Count the time since the last change, then note the agent's state now."""
        if self.since is not None and now > self.since:
            elapsed = now - self.since
            self.busy_s += elapsed if self.busy else 0.0
            self.present_s += elapsed if self.present else 0.0
        self.since = now
        self.busy = any(n > 0 for n in self.agent.load.values())
        self.present = self.busy or self.agent.presence == Presence.ONLINE

    @property
    def occupancy(self) -> float:
        return self.busy_s / self.present_s if self.present_s > 0 else 0.0


@dataclass(eq=False)
class _Entry:
    waiting: Waiting
    key: Key
    cls: _Class | None = None


def _first_but(cls: _Class, passed: set[int]) -> Ranked | None:
    return cls.queue.first_but(frozenset(passed)) if passed else cls.queue.first()


class Router:
    """Queues and agents in memory, and the decisions between them.

    The caller tells the router what happened (``enqueue``, ``remove``, ``set_agent``,
    ``release``, ...) and asks ``decide(now)`` for what to do. ``decide`` already counts
    each assignment in the agent's load and takes the conversation out of the queue; the
    caller reports back only what did not go as decided (``decline`` for a refused or
    timed-out offer, ``requeue`` for work handed back).
    """

    def __init__(
        self,
        policy: Policy = Policy.LEAST_LOADED,
        *,
        chat_first: bool = True,
        chat_interrupts: bool = False,
        spare_scarce: bool = True,
        offer_chats: bool = False,
        not_responding_s: float = 120.0,
    ) -> None:
        self._policy = policy
        self._chat_first = chat_first
        self._chat_interrupts = chat_interrupts
        self._spare = spare_scarce
        self._offer_chats = offer_chats
        self._not_responding_s = not_responding_s
        self._now = -math.inf  # the latest ``now`` seen
        self._agents: dict[int, _AgentState] = {}
        self._groups: dict[frozenset[tuple[str, int]], _Group] = {}
        self._classes: dict[tuple[Channel, Needs], _Class] = {}
        self._entries: dict[int, _Entry] = {}
        self._order: dict[Channel, list[Ranked]] = {c: [] for c in Channel}  # for the views
        self._assigned: dict[int, tuple[Waiting, int]] = {}  # conversation -> (it, agent)
        self._dirty: set[_Class] = set()  # classes that may have gained an eligible agent
        self._agent_timers: list[tuple[float, int]] = []  # (not_responding_until, agent)
        self._relax_timers: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._occupancy_read = -math.inf  # least_occupied: when idle agents were re-ranked

    # -- agents ---------------------------------------------------------------------
    def set_agent(self, agent: Agent) -> None:
        """Add an agent or replace what is known of it (presence, skills, capacity,
        load). Its held conversations are the caller's business: load is a count.

        The router keeps this object and updates its ``load``, ``idle_since`` and
        ``not_responding_until``; changes made to it elsewhere count once it is set again."""
        old = self._agents.get(agent.id)
        group = self._group(agent.skills)  # before dropping the old one, which may empty it
        group.members += 1
        if old is not None:
            self._drop(old)
        held = old.held if old is not None else {c: set() for c in Channel}
        state = _AgentState(agent, group, held)
        if old is not None:  # the time counted so far carries over
            state.busy_s, state.present_s, state.since = old.busy_s, old.present_s, old.since
            state.busy, state.present = old.busy, old.present
        self._agents[agent.id] = state
        self._index(state)

    def remove_agent(self, agent_id: int) -> None:
        """Forget an agent; a decline of work decided for it is refused from now on."""
        state = self._agents.get(agent_id)
        if state is None:
            return
        for held in state.held.values():
            for conversation_id in list(held):
                self._forget(conversation_id)
        self._drop(state)
        del self._agents[agent_id]

    def set_presence(self, agent_id: int, presence: Presence, now: float) -> None:
        self._tick(now)
        state = self._agents[agent_id]
        state.agent.presence = presence
        self._index(state)

    def release(self, agent_id: int, channel: Channel, now: float) -> None:
        """The agent finished (or handed over) one conversation on ``channel``: its load
        drops by one and it has been idle since ``now`` if it now holds nothing."""
        self._tick(now)
        state = self._agents[agent_id]
        agent = state.agent
        agent.load[channel] = max(0, agent.load.get(channel, 0) - 1)
        if all(n <= 0 for n in agent.load.values()):
            agent.idle_since = now
        self._index(state)

    # -- conversations ------------------------------------------------------------
    def enqueue(self, waiting: Waiting) -> None:
        """Add a waiting conversation, or replace it (same id) after a rule change."""
        self.remove(waiting.id)
        entry = _Entry(waiting, self._urgency(waiting))
        self._entries[waiting.id] = entry
        insort(self._order[waiting.channel], (entry.key, waiting.id))
        self._place(entry, self._now)

    def remove(self, conversation_id: int) -> None:
        """Take a conversation out of the queue (assigned by hand, resolved, ...). If it
        was assigned by ``decide``, that assignment can no longer be declined."""
        self._forget(conversation_id)
        entry = self._entries.get(conversation_id)
        if entry is not None:
            self._unqueue(entry)

    def requeue(self, waiting: Waiting, from_agent: int | None, now: float) -> None:
        """Put assigned work back in the queue, keeping ``waiting.waiting_since``; if
        ``from_agent`` is given its load on that channel drops by one (an agent the
        router no longer knows is skipped: the conversation still waits again)."""
        self._tick(now)
        state = self._agents.get(from_agent) if from_agent is not None else None
        if state is not None:
            self._unload(state, waiting.channel)
        self.enqueue(waiting)

    def decline(self, assignment: Assignment, now: float) -> None:
        """An offer was refused or timed out: the conversation waits again (keeping its
        waiting time), the agent's load drops back, and the agent is not offered
        anything until ``now + not_responding_s``.

        Raises ``KeyError`` and changes nothing unless ``assignment`` is the conversation's
        latest decision and it has not since been declined, re-queued, removed or
        released (the agent's load on that channel falling to zero)."""
        record = self._assigned.get(assignment.conversation_id)
        if record is None or record[1] != assignment.agent_id:
            raise KeyError(
                f"conversation {assignment.conversation_id} has no open assignment "
                f"to agent {assignment.agent_id}"
            )
        self._tick(now)
        waiting, agent_id = record
        state = self._agents[agent_id]
        state.agent.not_responding_until = now + self._not_responding_s
        self._unload(state, waiting.channel)
        self.enqueue(waiting)

    # -- decisions ----------------------------------------------------------------
    def decide(self, now: float) -> list[Assignment]:
        """Every assignment to make now, in the order they were decided."""
        self._advance(now)
        # Every other class had no eligible agent after the last decide and nothing has
        # happened to it since, so the most urgent head among these is the most urgent
        # conversation that can be served. Serving only takes agents away, so a class
        # whose head finds no agent is done for this call.
        ready: list[tuple[Ranked, _Class]] = []
        for cls in self._dirty:
            head = cls.queue.first()
            if head is not None:
                ready.append((head, cls))
        self._dirty.clear()
        heapq.heapify(ready)
        decided = []
        # Conversations passed over in this call because every agent left for them has
        # declined them: the next one in their class may still be served.
        passed: dict[_Class, set[int]] = {}
        while ready:
            head, cls = heapq.heappop(ready)
            entry = self._entries[head[1]]
            agent_id = self._choose(cls, entry.waiting, now)
            if agent_id is None:
                if entry.waiting.declined_by:
                    passed.setdefault(cls, set()).add(head[1])
                    head_after = _first_but(cls, passed[cls])
                    if head_after is not None:
                        heapq.heappush(ready, (head_after, cls))
                continue
            decided.append(self._assign(entry, agent_id))
            head_after = _first_but(cls, passed.get(cls, set()))
            if head_after is not None:
                heapq.heappush(ready, (head_after, cls))
        return decided

    def next_timer(self) -> float | None:
        """The next time at which time alone may change a decision (a need relaxed, an
        agent done resting): a caller that does not decide on a clock tick should call
        ``decide`` then. May be early (a timer whose reason went away), never late."""
        heads = [timers[0][0] for timers in (self._relax_timers, self._agent_timers) if timers]
        return min(heads) if heads else None

    # -- views --------------------------------------------------------------------
    def waiting(self) -> list[Waiting]:
        """The queue in urgency order."""
        merged = heapq.merge(*self._order.values())
        return [self._entries[conversation_id].waiting for _, conversation_id in merged]

    def position(self, conversation_id: int, now: float) -> int | None:
        """1-based place of a waiting chat among the waiting chats, in urgency order."""
        self._tick(now)
        entry = self._entries.get(conversation_id)
        if entry is None or entry.waiting.channel != Channel.CHAT:
            return None
        return bisect_left(self._order[Channel.CHAT], (entry.key, conversation_id)) + 1

    def agents(self) -> Iterable[Agent]:
        return [state.agent for state in self._agents.values()]

    # -- keys -----------------------------------------------------------------------
    def _urgency(self, waiting: Waiting) -> Key:
        if waiting.channel == Channel.CHAT:
            due = waiting.waiting_since
        elif waiting.deadline is not None:
            due = waiting.deadline
        else:
            due = waiting.waiting_since + DEFAULT_DEADLINE_S
        later = int(self._chat_first and waiting.channel != Channel.CHAT)
        return (-waiting.priority, later, due, waiting.waiting_since)

    def _merit(self, state: _AgentState, ratio: float, interrupts: bool) -> Key:
        agent = state.agent
        if self._policy is Policy.LEAST_LOADED:
            return (interrupts, ratio, agent.idle_since)
        if self._policy is Policy.LONGEST_IDLE:
            return (interrupts, agent.idle_since, ratio)
        if self._policy is Policy.LEAST_OCCUPIED:
            return (interrupts, ratio, state.occupancy, agent.idle_since)
        return (interrupts, len(agent.skills), ratio)

    # -- agent bookkeeping ----------------------------------------------------------
    def _tick(self, now: float) -> None:
        self._now = max(self._now, now)

    def _index(self, state: _AgentState, channels: Iterable[Channel] = _CHANNELS) -> None:
        """Bring the agent's place in its group's rankings up to date."""
        agent, group = state.agent, state.group
        if self._now > -math.inf:
            state.account(self._now)
        online = agent.presence == Presence.ONLINE
        resting = agent.not_responding_until > self._now
        slots = agent.slots
        total = sum(n for n in agent.load.values() if n > 0)
        for channel in channels:
            load = agent.load.get(channel, 0)
            if load <= 0 and state.held[channel]:
                for conversation_id in list(state.held[channel]):
                    self._forget(conversation_id)  # all of it finished: none can be declined
            capacity = agent.capacity.get(channel, 0)
            room = online and not resting and load < capacity
            ratio = load / capacity if capacity else 0.0
            interrupts = False
            if room and slots is not None:
                if self._chat_interrupts and channel == Channel.CHAT:
                    room = max(load, 0) < slots
                    interrupts = total >= slots
                else:
                    room = total < slots
                ratio = max(ratio, total / slots)
            free = group.free[channel]
            if room:
                if free.put(agent.id, self._merit(state, ratio, interrupts)):
                    self._dirty.update(group.classes[channel])
            else:
                free.discard(agent.id)
        if online and resting and state.timer != agent.not_responding_until:
            state.timer = agent.not_responding_until
            heapq.heappush(self._agent_timers, (state.timer, agent.id))

    def _unload(self, state: _AgentState, channel: Channel) -> None:
        state.agent.load[channel] = max(0, state.agent.load.get(channel, 0) - 1)
        self._index(state)

    def _group(self, skills: Mapping[str, int]) -> _Group:
        key = frozenset(skills.items())
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key, dict(key))
            for cls in self._classes.values():
                if _covers(skills, cls.needs):
                    cls.groups.append(group)
                    group.classes[cls.channel].append(cls)
                    group.backlog += len(cls.queue)
        return group

    def _drop(self, state: _AgentState) -> None:
        """Take the agent out of its group, and the group out of the router if empty."""
        group = state.group
        for free in group.free.values():
            free.discard(state.agent.id)
        group.members -= 1
        if group.members == 0:
            for classes in group.classes.values():
                for cls in classes:
                    cls.groups.remove(group)
            del self._groups[group.key]

    # -- conversation bookkeeping ---------------------------------------------------
    def _class(self, channel: Channel, needs: Needs) -> _Class:
        cls = self._classes.get((channel, needs))
        if cls is None:
            cls = self._classes[channel, needs] = _Class(channel, needs)
            for group in self._groups.values():
                if _covers(group.skills, needs):
                    cls.groups.append(group)
                    group.classes[channel].append(cls)
        return cls

    def _place(self, entry: _Entry, now: float) -> None:
        """File the conversation under the needs it still has at ``now``."""
        waiting = entry.waiting
        needs = frozenset((n.skill, n.level) for n in waiting.needs if _required(n, waiting, now))
        cls = self._class(waiting.channel, needs)
        if cls is not entry.cls:
            if entry.cls is not None:
                self._take(entry.cls, waiting.id)
            cls.queue.put(waiting.id, entry.key)
            for group in cls.groups:
                group.backlog += 1
            entry.cls = cls
            self._dirty.add(cls)
        self._schedule_relax(entry, now)

    def _schedule_relax(self, entry: _Entry, now: float) -> None:
        waiting = entry.waiting
        pending = [
            relaxes_at(waiting.waiting_since, n.relax_after_s)
            for n in waiting.needs
            if n.relax_after_s is not None and _required(n, waiting, now)
        ]
        if not pending:
            return
        at = max(min(pending), math.nextafter(now, math.inf))
        heapq.heappush(self._relax_timers, (at, next(self._seq), entry))

    def _advance(self, now: float) -> None:
        """Apply what time alone changes: agents done resting, needs relaxed, and (for
        least_occupied) idle agents' occupancy falling while they wait for work."""
        self._tick(now)
        if self._policy is Policy.LEAST_OCCUPIED and now - self._occupancy_read >= (
            OCCUPANCY_REFRESH_S
        ):
            self._occupancy_read = now
            for idle in self._agents.values():
                if idle.present and not idle.busy:
                    self._index(idle)
        agent_timers = self._agent_timers
        while agent_timers and agent_timers[0][0] <= now:
            at, agent_id = heapq.heappop(agent_timers)
            state = self._agents.get(agent_id)
            if state is not None and state.timer == at:
                state.timer = None
                self._index(state)
        relax_timers = self._relax_timers
        while relax_timers and relax_timers[0][0] <= now:
            _, _, entry = heapq.heappop(relax_timers)
            if self._entries.get(entry.waiting.id) is entry:
                self._place(entry, now)

    def _unqueue(self, entry: _Entry) -> None:
        conversation_id = entry.waiting.id
        del self._entries[conversation_id]
        if entry.cls is not None:
            self._take(entry.cls, conversation_id)
        order = self._order[entry.waiting.channel]
        del order[bisect_left(order, (entry.key, conversation_id))]

    @staticmethod
    def _take(cls: _Class, conversation_id: int) -> None:
        cls.queue.discard(conversation_id)
        for group in cls.groups:
            group.backlog -= 1

    def _forget(self, conversation_id: int) -> None:
        record = self._assigned.pop(conversation_id, None)
        if record is not None:
            state = self._agents.get(record[1])
            if state is not None:
                state.held[record[0].channel].discard(conversation_id)

    # -- choosing -------------------------------------------------------------------
    def _choose(self, cls: _Class, waiting: Waiting, now: float) -> int | None:
        """The agent to serve ``waiting`` (filed under ``cls``), or None if none is eligible."""
        channel = cls.channel
        sticky = None if waiting.sticky_agent is None else self._agents.get(waiting.sticky_agent)
        if (
            sticky is not None
            and sticky.agent.id not in waiting.declined_by
            and (waiting.sticky_until is None or now < waiting.sticky_until)
            and sticky.agent.id in sticky.group.free[channel]
            and _covers(sticky.agent.skills, cls.needs)
        ):
            return sticky.agent.id
        best: Ranked | None = None
        for group in cls.groups:
            free = group.free[channel]
            if not free:
                continue
            top = free.first_but(waiting.declined_by)
            if top is None:
                continue
            if self._spare:
                top = ((group.backlog, *top[0]), top[1])
            if best is None or top < best:
                best = top
        return None if best is None else best[1]

    def _assign(self, entry: _Entry, agent_id: int) -> Assignment:
        waiting = entry.waiting
        channel = waiting.channel
        self._unqueue(entry)
        state = self._agents[agent_id]
        state.agent.load[channel] = state.agent.load.get(channel, 0) + 1
        self._assigned[waiting.id] = (waiting, agent_id)
        state.held[channel].add(waiting.id)
        self._index(state, (channel,) if state.agent.slots is None else _CHANNELS)
        offer = self._offer_chats and channel == Channel.CHAT
        return Assignment(waiting.id, agent_id, channel, offer)
