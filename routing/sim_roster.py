"""Scenario L written out: its roster and its day, generated once from a seed.

    python -m routing.sim_roster l > routing/scenarios/l.json

ROUTING.md describes scenario L by rules (an hourly profile, square-root staffing, shares
of languages and products, absences by rate); a scenario file lists agents, shifts and
absences. This module turns the rules into the file, deterministically, so the file is
the scenario and a test checks that it is still this generator's output. It reads
nothing and writes only stdout.

How the rules become a roster:

* Staffing: ``ceil(a + sqrt(a))`` agents on the pooled load of each half-hour, met with
  the fewest 8.5-hour shifts (``routing.sim_staffing.cover``) on a repeating day: shifts
  starting after 15:30 end the next morning, and the same shifts of the day before appear
  as agents on duty from 00:00 to their end. Shifts of one length cannot follow the
  demand exactly, so agents above the demand of a half-hour are planned off-queue (an
  ``away`` with reason ``off-queue``, in blocks of at most two hours): agents on duty,
  shifts minus off-queue, equal ``ceil(a + sqrt(a))`` in every half-hour.
* Languages: 30 % of agents speak a second language, always ``l1``, the 45 % one. The
  share of agents speaking each other language is sized for its own share of the peak
  load with its own square-root margin (small languages get proportionally more); agents
  speaking only ``l1`` make up the rest.
* Products: on a closed chain of two (``p1 p2``, ..., ``p5 p1``), the first in proportion
  to product volume; 15 % of agents know every product.
* Languages are dealt in roster order and products in a shuffled order within each shift,
  each by smooth weighted round robin, so every shift has the shares and the two are
  independent.
* Unplanned absences: a Poisson(1) number per 8.5-hour shift (pro rata for the part
  inside the day), at uniform times, lasting Exp(10 min). 1 % of agents disconnect at a
  uniform time while on queue, and log back in ten minutes later. At 15:00 a supervisor
  moves 50 agents on duty from product 1 to product 4. All drawn here, from the seed, so
  every router and every replication sees the same roster and absences (the simulator's
  ``presence`` stream stays unused).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from routing.sim_staffing import cover, square_root_staffing

HALF_HOUR = 1800
DAY_HALVES = 48
SHIFT_HALVES = 17  # 8.5 hours
DAY_S = DAY_HALVES * HALF_HOUR
HANDLE_S = 480
DAILY = 100_000
PROFILE = (0.25, 0.2, 0.15, 0.15, 0.2, 0.35, 0.6, 0.95, 1.35, 1.6, 1.7, 1.65,
           1.55, 1.55, 1.6, 1.55, 1.45, 1.35, 1.2, 1.05, 0.9, 0.75, 0.55, 0.4)  # fmt: skip
CHANNELS = {"chat": 50, "email": 35, "form": 15}
LANGUAGES = {"l1": 45, "l2": 20, "l3": 12, "l4": 10, "l5": 8, "l6": 5}
PRODUCTS = {"p1": 35, "p2": 25, "p3": 20, "p4": 12, "p5": 8}
BILINGUAL = 0.30
GENERALISTS = 0.15
CAPACITY = {"chat": 3, "email": 10, "form": 10}
OFF_QUEUE_BLOCK = 4  # half-hours
ABSENCE_MEAN_S = 600.0
DISCONNECT_SHARE = 0.01
RECONNECT_S = 600  # a disconnected agent logs back in ten minutes later (as in scenario M)
MOVE_AT, MOVED = 15 * 3600, 50
SEED = 20_240_601


@dataclass
class Member:
    """One agent on the roster while it is being generated."""

    name: str
    start: int  # seconds since midnight
    end: int
    languages: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    off: list[tuple[int, int]] = field(default_factory=list)  # off-queue spans

    def on_shift(self, half: int) -> bool:
        return self.start <= half * HALF_HOUR < self.end


def hourly_rates() -> list[float]:
    """Arrivals per hour, hour by hour, adding up to ``DAILY`` (to the thousandth)."""
    total = sum(PROFILE)
    return [round(DAILY * share / total, 3) for share in PROFILE]


def demand() -> list[int]:
    """Agents to have on duty in each half-hour of the day."""
    return [square_root_staffing(rate, HANDLE_S) for rate in hourly_rates() for _ in (0, 1)]


def shifts() -> list[tuple[int, int]]:
    """(start, end) in seconds of every shift on duty during the day, by start then end."""
    starts = cover(demand(), SHIFT_HALVES)
    spans = []
    for half, count in enumerate(starts):
        start = half * HALF_HOUR
        end = start + SHIFT_HALVES * HALF_HOUR
        spans += [(start, end)] * count
        if end > DAY_S:  # the same shift of the day before, still on duty after midnight
            spans += [(0, end - DAY_S)] * count
    return sorted(spans)


def language_shares() -> dict[tuple[str, ...], float]:
    """Share of agents per set of languages spoken (the first is the agent's own)."""
    peak = max(hourly_rates()) / 3600.0 * HANDLE_S
    head = peak + math.sqrt(peak)
    speakers = {
        name: (peak * weight / 100 + math.sqrt(peak * weight / 100)) / head
        for name, weight in LANGUAGES.items()
        if name != "l1"
    }
    others = sum(speakers.values())
    shares: dict[tuple[str, ...], float] = {("l1",): 1.0 - others}
    for name, share in speakers.items():
        shares[(name,)] = share * (1 - BILINGUAL / others)
        shares[(name, "l1")] = share * BILINGUAL / others
    return shares


def product_shares() -> dict[tuple[str, ...], float]:
    names = list(PRODUCTS)
    total = sum(PRODUCTS.values())
    shares: dict[tuple[str, ...], float] = {
        (name, names[(i + 1) % len(names)]): (1 - GENERALISTS) * PRODUCTS[name] / total
        for i, name in enumerate(names)
    }
    shares[tuple(names)] = GENERALISTS
    return shares


def dealt(shares: Mapping[tuple[str, ...], float]) -> Iterator[tuple[str, ...]]:
    """Smooth weighted round robin: every stretch of the sequence is close to the shares."""
    credit = dict.fromkeys(shares, 0.0)
    while True:
        for key, share in shares.items():
            credit[key] += share
        chosen = max(credit, key=lambda key: credit[key])  # first of equals: dict order
        credit[chosen] -= 1.0
        yield chosen


def roster(rng: random.Random) -> list[Member]:
    members = [Member(f"a{i:04d}", start, end) for i, (start, end) in enumerate(shifts(), 1)]
    languages, products = dealt(language_shares()), dealt(product_shares())
    for member in members:
        member.languages = next(languages)
    by_shift: dict[tuple[int, int], list[Member]] = {}
    for member in members:
        by_shift.setdefault((member.start, member.end), []).append(member)
    for group in by_shift.values():
        for member in rng.sample(group, len(group)):
            member.products = next(products)
    _plan_off_queue(members)
    return members


def _plan_off_queue(members: Sequence[Member]) -> None:
    """Take the agents above each half-hour's demand off the queue, in turn through the
    roster; an agent stays off for up to ``OFF_QUEUE_BLOCK`` half-hours running."""
    needed = demand()
    last = -1  # roster index of the agent taken off last: the turn goes on after it
    off_since: dict[int, int] = {}  # roster index -> half-hour its block began
    for half in range(DAY_HALVES):
        on = [i for i, member in enumerate(members) if member.on_shift(half)]
        surplus = len(on) - needed[half]
        staying = [
            i
            for i in sorted(off_since)
            if members[i].on_shift(half) and half - off_since[i] < OFF_QUEUE_BLOCK
        ][:surplus]
        ended = sorted(set(off_since) - set(staying))
        for i in ended:
            members[i].off.append((off_since.pop(i) * HALF_HOUR, half * HALF_HOUR))
        turn = [i for i in on if i > last] + [i for i in on if i <= last]
        busy = set(off_since) | set(ended)  # a block just ended is not begun again at once
        fresh = [i for i in turn if i not in busy][: surplus - len(staying)]
        for i in fresh:
            off_since[i] = half
        if fresh:
            last = fresh[-1]
    for i, since in off_since.items():
        members[i].off.append((since * HALF_HOUR, DAY_S))


def absences(members: Sequence[Member], rng: random.Random) -> list[dict[str, Any]]:
    """Unplanned away periods: Poisson(1) per shift, pro rata inside the day, Exp(10 min)."""
    shift_s = SHIFT_HALVES * HALF_HOUR
    out = []
    for member in members:
        end = min(member.end, DAY_S)
        for _ in range(_poisson(rng, (end - member.start) / shift_s)):
            begin = member.start + rng.random() * (end - member.start)
            finish = min(begin + rng.expovariate(1.0 / ABSENCE_MEAN_S), end)
            if round(finish) > round(begin):
                out.append((round(begin), round(finish), member.name))
    return [
        {"agent": name, "from": clock_text(a), "to": clock_text(b), "reason": "unplanned"}
        for a, b, name in sorted(out)
    ]


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: multiply uniforms until the product falls below exp(-mean)."""
    floor, product, count = math.exp(-mean), rng.random(), 0
    while product > floor:
        product *= rng.random()
        count += 1
    return count


def disconnects(members: Sequence[Member], rng: random.Random) -> list[dict[str, Any]]:
    """1 % of agents drop out at a uniform time while on queue, holding what they hold,
    and log back in ``RECONNECT_S`` later."""
    chosen = rng.sample(list(members), round(DISCONNECT_SHARE * len(members)))
    out = []
    for member in chosen:
        end = min(member.end, DAY_S)
        while True:
            at = round(member.start + rng.random() * (end - member.start))
            if not any(a <= at < b for a, b in member.off):
                break
        out.append((at, member.name))
    return [
        {"agent": name, "at": clock_text(at), "back": clock_text(at + RECONNECT_S)}
        for at, name in sorted(out)
    ]


def moved(members: Sequence[Member], rng: random.Random) -> list[str]:
    """The agents the 15:00 change moves: on queue then, with products 1 and 2."""
    candidates = [
        m.name
        for m in members
        if m.products == ("p1", "p2")
        and m.start <= MOVE_AT < m.end
        and not any(a <= MOVE_AT < b for a, b in m.off)
    ]
    return sorted(rng.sample(candidates, MOVED))


def scenario_l(seed: int = SEED) -> dict[str, Any]:
    """The scenario document of ROUTING.md's scenario L."""
    rng = random.Random(f"guichet-roster/l/{seed}")
    members = roster(rng)
    away = [
        {"agent": m.name, "from": clock_text(a), "to": clock_text(b), "reason": "off-queue"}
        for m in members
        for a, b in m.off
    ]
    away += absences(members, rng)
    cuts = disconnects(members, rng)
    names = moved(members, rng)
    agents = [
        {
            "id": m.name,
            "skills": dict.fromkeys(sorted(m.languages + m.products), 1),
            "capacity": CAPACITY,
            "shift": {"start": clock_text(m.start), "end": clock_text(m.end)},
        }
        for m in members
    ]
    return {
        "name": "L",
        "description": DESCRIPTION,
        "tier": "A",
        "seed": 1,
        "day": {"start": "00:00", "end": "24:00"},
        "drain_s": 7200,
        "service_level_s": 60,
        "handle_mean_s": HANDLE_S,
        "arrivals": [
            {"from": clock_text(h * 3600), "to": clock_text((h + 1) * 3600), "per_hour": rate}
            for h, rate in enumerate(hourly_rates())
        ],
        "channels": CHANNELS,
        "needs": {"language": LANGUAGES, "product": PRODUCTS},
        "sla_s": {"email": 14400, "form": 7200},
        "vip": {"channel": "email", "share": 0.1, "sla_s": 3600},
        "agents": agents,
        "away": away,
        "disconnects": cuts,
        "supervisor": [
            {"at": clock_text(MOVE_AT), "action": "remove_skill", "agents": names, "skill": "p1"},
            {"at": clock_text(MOVE_AT), "action": "add_skill", "agents": names, "skill": "p4"},
        ],
        "router": ROUTER,
        "goals": GOALS,
    }


DESCRIPTION = (
    "ROUTING.md scenario L, large: 24 h, 100,000 conversations, each needing a language and "
    "a product; square-root staffing per half-hour met with 8.5-hour shifts (agents above "
    "the demand planned off-queue), unplanned absences, 1 % disconnects, 50 agents moved "
    "from product 1 to product 4 at 15:00. Router: least flexible agent first, chat "
    "interrupts email/form work, a product (never a language) becomes optional after 25 s "
    "of waiting. Generated by python -m routing.sim_roster l; do not edit by hand."
)
ROUTER = {
    "policy": "least_flexible",
    "chat_first": True,
    "chat_interrupts": True,
    "spare_scarce": True,
    "relax_s": dict.fromkeys(PRODUCTS, 25),
}
GOALS = {
    "chat_sl60": 0.97,
    "all_sl60": 0.95,
    "worst_cell_sl60": 0.85,
    "email_within_sla": 1.0,
    "cpu_s": 60,
}


def clock_text(t: float) -> str:
    """Seconds since midnight as "HH:MM", or "HH:MM:SS" when not on a whole minute."""
    whole = int(round(t))
    hours, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}"
    return f"{text}:{seconds:02d}" if seconds else text


def render(document: Mapping[str, Any]) -> str:
    """JSON with one top-level field per line and one list entry per line."""
    lines = ["{"]
    for i, (key, value) in enumerate(document.items()):
        comma = "," if i < len(document) - 1 else ""
        if isinstance(value, list) and value:
            lines.append(f"  {json.dumps(key)}: [")
            last = len(value) - 1
            lines += [f"    {json.dumps(v)}{',' if j < last else ''}" for j, v in enumerate(value)]
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


SCENARIOS = {"l": scenario_l}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m routing.sim_roster",
        description="Write a generated scenario file (roster, absences, day) to stdout.",
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    args = parser.parse_args(argv)
    sys.stdout.write(render(SCENARIOS[args.scenario]()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
