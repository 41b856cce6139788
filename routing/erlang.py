"""Erlang C, and the pooled-queue bound a router is measured against.

Pure arithmetic on the standard library: no routing, no scenario files. With exponential
handle times of one common mean, a fully cross-trained team working one pooled queue
(M/M/c) waits no longer on average than any skill-restricted team under any router; for
chat alone, chat with preemptive priority over email and forms sees only the chat load.
A day whose load and staffing change is evaluated half-hour by half-hour, each as its own
steady state (the SIPP approximation), and the figures are weighted by arrivals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of M/M/c/c offered ``load`` erlangs.

    The recursion B(k) = a B(k-1) / (k + a B(k-1)) never forms a factorial or a power,
    so it stays accurate for thousands of servers.
    """
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits in M/M/c (1.0 when the queue is unstable)."""
    if load <= 0.0:
        return 0.0
    if servers <= 0 or load >= servers:
        return 1.0
    blocking = erlang_b(servers, load)
    return blocking / (1.0 - (load / servers) * (1.0 - blocking))


@dataclass(frozen=True)
class MMC:
    """An M/M/c queue: ``servers`` agents, arrivals per second, mean handle time."""

    servers: int
    arrival_rate: float  # per second
    handle_s: float

    @property
    def load(self) -> float:
        return self.arrival_rate * self.handle_s

    @property
    def stable(self) -> bool:
        return self.load < self.servers

    @property
    def p_wait(self) -> float:
        return erlang_c(self.servers, self.load)

    @property
    def _drain_rate(self) -> float:
        """c mu - lambda: the rate at which a waiting line empties."""
        return self.servers / self.handle_s - self.arrival_rate

    @property
    def asa_s(self) -> float:
        """Mean wait over all arrivals, seconds."""
        if not self.stable:
            return math.inf
        return self.p_wait / self._drain_rate

    def service_level(self, threshold_s: float) -> float:
        """P(wait <= threshold) = 1 - C exp(-(c mu - lambda) t)."""
        if not self.stable:
            return 0.0
        return 1.0 - self.p_wait * math.exp(-self._drain_rate * threshold_s)


def head_of_line(queue: MMC, first_rate: float, threshold_s: float) -> tuple[float, float]:
    """(ASA, service level) of a class served first but never interrupting work in hand.

    Under non-preemptive priority with one exponential handle time, a first-class arrival
    waits only when all agents are busy (probability: Erlang C of the whole load, 1 when
    overloaded), and then for the first-class line ahead of it to clear at the full
    completion rate c mu. Its mean wait C / (c mu - lambda_1) is Cobham's exact formula;
    the service level takes that wait as exponential, which matches the mean.
    """
    rate = queue.servers / queue.handle_s - first_rate
    if rate <= 0:
        return math.inf, 0.0
    p_wait = queue.p_wait if queue.stable else 1.0
    return p_wait / rate, 1.0 - p_wait * math.exp(-rate * threshold_s)


@dataclass(frozen=True)
class Period:
    """One stretch of the day, evaluated as a steady state."""

    per_hour: float  # all channels
    chat_per_hour: float
    agents: int


@dataclass(frozen=True)
class Bound:
    chat_sl: float  # chat with preemptive priority
    chat_asa_s: float
    chat_worst_sl: float
    all_sl: float  # every channel in one pooled queue
    all_asa_s: float
    all_worst_sl: float
    overloaded: tuple[int, ...]  # indexes of periods with load >= agents
    chat_np_sl: float  # chat first, but never interrupting email or forms (a reference)
    chat_np_asa_s: float


def day_bound(periods: Sequence[Period], *, handle_s: float, threshold_s: float) -> Bound:
    """Arrival-weighted SIPP figures over ``periods``.

    An overloaded period has no steady state: it counts as service level 0 and adds nothing
    to the pooled ASA (whose weights still include its arrivals), so the ASA is that of the
    rest of the day, as ROUTING.md quotes it; ``overloaded`` lists such periods.
    """
    chats = _Weighted()
    pooled = _Weighted()
    waiting_chats = _Weighted()  # non-preemptive reference
    overloaded = []
    for i, period in enumerate(periods):
        everyone = MMC(period.agents, period.per_hour / 3600.0, handle_s)
        chat = MMC(period.agents, period.chat_per_hour / 3600.0, handle_s)
        if not everyone.stable and period.per_hour > 0:
            overloaded.append(i)
        pooled.add(period.per_hour, everyone.asa_s, everyone.service_level(threshold_s))
        chats.add(period.chat_per_hour, chat.asa_s, chat.service_level(threshold_s))
        asa, sl = head_of_line(everyone, chat.arrival_rate, threshold_s)
        waiting_chats.add(period.chat_per_hour, asa, sl)
    return Bound(
        chat_sl=chats.sl(),
        chat_asa_s=chats.asa(),
        chat_worst_sl=chats.worst,
        all_sl=pooled.sl(),
        all_asa_s=pooled.asa(),
        all_worst_sl=pooled.worst,
        overloaded=tuple(overloaded),
        chat_np_sl=waiting_chats.sl(),
        chat_np_asa_s=waiting_chats.asa(),
    )


class _Weighted:
    """Arrival-weighted sums of ASA and service level over periods."""

    def __init__(self) -> None:
        self.weight = self.asa_sum = self.sl_sum = 0.0
        self.worst = 1.0

    def add(self, weight: float, asa_s: float, sl: float) -> None:
        if weight <= 0:
            return
        self.weight += weight
        self.sl_sum += weight * sl
        self.worst = min(self.worst, sl)
        if math.isfinite(asa_s):  # an overloaded period adds nothing to the ASA
            self.asa_sum += weight * asa_s

    def asa(self) -> float:
        return self.asa_sum / self.weight if self.weight else 0.0

    def sl(self) -> float:
        return self.sl_sum / self.weight if self.weight else 1.0
