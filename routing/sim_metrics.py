"""What a simulated day is measured by: the ledger the simulator writes, and its summary.

The simulator records facts (arrivals, assignments, busy and online spans, queue
changes) in a ``Ledger``; ``summarize`` turns them into the figures of ROUTING.md. Nothing
here knows about routers or event queues.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from inbox.types import Channel
from routing.sim_scenario import HALF_HOUR_S, Scenario

Span = tuple[float, float]
# A skill cell needs at least this many arrivals over the day to count in worst_cell_sl60:
# a cell of a handful of conversations would make the figure a matter of chance.
MIN_CELL_ARRIVALS = 30


@dataclass
class Conversation:
    """One simulated conversation and what happened to it."""

    id: int
    arrival: float
    channel: Channel
    skills: tuple[str, ...]  # one per dimension of the scenario's needs: its skill cell
    vip: bool
    handle_s: float
    deadline: float | None  # first-response SLA deadline (None for chat)
    first_assigned: float | None = None
    requeued_at: float | None = None
    reoffer_s: list[float] = field(default_factory=list)
    completed: float | None = None

    def fresh(self) -> Conversation:
        """The same conversation, before anything happened to it."""
        return Conversation(
            self.id, self.arrival, self.channel, self.skills, self.vip, self.handle_s, self.deadline
        )

    @property
    def wait_s(self) -> float | None:
        return None if self.first_assigned is None else self.first_assigned - self.arrival


@dataclass
class AgentTime:
    shift: Span
    busy: list[Span] = field(default_factory=list)
    online: list[Span] = field(default_factory=list)


class Ledger:
    """Facts of one simulated day, appended as the simulation runs."""

    def __init__(self, scenario: Scenario) -> None:
        self.start = scenario.day_start
        self.bins = len(scenario.half_hours())
        self.conversations: list[Conversation] = []
        self.agents: dict[int, AgentTime] = {}
        self.duplicates = 0
        self.still_waiting = 0
        self._queue = {channel: 0 for channel in Channel}
        self._queue_area = {channel: [0.0] * self.bins for channel in Channel}
        self._last = scenario.day_start

    def queue_change(self, now: float, channel: Channel, delta: int) -> None:
        self._advance(now)
        self._queue[channel] += delta

    def _advance(self, now: float) -> None:
        """Add queue length x time since the last change to each half-hour it covers."""
        t = self._last
        while t < now:
            index = int((t - self.start) // HALF_HOUR_S)
            step_end = min(now, self.start + (index + 1) * HALF_HOUR_S)
            if 0 <= index < self.bins:
                for channel, length in self._queue.items():
                    self._queue_area[channel][index] += length * (step_end - t)
            t = step_end
        self._last = max(self._last, now)

    def queue_means(self, channel: Channel) -> list[float]:
        return [area / HALF_HOUR_S for area in self._queue_area[channel]]


@dataclass(frozen=True)
class Metrics:
    chat_sl60: float
    chat_asa_s: float
    email_within_sla: float
    form_within_sla: float
    all_asa_s: float
    occupancy_cv: float
    duplicate_assignments: int
    never_assigned: int
    chat_sl30: float
    chat_p90_wait_s: float
    vip_within_sla: float
    email_p95_first_response_s: float
    form_p95_first_response_s: float
    reoffer_chat_max_s: float
    reoffer_email_max_s: float
    occupancy_mean: float
    conversations: int
    all_sl60: float
    worst_cell_sl60: float


def summarize(ledger: Ledger, scenario: Scenario) -> Metrics:
    convs = ledger.conversations
    chats = [c for c in convs if c.channel is Channel.CHAT]
    chat_waits = _waits(chats)
    answered = [w for w in (c.wait_s for c in convs) if w is not None]
    reoffers = {ch: [s for c in convs if c.channel is ch for s in c.reoffer_s] for ch in Channel}
    occupancy = _occupancy(ledger)
    return Metrics(
        chat_sl60=_within(chats, scenario.service_level_s),
        chat_asa_s=_mean(chat_waits),
        email_within_sla=_on_time([c for c in convs if c.channel is Channel.EMAIL]),
        form_within_sla=_on_time([c for c in convs if c.channel is Channel.FORM]),
        all_asa_s=_mean(answered),
        occupancy_cv=max((cv for _, cv in occupancy), default=0.0),
        duplicate_assignments=ledger.duplicates,
        never_assigned=ledger.still_waiting,
        chat_sl30=_within(chats, 30.0),
        chat_p90_wait_s=_quantile(chat_waits, 0.9),
        vip_within_sla=_on_time([c for c in convs if c.vip]),
        email_p95_first_response_s=_quantile(_waits_of(convs, Channel.EMAIL), 0.95),
        form_p95_first_response_s=_quantile(_waits_of(convs, Channel.FORM), 0.95),
        reoffer_chat_max_s=max(reoffers[Channel.CHAT], default=0.0),
        reoffer_email_max_s=max(reoffers[Channel.EMAIL], default=0.0),
        occupancy_mean=_mean([mean for mean, _ in occupancy]),
        conversations=len(convs),
        all_sl60=_within(convs, scenario.service_level_s),
        worst_cell_sl60=min(
            cell_service_levels(convs, scenario.service_level_s).values(), default=1.0
        ),
    )


def cell_service_levels(
    convs: list[Conversation], threshold_s: float, min_arrivals: int = MIN_CELL_ARRIVALS
) -> dict[tuple[str, ...], float]:
    """Service level of each skill cell (the combination of skills needed) over all its
    arrivals, every channel alike, for the cells with at least ``min_arrivals``."""
    cells: dict[tuple[str, ...], list[Conversation]] = {}
    for c in convs:
        cells.setdefault(c.skills, []).append(c)
    return {
        cell: _within(members, threshold_s)
        for cell, members in cells.items()
        if len(members) >= min_arrivals
    }


def series(ledger: Ledger, scenario: Scenario) -> dict[str, list[float]]:
    """Per half-hour of the day: service level by arrival time and mean queue, per channel.

    Chat's service level is the share answered within the threshold; email's and form's
    the share first answered within their SLA. A half-hour without arrivals counts as 1.
    """
    out: dict[str, list[float]] = {}
    for channel in Channel:
        hits = [0] * ledger.bins
        seen = [0] * ledger.bins
        for c in ledger.conversations:
            if c.channel is channel:
                index = min(int((c.arrival - ledger.start) // HALF_HOUR_S), ledger.bins - 1)
                seen[index] += 1
                hits[index] += _hit(c, scenario.service_level_s)
        out[f"{channel.value}_arrivals"] = [float(n) for n in seen]
        out[f"{channel.value}_sl"] = [h / n if n else 1.0 for h, n in zip(hits, seen, strict=True)]
        out[f"{channel.value}_queue"] = ledger.queue_means(channel)
    return out


def window_service_level(ledger: Ledger, threshold_s: float, start: float, end: float) -> float:
    """Chat service level over the chats that arrived in [start, end)."""
    chats = [
        c for c in ledger.conversations if c.channel is Channel.CHAT and start <= c.arrival < end
    ]
    return _within(chats, threshold_s)


def _hit(c: Conversation, threshold_s: float) -> bool:
    if c.first_assigned is None:
        return False
    if c.deadline is None:
        return c.first_assigned - c.arrival <= threshold_s
    return c.first_assigned <= c.deadline


def _within(convs: list[Conversation], threshold_s: float) -> float:
    """Share answered within the threshold over all arrivals (never answered: a miss)."""
    if not convs:
        return 1.0
    hits = sum(1 for c in convs if c.wait_s is not None and c.wait_s <= threshold_s)
    return hits / len(convs)


def _on_time(convs: list[Conversation]) -> float:
    if not convs:
        return 1.0
    hits = sum(
        1
        for c in convs
        if c.first_assigned is not None
        and c.deadline is not None
        and c.first_assigned <= c.deadline
    )
    return hits / len(convs)


def _waits(convs: list[Conversation]) -> list[float]:
    return [w for w in (c.wait_s for c in convs) if w is not None]


def _waits_of(convs: list[Conversation], channel: Channel) -> list[float]:
    return _waits([c for c in convs if c.channel is channel])


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank rule (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _occupancy(ledger: Ledger) -> list[tuple[float, float]]:
    """(mean occupancy, coefficient of variation) per shift, for shifts of two agents or more.

    An agent's occupancy is its busy time within its shift over the time within its shift
    that it was online or busy (a break or a disconnect is neither), so planned absences do
    not read as unfairness.
    """
    by_shift: dict[Span, list[float]] = {}
    for agent in ledger.agents.values():
        lo, hi = agent.shift
        busy = covered(agent.busy, lo, hi)
        present = covered(agent.busy + agent.online, lo, hi)
        if present > 0:
            by_shift.setdefault(agent.shift, []).append(busy / present)
    out = []
    for values in by_shift.values():
        if len(values) >= 2:
            mean = statistics.fmean(values)
            out.append((mean, statistics.pstdev(values) / mean if mean > 0 else 0.0))
    return out


def covered(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Length of [lo, hi] covered by the union of spans."""
    total, reach = 0.0, lo
    for a, b in sorted(spans):
        a, b = max(a, reach), min(b, hi)
        if b > a:
            total += b - a
            reach = b
    return total
