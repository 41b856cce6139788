"""The simulator's naive router: round robin over the online eligible agents, load ignored.

``RoundRobin`` serves waiting conversations in arrival order, each to the next eligible
agent in turn (agent ids ascending, starting after the agent served last, wrapping
round); skills, presence and capacity are respected, load and idle time are not. It is
the baseline a router is scored against, so it must be naive in what it decides but not
slow in how: at scenario L's scale (2,000 agents, 100,000 conversations) a scan of every
agent and every waiting conversation per event would take hours.

So agents are grouped by identical skills, each group keeping per channel the sorted ids
of its members with room on that channel; waiting conversations are grouped into kinds
(channel and the needs they still have), each a queue in arrival order. ``decide`` looks
only at the kinds something could have changed for since it last ran (an agent freed, a
conversation added or relaxed): every other kind had no eligible agent then and still
has none. The decisions are the same as a scan of the whole queue would make.
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from inbox.types import Channel, Presence
from routing.core import Agent, Assignment, Waiting

Needs = frozenset[tuple[str, int]]  # (skill, minimum level) pairs still required
Place = tuple[float, int]  # (waiting_since, conversation id): arrival order


class _Fifo:
    """Conversations of one kind in arrival order; removal is lazy."""

    __slots__ = ("_current", "_heap")

    def __init__(self) -> None:
        self._heap: list[Place] = []
        self._current: dict[int, Place] = {}

    def put(self, place: Place) -> None:
        self._current[place[1]] = place
        heapq.heappush(self._heap, place)

    def discard(self, conversation_id: int) -> None:
        self._current.pop(conversation_id, None)
        if len(self._heap) > 2 * len(self._current) + 32:
            self._heap = list(self._current.values())
            heapq.heapify(self._heap)

    def first(self) -> Place | None:
        heap = self._heap
        while heap:
            place = heap[0]
            if self._current.get(place[1]) == place:
                return place
            heapq.heappop(heap)
        return None


@dataclass(eq=False)
class _Group:
    """Agents with identical skills; per channel, the ids of those with room, ascending."""

    skills: Mapping[str, int]
    free: dict[Channel, list[int]] = field(default_factory=lambda: {c: [] for c in Channel})
    kinds: dict[Channel, list[_Kind]] = field(default_factory=lambda: {c: [] for c in Channel})


@dataclass(eq=False)
class _Kind:
    """Waiting conversations on one channel that still need the same skills."""

    channel: Channel
    needs: Needs
    queue: _Fifo = field(default_factory=_Fifo)
    groups: list[_Group] = field(default_factory=list)  # groups whose skills cover needs


@dataclass(eq=False)
class _Entry:
    waiting: Waiting
    kind: _Kind


class RoundRobin:
    """The naive router: conversations in arrival order, each to the next eligible agent."""

    def __init__(self) -> None:
        self._agents: dict[int, Agent] = {}
        self._group_of: dict[int, _Group] = {}
        self._groups: dict[Needs, _Group] = {}
        self._kinds: dict[tuple[Channel, Needs], _Kind] = {}
        self._queue: dict[int, _Entry] = {}
        self._dirty: set[_Kind] = set()  # kinds that may have gained an eligible agent
        self._last: int | None = None  # the agent served last: the turn starts after it
        self._now = -math.inf
        self._relax_timers: list[tuple[float, int, _Entry]] = []
        self._rest_timers: list[tuple[float, int]] = []  # (not_responding_until, agent)
        self._seq = itertools.count()

    # -- what happened -------------------------------------------------------------------
    def set_agent(self, agent: Agent) -> None:
        agent = replace(agent, load=dict(agent.load))
        old, group = self._group_of.get(agent.id), self._group(agent.skills)
        if old is not None and old is not group:
            for free in old.free.values():
                _remove(free, agent.id)
        self._agents[agent.id] = agent
        self._group_of[agent.id] = group
        self._refresh(agent)

    def set_presence(self, agent_id: int, presence: Presence, now: float) -> None:
        self._tick(now)
        agent = self._agents[agent_id]
        agent.presence = presence
        self._refresh(agent)

    def release(self, agent_id: int, channel: Channel, now: float) -> None:
        self._tick(now)
        agent = self._agents[agent_id]
        agent.load[channel] = max(0, agent.load.get(channel, 0) - 1)
        if not any(agent.load.values()):
            agent.idle_since = now
        self._refresh(agent)

    def enqueue(self, waiting: Waiting) -> None:
        old = self._queue.pop(waiting.id, None)
        if old is not None:
            old.kind.queue.discard(waiting.id)
        self._file(waiting, None, self._now)

    def requeue(self, waiting: Waiting, from_agent: int | None, now: float) -> None:
        self._tick(now)
        self.enqueue(waiting)
        if from_agent is not None:
            agent = self._agents[from_agent]
            agent.load[waiting.channel] = max(0, agent.load.get(waiting.channel, 0) - 1)
            self._refresh(agent)

    # -- deciding --------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        """The baseline has no rules to relax: nothing changes with time alone."""
        return None

    def decide(self, now: float) -> list[Assignment]:
        self._tick(now)
        self._advance(now)
        ready: list[tuple[Place, _Kind]] = []
        for kind in self._dirty:
            head = kind.queue.first()
            if head is not None:
                ready.append((head, kind))
        self._dirty.clear()
        heapq.heapify(ready)
        decided = []
        while ready:
            (_, conversation_id), kind = heapq.heappop(ready)
            agent_id = self._next_in_turn(kind)
            if agent_id is None:
                continue  # no eligible agent has room: serving others only takes agents away
            decided.append(self._assign(self._queue.pop(conversation_id), agent_id))
            head = kind.queue.first()
            if head is not None:
                heapq.heappush(ready, (head, kind))
        return decided

    def _next_in_turn(self, kind: _Kind) -> int | None:
        """The first agent with room and the skills, in id order after the one served last."""
        ahead: int | None = None  # the first after the last served
        behind: int | None = None  # the first from the start, if none is after
        for group in kind.groups:
            free = group.free[kind.channel]
            if not free:
                continue
            index = 0 if self._last is None else bisect_right(free, self._last)
            if index < len(free):
                if ahead is None or free[index] < ahead:
                    ahead = free[index]
            elif behind is None or free[0] < behind:
                behind = free[0]
        return ahead if ahead is not None else behind

    def _assign(self, entry: _Entry, agent_id: int) -> Assignment:
        waiting = entry.waiting
        entry.kind.queue.discard(waiting.id)
        agent = self._agents[agent_id]
        agent.load[waiting.channel] = agent.load.get(waiting.channel, 0) + 1
        self._last = agent_id
        self._refresh(agent)
        return Assignment(waiting.id, agent_id, waiting.channel, offer=False)

    # -- bookkeeping -----------------------------------------------------------------------
    def _tick(self, now: float) -> None:
        self._now = max(self._now, now)

    def _refresh(self, agent: Agent) -> None:
        """Bring the agent's place in its group's lists of agents with room up to date."""
        group = self._group_of[agent.id]
        resting = agent.not_responding_until > self._now
        online = agent.presence is Presence.ONLINE and not resting
        total = sum(agent.load.values())
        has_slot = agent.slots is None or total < agent.slots
        for channel, free in group.free.items():
            room = (
                has_slot and online and agent.load.get(channel, 0) < agent.capacity.get(channel, 0)
            )
            index = bisect_left(free, agent.id)
            listed = index < len(free) and free[index] == agent.id
            if room and not listed:
                free.insert(index, agent.id)
                self._dirty.update(group.kinds[channel])
            elif listed and not room:
                del free[index]
        if resting and agent.presence is Presence.ONLINE:
            heapq.heappush(self._rest_timers, (agent.not_responding_until, agent.id))

    def _group(self, skills: Mapping[str, int]) -> _Group:
        key = frozenset(skills.items())
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(dict(skills))
            for kind in self._kinds.values():
                if _covers(group.skills, kind.needs):
                    kind.groups.append(group)
                    group.kinds[kind.channel].append(kind)
        return group

    def _kind(self, channel: Channel, needs: Needs) -> _Kind:
        kind = self._kinds.get((channel, needs))
        if kind is None:
            kind = self._kinds[channel, needs] = _Kind(channel, needs)
            for group in self._groups.values():
                if _covers(group.skills, needs):
                    kind.groups.append(group)
                    group.kinds[channel].append(kind)
        return kind

    def _file(self, waiting: Waiting, entry: _Entry | None, now: float) -> None:
        """Queue ``waiting`` under the needs it still has at ``now``; wake when one relaxes."""
        kind = self._kind(waiting.channel, needs_now(waiting, now))
        if entry is None or entry.kind is not kind:
            if entry is not None:
                entry.kind.queue.discard(waiting.id)
            entry = _Entry(waiting, kind)
            self._queue[waiting.id] = entry
            kind.queue.put((waiting.waiting_since, waiting.id))
            self._dirty.add(kind)
        pending = [
            waiting.waiting_since + need.relax_after_s
            for need in waiting.needs
            if need.relax_after_s is not None and now - waiting.waiting_since < need.relax_after_s
        ]
        if pending:
            # Wake a little early and let needs_now decide (rounding, as in routing.core).
            at = min(pending) - 1e-9 * max(1.0, abs(min(pending)))
            at = at if at > now else math.nextafter(now, math.inf)
            heapq.heappush(self._relax_timers, (at, next(self._seq), entry))

    def _advance(self, now: float) -> None:
        """Apply what time alone changes: needs relaxed, agents done resting."""
        timers = self._relax_timers
        while timers and timers[0][0] <= now:
            _, _, entry = heapq.heappop(timers)
            if self._queue.get(entry.waiting.id) is entry:
                self._file(entry.waiting, entry, now)
        rests = self._rest_timers
        while rests and rests[0][0] <= now:
            _, agent_id = heapq.heappop(rests)
            self._refresh(self._agents[agent_id])


def needs_now(waiting: Waiting, now: float) -> Needs:
    """(skill, level) pairs the conversation still requires at ``now``."""
    waited = now - waiting.waiting_since
    return frozenset(
        (need.skill, need.level)
        for need in waiting.needs
        if need.relax_after_s is None or waited < need.relax_after_s
    )


def _covers(skills: Mapping[str, int], needs: Needs) -> bool:
    return all(skills.get(skill, 0) >= level for skill, level in needs)


def _remove(ids: list[int], member: int) -> None:
    index = bisect_left(ids, member)
    if index < len(ids) and ids[index] == member:
        del ids[index]
