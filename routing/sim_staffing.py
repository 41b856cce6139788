"""Staffing for a generated roster: agents needed per half-hour, and the shifts that cover them.

ROUTING.md's rule is square-root staffing on the pooled load: with ``a`` the offered load
of a half-hour in erlangs (arrivals per second times the mean handle time), ``ceil(a +
sqrt(a))`` agents on duty. Shifts have one length and start on any half-hour of a day
that repeats, so a shift starting late in the evening ends the next morning: the agents
on duty at 01:00 started yesterday evening. ``cover`` finds the fewest shifts whose
on-duty count reaches the demand in every half-hour, exactly.

Pure arithmetic on the standard library: no scenario files, no random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def square_root_staffing(per_hour: float, handle_s: float, beta: float = 1.0) -> int:
    """``ceil(a + beta sqrt(a))`` agents for ``per_hour`` arrivals of ``handle_s`` mean."""
    load = per_hour / 3600.0 * handle_s
    return math.ceil(load + beta * math.sqrt(load))


def on_duty(starts: Sequence[int], length: int) -> list[int]:
    """Agents on duty per slot of a repeating day, ``starts[k]`` shifts starting at slot k,
    each lasting ``length`` slots."""
    slots = len(starts)
    return [sum(starts[(t - j) % slots] for j in range(length)) for t in range(slots)]


def cover(demand: Sequence[int], length: int) -> list[int]:
    """Shifts to start in each slot of a repeating day: as few as possible in all, with at
    least ``demand[t]`` on duty in every slot t.

    With the total T fixed, the constraints are differences of the running sums S_k
    (shifts starting before slot k), so a shortest-path check (Bellman-Ford) decides
    whether T shifts can do it and yields the starts; the least such T is found by
    bisection, since one more shift never hurts.
    """
    slots = len(demand)
    if not 0 < length <= slots or min(demand, default=0) < 0:
        raise ValueError("need 0 < length <= slots and no negative demand")
    low = max(max(demand, default=0), math.ceil(sum(demand) / length))
    high = sum(demand)  # every slot's demand met by shifts starting there
    best = _starts(demand, length, high)
    assert best is not None
    while low < high:
        middle = (low + high) // 2
        found = _starts(demand, length, middle)
        if found is None:
            low = middle + 1
        else:
            best, high = found, middle
    return best


def _starts(demand: Sequence[int], length: int, total: int) -> list[int] | None:
    """Starts per slot adding up to ``total`` and meeting the demand, or None if none do."""
    slots = len(demand)
    # An edge (u, v, w) says S_v <= S_u + w; nodes are S_0 .. S_slots.
    edges = [(k + 1, k, 0) for k in range(slots)]  # running sums never fall
    for t, needed in enumerate(demand):
        if t >= length - 1:  # on duty at t: S_{t+1} - S_{t+1-length} >= needed
            edges.append((t + 1, t + 1 - length, -needed))
        else:  # the shifts that wrap past midnight count as well: S_{t+1} + total - S_j
            edges.append((t + 1, t + 1 + slots - length, total - needed))
    edges += [(0, slots, total), (slots, 0, -total)]  # S_slots - S_0 == total
    distance = [0] * (slots + 1)
    for _ in range(slots + 2):
        changed = False
        for u, v, w in edges:
            if distance[u] + w < distance[v]:
                distance[v] = distance[u] + w
                changed = True
        if not changed:
            sums = [d - distance[0] for d in distance]
            return [sums[k + 1] - sums[k] for k in range(slots)]
    return None  # a negative cycle: the constraints contradict each other
