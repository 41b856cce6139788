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
* An agent is **eligible** for a conversation at ``now`` when it is online, not marked
  not-responding, has capacity left on the conversation's channel, and holds every skill
  the conversation still requires at ``now`` at the required level or above.
* ``decide(now)`` returns the assignments to make now. It is greedy and work-conserving:
  after it returns, no waiting conversation has an eligible agent with capacity left.

Urgency (who is served first) is: priority (urgent first); then, if ``chat_first``, chat
before email and forms; then chat by arrival time and email/forms by SLA deadline
(earliest first; a conversation without a deadline counts as arrival + a day); ties by
arrival, then id.

Choice among eligible agents follows ``Policy``; ties are broken by agent id so results
are reproducible. A returning customer's previous agent (``Waiting.sticky_agent``) is
preferred while ``now < sticky_until`` if that agent is eligible; after that, any agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from inbox.types import Channel, Presence

DEFAULT_DEADLINE_S = 24 * 3600.0


class Policy(StrEnum):
    LEAST_LOADED = "least_loaded"  # lowest load / capacity on that channel, then longest idle
    LONGEST_IDLE = "longest_idle"  # earliest idle_since (time the agent last freed work)
    LEAST_FLEXIBLE = "least_flexible"  # fewest skills, then least loaded


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
    sticky_until: float | None = None


@dataclass
class Agent:
    id: int
    presence: Presence = Presence.OFFLINE
    skills: Mapping[str, int] = field(default_factory=dict)
    capacity: Mapping[Channel, int] = field(default_factory=dict)  # missing channel: 0
    load: dict[Channel, int] = field(default_factory=dict)  # missing channel: 0
    idle_since: float = 0.0
    not_responding_until: float = 0.0


@dataclass(frozen=True)
class Assignment:
    conversation_id: int
    agent_id: int
    channel: Channel
    offer: bool  # True for chat when offers are on: the agent must accept in time


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
        offer_chats: bool = False,
        not_responding_s: float = 120.0,
    ) -> None:
        raise NotImplementedError

    # -- agents ---------------------------------------------------------------------
    def set_agent(self, agent: Agent) -> None:
        """Add an agent or replace what is known of it (presence, skills, capacity,
        load). Its held conversations are the caller's business: load is a count."""
        raise NotImplementedError

    def remove_agent(self, agent_id: int) -> None:
        raise NotImplementedError

    def set_presence(self, agent_id: int, presence: Presence, now: float) -> None:
        raise NotImplementedError

    def release(self, agent_id: int, channel: Channel, now: float) -> None:
        """The agent finished (or handed over) one conversation on ``channel``: its load
        drops by one and it has been idle since ``now`` if it now holds nothing."""
        raise NotImplementedError

    # -- conversations ------------------------------------------------------------
    def enqueue(self, waiting: Waiting) -> None:
        """Add a waiting conversation, or replace it (same id) after a rule change."""
        raise NotImplementedError

    def remove(self, conversation_id: int) -> None:
        """Take a conversation out of the queue (assigned by hand, resolved, ...)."""
        raise NotImplementedError

    def requeue(self, waiting: Waiting, from_agent: int | None, now: float) -> None:
        """Put assigned work back in the queue, keeping ``waiting.waiting_since``; if
        ``from_agent`` is given its load on that channel drops by one."""
        raise NotImplementedError

    def decline(self, assignment: Assignment, now: float) -> None:
        """An offer was refused or timed out: the conversation waits again (keeping its
        waiting time), the agent's load drops back, and the agent is not offered
        anything until ``now + not_responding_s``."""
        raise NotImplementedError

    # -- decisions ----------------------------------------------------------------
    def decide(self, now: float) -> list[Assignment]:
        """Every assignment to make now, in the order they were decided."""
        raise NotImplementedError

    # -- views --------------------------------------------------------------------
    def waiting(self) -> list[Waiting]:
        """The queue in urgency order as of the last ``decide`` (or insertion order)."""
        raise NotImplementedError

    def position(self, conversation_id: int, now: float) -> int | None:
        """1-based place of a waiting chat among the waiting chats, in urgency order."""
        raise NotImplementedError

    def agents(self) -> Iterable[Agent]:
        raise NotImplementedError
