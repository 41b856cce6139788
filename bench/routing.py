"""``python -m bench routing``: the routing core at scenario L's scale, in memory.

2,000 agents over 30 skill cells (6 languages x 5 products: 70 % of agents speak one
language, 30 % two; products on a chain of two, 15 % product generalists; chat 3, email
10, form 10), every agent busy, 10,000 conversations waiting. Then, alternately, an agent
frees one conversation's worth of capacity or a conversation arrives, and ``decide`` is
timed each time (the decision latency a server sees per event). Last, a supervisor's rule
change (every waiting conversation's product need made optional after 30 s) re-queues
all 10,000 conversations, and the time to re-evaluate them and decide is measured.
With ``--day``, scenario L's whole day also goes through the real router
(``routing/scenarios/l.json``, tier A, one replication) and its CPU time is reported.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

from bench.common import Report, log, percentile
from inbox.types import Channel, Presence
from routing.core import Agent, Router, SkillNeed, Waiting
from routing.sim_scenario import load_scenario
from routing.simulate import simulate_once

SCENARIO_L = Path(__file__).resolve().parents[1] / "routing" / "scenarios" / "l.json"

LANGUAGES = ("l1", "l2", "l3", "l4", "l5", "l6")
LANGUAGE_SHARES = (45, 20, 12, 10, 8, 5)
PRODUCTS = ("p1", "p2", "p3", "p4", "p5")
PRODUCT_SHARES = (35, 25, 20, 12, 8)
CHANNELS = (Channel.CHAT, Channel.EMAIL, Channel.FORM)
CHANNEL_SHARES = (50, 35, 15)
CAPACITY = {Channel.CHAT: 3, Channel.EMAIL: 10, Channel.FORM: 10}


def make_agent(agent_id: int, rng: random.Random) -> Agent:
    languages = {rng.choices(LANGUAGES, LANGUAGE_SHARES)[0]}
    if rng.random() < 0.3:
        languages.add(LANGUAGES[0] if LANGUAGES[0] not in languages else LANGUAGES[1])
    if rng.random() < 0.15:
        products = set(PRODUCTS)
    else:
        first = rng.choices(range(len(PRODUCTS)), PRODUCT_SHARES)[0]
        products = {PRODUCTS[first], PRODUCTS[(first + 1) % len(PRODUCTS)]}
    return Agent(
        agent_id, Presence.ONLINE, skills={s: 1 for s in languages | products},
        capacity=dict(CAPACITY), load=dict(CAPACITY), idle_since=0.0,
    )


def make_waiting(conversation_id: int, rng: random.Random, now: float) -> Waiting:
    return Waiting(
        conversation_id, rng.choices(CHANNELS, CHANNEL_SHARES)[0],
        (SkillNeed(rng.choices(LANGUAGES, LANGUAGE_SHARES)[0]),
         SkillNeed(rng.choices(PRODUCTS, PRODUCT_SHARES)[0])),
        priority=1, waiting_since=now - rng.uniform(0, 600),
    )


def measure(agents: int, waiting: int, events: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    router = Router()
    started = time.perf_counter()
    for agent_id in range(1, agents + 1):
        router.set_agent(make_agent(agent_id, rng))
    now = 1000.0
    for conversation_id in range(1, waiting + 1):
        router.enqueue(make_waiting(conversation_id, rng, now))
    assert router.decide(now) == [], "every agent starts full"
    setup_s = time.perf_counter() - started
    next_id = waiting + 1
    timings: list[float] = []
    assigned = 0
    for step in range(events):
        now += 0.01
        if step % 2:
            router.release(rng.randint(1, agents), rng.choices(CHANNELS, CHANNEL_SHARES)[0], now)
        else:
            router.enqueue(make_waiting(next_id, rng, now))
            next_id += 1
        tick = time.perf_counter()
        assigned += len(router.decide(now))
        timings.append(time.perf_counter() - tick)
    queue = router.waiting()
    tick = time.perf_counter()
    for item in queue:  # the rule change: products soft after 30 s
        needs = tuple(
            SkillNeed(n.skill, n.level, 30.0 if n.skill.startswith("p") else None)
            for n in item.needs
        )
        router.enqueue(Waiting(item.id, item.channel, needs, item.priority,
                               item.waiting_since, item.deadline))
    rule_assigned = len(router.decide(now))
    rule_change_s = time.perf_counter() - tick
    return {
        "agents": agents, "waiting": len(queue), "events": events,
        "setup_s": round(setup_s, 3),
        "decision_p50_us": round(percentile(timings, 50) * 1e6, 1),
        "decision_p99_us": round(percentile(timings, 99) * 1e6, 1),
        "decision_max_us": round(max(timings) * 1e6, 1),
        "assigned_during_events": assigned,
        "rule_change_reevaluate_ms": round(rule_change_s * 1e3, 1),
        "rule_change_assigned": rule_assigned,
    }


async def run(args: argparse.Namespace) -> Report:
    report = Report("routing", {"agents": args.agents, "waiting": args.waiting,
                                "events": args.events, "seed": args.seed})
    log(f"routing: {args.agents} agents, {args.waiting} waiting, {args.events} events")
    report.results["core"] = measure(args.agents, args.waiting, args.events, args.seed)
    if args.day:
        report.results["scenario_l_day"] = whole_day(args.seed)
    return report


def whole_day(seed: int) -> dict[str, Any]:
    """Scenario L through the real router: the simulator's CPU seconds and headline figures."""
    log("routing: scenario L, one simulated day")
    scenario = load_scenario(SCENARIO_L)
    figures, _, cpu_s = simulate_once(scenario, "guichet", seed)
    keys = ("chat_sl60", "all_sl60", "worst_cell_sl60", "email_within_sla", "all_asa_s",
            "duplicate_assignments", "never_assigned")
    return {"cpu_s": round(cpu_s, 2), "conversations": figures["conversations"],
            **{k: figures[k] for k in keys}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, default=2000, help="agents (default 2,000)")
    parser.add_argument("--waiting", type=int, default=10_000,
                        help="conversations waiting (default 10,000)")
    parser.add_argument("--events", type=int, default=20_000,
                        help="timed events, half releases, half arrivals (default 20,000)")
    parser.add_argument("--day", action=argparse.BooleanOptionalAction, default=True,
                        help="also simulate scenario L's whole day (default: yes)")
