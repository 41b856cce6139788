"""Scenario L: the file and the generator that wrote it, its staffing, a short L day through
the real router, the skill-cell figure on a hand-made ledger, the ``needs`` format, and
the baseline's round robin against a plain scan of the whole queue."""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.types import Channel, Presence
from routing.core import Agent, Assignment, Policy, SkillNeed, Waiting
from routing.sim_baseline import RoundRobin
from routing.sim_day import draw_day
from routing.sim_fields import clock
from routing.sim_metrics import (
    MIN_CELL_ARRIVALS,
    Conversation,
    Ledger,
    cell_service_levels,
    summarize,
)
from routing.sim_report import arrival_rates, bound_of, check_goals, on_duty
from routing.sim_roster import main as roster_main
from routing.sim_roster import render, scenario_l
from routing.sim_scenario import ChangeSkill, Scenario, ScenarioError, load_scenario, parse_scenario
from routing.sim_staffing import cover
from routing.sim_staffing import on_duty as covered_by
from routing.simulate import simulate_once

SCENARIOS = Path(__file__).resolve().parents[2] / "routing" / "scenarios"
L_FILE, S_FILE = SCENARIOS / "l.json", SCENARIOS / "s.json"
LANGUAGES = ("l1", "l2", "l3", "l4", "l5", "l6")
PRODUCTS = ("p1", "p2", "p3", "p4", "p5")
SHIFT_S = 8.5 * 3600


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(L_FILE)


def l_document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(L_FILE.read_text())
    return data


# -- the file ---------------------------------------------------------------------------------
def test_l_file_is_scenario_l(scenario: Scenario) -> None:
    assert (scenario.name, scenario.tier) == ("L", "A")
    assert (scenario.day_start, scenario.day_end) == (0.0, 24 * 3600.0)
    rates = arrival_rates(scenario)
    assert sum(rates) / 2 == pytest.approx(100_000, abs=0.1)
    assert max(rates) == pytest.approx(7375, abs=1)
    profile = (0.25, 0.2, 0.15, 0.15, 0.2, 0.35, 0.6, 0.95, 1.35, 1.6, 1.7, 1.65,
               1.55, 1.55, 1.6, 1.55, 1.45, 1.35, 1.2, 1.05, 0.9, 0.75, 0.55, 0.4)  # fmt: skip
    assert [p.per_hour / max(rates) for p in scenario.arrivals] == pytest.approx(
        [share / 1.7 for share in profile], abs=1e-6
    )
    total = sum(scenario.channels.values())
    assert {ch.value: w / total for ch, w in scenario.channels.items()} == pytest.approx(
        {"chat": 0.5, "email": 0.35, "form": 0.15}
    )
    assert [(n.name, dict(n.weights)) for n in scenario.needs] == [
        ("language", dict(zip(LANGUAGES, (45, 20, 12, 10, 8, 5), strict=True))),
        ("product", dict(zip(PRODUCTS, (35, 25, 20, 12, 8), strict=True))),
    ]


def test_l_roster_has_the_described_skills(scenario: Scenario) -> None:
    agents = scenario.agents
    assert 1900 <= len(agents) <= 2100
    assert all(a.capacity == {Channel.CHAT: 3, Channel.EMAIL: 10, Channel.FORM: 10} for a in agents)
    assert all(set(a.skills.values()) == {1} for a in agents)
    languages = [sorted(s for s in a.skills if s in LANGUAGES) for a in agents]
    bilingual = [spoken for spoken in languages if len(spoken) == 2]
    assert all(1 <= len(spoken) <= 2 for spoken in languages)
    assert len(bilingual) / len(agents) == pytest.approx(0.30, abs=0.005)
    assert all(spoken[0] == "l1" for spoken in bilingual)
    products = [sorted(s for s in a.skills if s in PRODUCTS) for a in agents]
    generalists = sum(len(known) == 5 for known in products)
    assert generalists / len(agents) == pytest.approx(0.15, abs=0.005)
    chain = {tuple(sorted((PRODUCTS[i], PRODUCTS[(i + 1) % 5]))) for i in range(5)}
    assert all(tuple(known) in chain for known in products if len(known) != 5)
    # Every language has speakers on duty all day.
    for half in scenario.half_hours():
        on = [a for a in agents if a.shift_start <= half < a.shift_end]
        assert {s for a in on for s in a.skills} >= set(LANGUAGES)


def test_l_absences_disconnects_and_the_15h_change(scenario: Scenario) -> None:
    unplanned = [a for a in scenario.away if a.reason == "unplanned"]
    shift_time = sum(min(a.shift_end, scenario.day_end) - a.shift_start for a in scenario.agents)
    expected = 600 / SHIFT_S  # Poisson(1) per 8.5-hour shift, Exp(10 min) each
    assert sum(a.end - a.start for a in unplanned) / shift_time == pytest.approx(
        expected, abs=0.003
    )
    assert len(scenario.disconnects) == round(0.01 * len(scenario.agents))
    assert all(cut.back is not None and cut.back - cut.at == 600 for cut in scenario.disconnects)
    remove, add = scenario.supervisor
    assert isinstance(remove, ChangeSkill) and isinstance(add, ChangeSkill)
    assert (remove.at, remove.skill, remove.level) == (15 * 3600, "p1", 0)
    assert (add.at, add.skill, add.level) == (15 * 3600, "p4", 1)
    assert remove.agents == add.agents and len(set(add.agents)) == 50
    by_name = {a.name: a for a in scenario.agents}
    for name in add.agents:
        agent = by_name[name]
        assert "p1" in agent.skills and "p4" not in agent.skills
        assert agent.shift_start <= 15 * 3600 < agent.shift_end
    router = scenario.router
    assert router.chat_interrupts and router.policy is Policy.LEAST_FLEXIBLE
    assert set(router.relax_s) == set(PRODUCTS)  # product soft, language hard
    assert all(20 <= s <= 30 for s in router.relax_s.values())


def test_generator_reproduces_l_file(capsys: pytest.CaptureFixture[str]) -> None:
    text = L_FILE.read_text()
    assert render(scenario_l()) == text
    assert roster_main(["l"]) == 0
    assert capsys.readouterr().out == text


# -- staffing ---------------------------------------------------------------------------------
def test_planned_staffing_is_square_root_staffing(scenario: Scenario) -> None:
    """Shifts minus planned off-queue time: ceil(a + sqrt(a)) in every half-hour."""
    planned = replace(
        scenario, away=tuple(a for a in scenario.away if a.reason == "off-queue"), disconnects=()
    )
    loads = [rate / 3600 * scenario.handle_mean_s for rate in arrival_rates(scenario)]
    wanted = [math.ceil(a + math.sqrt(a)) for a in loads]
    assert on_duty(planned) == pytest.approx(wanted, abs=1e-9)
    assert max(wanted) == 1015
    # Shifts of 8.5 h from a half-hour; those on duty at midnight are cut in two: the end
    # of the day before's shift (from 00:00) and the start of the evening's.
    ends_at_dawn = sorted(
        a.shift_end for a in scenario.agents if a.shift_end - a.shift_start < SHIFT_S
    )
    starts_at_dusk = sorted(
        a.shift_end - scenario.day_end for a in scenario.agents if a.shift_end > scenario.day_end
    )
    assert ends_at_dawn == starts_at_dusk
    assert all(a.shift_start % 1800 == 0 for a in scenario.agents)
    assert all(
        a.shift_end - a.shift_start == SHIFT_S
        for a in scenario.agents
        if a.shift_start > 0 or a.shift_end == SHIFT_S
    )
    by_name = {a.name: a for a in scenario.agents}
    blocks: dict[str, list[tuple[float, float]]] = {}
    for off in planned.away:
        agent = by_name[off.agent]
        assert agent.shift_start <= off.start < off.end <= min(agent.shift_end, 24 * 3600)
        blocks.setdefault(off.agent, []).append((off.start, off.end))
    for spans in blocks.values():  # off-queue blocks of at most two hours, never back to back
        spans.sort()
        assert all(end - start <= 2 * 3600 for start, end in spans)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=6, max_size=6), st.integers(1, 4))
def test_cover_finds_the_fewest_shifts(demand: list[int], length: int) -> None:
    starts = cover(demand, length)
    assert all(n >= 0 for n in starts)
    assert all(have >= need for have, need in zip(covered_by(starts, length), demand, strict=True))
    # Brute force: no start needs more shifts than the largest demand.
    top = max(demand)
    fewest = min(
        sum(option)
        for option in itertools.product(range(top + 1), repeat=len(demand))
        if all(h >= n for h, n in zip(covered_by(option, length), demand, strict=True))
    )
    assert sum(starts) == fewest


# -- a short L day through the real router ---------------------------------------------------
def short_l_day() -> Scenario:
    """L's agents on duty 14:30-15:30 (a tenth of them), L's arrivals scaled down tenfold,
    with their absences in that hour, the 15:00 change, and a disconnect at 15:10."""
    data = l_document()
    start, end = clock("14:30"), clock("15:30")
    on = [
        a
        for a in data["agents"]
        if clock(a["shift"]["start"]) <= start and clock(a["shift"]["end"]) >= end
    ]
    kept = on[::10]
    names = {a["id"] for a in kept}
    for agent in kept:
        agent["shift"] = {"start": "14:30", "end": "15:30"}
    data.update(
        day={"start": "14:30", "end": "15:30"},
        arrivals=[
            {"from": "14:30", "to": "15:00", "per_hour": data["arrivals"][14]["per_hour"] / 10},
            {"from": "15:00", "to": "15:30", "per_hour": data["arrivals"][15]["per_hour"] / 10},
        ],
        agents=kept,
        away=[
            a
            for a in data["away"]
            if a["agent"] in names and start <= clock(a["from"]) and clock(a["to"]) <= end
        ],
        disconnects=[{"agent": kept[0]["id"], "at": "15:10", "back": "15:20"}],
        supervisor=[
            dict(change, agents=[n for n in change["agents"] if n in names])
            for change in data["supervisor"]
        ],
        drain_s=3600,
        goals={},
    )
    return parse_scenario(data)


def test_short_l_day_assigns_everything_exactly_once() -> None:
    scenario = short_l_day()
    assert 80 <= len(scenario.agents) <= 110
    for name in ("guichet", "baseline"):
        figures, _, _ = simulate_once(scenario, name, 1)
        assert 600 <= figures["conversations"] <= 800
        assert figures["duplicate_assignments"] == 0
        assert figures["never_assigned"] == 0
        assert 0.0 < figures["worst_cell_sl60"] <= 1.0


# -- the skill-cell figure --------------------------------------------------------------------
def _conversation(number: int, cell: tuple[str, ...], wait: float | None) -> Conversation:
    channel = (Channel.CHAT, Channel.EMAIL, Channel.FORM)[number % 3]
    arrival = 10 * 3600.0 + number
    return Conversation(
        id=number,
        arrival=arrival,
        channel=channel,
        skills=cell,
        vip=False,
        handle_s=480.0,
        deadline=None if channel is Channel.CHAT else arrival + 7200,
        first_assigned=None if wait is None else arrival + wait,
    )


def test_worst_cell_sl60_on_a_hand_made_ledger() -> None:
    scenario = load_scenario(S_FILE)
    waits: dict[tuple[str, ...], list[float | None]] = {
        ("l1", "p1"): [10.0] * 36 + [120.0] * 4,  # 40 arrivals, 36 within: 0.9
        ("l2", "p1"): [60.0] * 24 + [61.0] * 5 + [None],  # 30 arrivals, 24 within: 0.8
        ("l6", "p5"): [None] * 29,  # too few arrivals to count
    }
    ledger = Ledger(scenario)
    numbers = itertools.count(1)
    ledger.conversations = [
        _conversation(next(numbers), cell, wait)
        for cell, cell_waits in waits.items()
        for wait in cell_waits
    ]
    assert MIN_CELL_ARRIVALS == 30
    assert cell_service_levels(ledger.conversations, 60.0) == {
        ("l1", "p1"): pytest.approx(0.9),
        ("l2", "p1"): pytest.approx(0.8),
    }
    figures = summarize(ledger, scenario)
    assert figures.worst_cell_sl60 == pytest.approx(0.8)
    assert figures.all_sl60 == pytest.approx(60 / 99)
    assert min(cell_service_levels(ledger.conversations, 60.0, min_arrivals=29).values()) == 0.0
    ledger.conversations = ledger.conversations[:29]
    assert summarize(ledger, scenario).worst_cell_sl60 == 1.0  # no cell counts


def test_new_goals_are_checked() -> None:
    data = s_document()
    data["goals"] = {"all_sl60": 0.95, "worst_cell_sl60": 0.85, "cpu_s": 60}
    scenario = parse_scenario(data)
    figures = {"all_sl60": 0.96, "worst_cell_sl60": 0.84, "reoffer_chat_max_s": 0.0}
    figures |= dict.fromkeys(("chat_sl60", "chat_asa_s", "email_within_sla"), 0.0)
    figures |= dict.fromkeys(("form_within_sla", "occupancy_cv", "reoffer_email_max_s"), 0.0)
    figures["all_asa_outside_overload_s"] = 0.0
    checks = check_goals(scenario, figures, bound_of(scenario), cpu_s=61.0)
    assert {name: check["met"] for name, check in checks.items()} == {
        "all_sl60": True,
        "worst_cell_sl60": False,
        "cpu_s": False,
    }


# -- the needs format -------------------------------------------------------------------------
def s_document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(S_FILE.read_text())
    return data


def test_skills_is_needs_with_one_dimension() -> None:
    as_skills = load_scenario(S_FILE)
    data = s_document()
    data["needs"] = {"topic": data.pop("skills")}
    as_needs = parse_scenario(data)
    day = draw_day(as_skills, 4)
    assert day == draw_day(as_needs, 4)
    assert {c.skills for c in day} == {("billing",), ("tech",)}
    assert simulate_once(as_skills, "guichet", 4)[0] == simulate_once(as_needs, "guichet", 4)[0]


def test_needs_draw_every_dimension_independently() -> None:
    data = s_document()
    del data["skills"]
    data["needs"] = {"language": {"en": 3, "fr": 1}, "product": {"x": 1, "y": 1}}
    for agent in data["agents"]:
        agent["skills"] = {"en": 1, "fr": 1, "x": 1, "y": 1}
    data["arrivals"] = [{"from": "09:00", "to": "17:00", "per_hour": 500}]
    day = draw_day(parse_scenario(data), 1)
    cells = [c.skills for c in day]
    assert all(len(cell) == 2 for cell in cells)
    english = sum(cell[0] == "en" for cell in cells) / len(cells)
    assert english == pytest.approx(0.75, abs=0.02)
    english_x = sum(cell == ("en", "x") for cell in cells) / len(cells)
    assert english_x == pytest.approx(0.75 * 0.5, abs=0.02)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"needs": {"language": {"en": 1}}}, "needs"),  # and skills too
        ({"skills": None}, "skills"),  # neither
        ({"skills": None, "needs": {}}, "needs"),
        ({"skills": None, "needs": {"a": {"x": 1}, "b": {"x": 1}}}, "needs.b.x"),
        ({"skills": None, "needs": {"Language": {"x": 1}}}, "needs.Language"),
        ({"skills": None, "needs": {"language": {"EN": 1}}}, "needs.language.EN"),
        ({"skills": None, "needs": {"language": {"en": 0}}}, "needs.language"),
    ],
)
def test_bad_needs_name_the_field(change: dict[str, Any], field: str) -> None:
    data = s_document()
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    assert caught.value.field == field


# -- the baseline: the same decisions as a scan of the whole queue ----------------------------
class ScanRoundRobin:
    """Round robin as first written: every decide scans all agents and the whole queue."""

    def __init__(self) -> None:
        self.agents: dict[int, Agent] = {}
        self.queue: dict[int, Waiting] = {}
        self.turn: int | None = None  # the agent served last

    def set_agent(self, agent: Agent) -> None:
        self.agents[agent.id] = replace(agent, load=dict(agent.load))

    def set_presence(self, agent_id: int, presence: Presence, now: float) -> None:
        self.agents[agent_id].presence = presence

    def release(self, agent_id: int, channel: Channel, now: float) -> None:
        load = self.agents[agent_id].load
        load[channel] = max(0, load.get(channel, 0) - 1)

    def enqueue(self, waiting: Waiting) -> None:
        self.queue[waiting.id] = waiting

    def requeue(self, waiting: Waiting, from_agent: int | None, now: float) -> None:
        self.enqueue(waiting)
        if from_agent is not None:
            self.release(from_agent, waiting.channel, now)

    def decide(self, now: float) -> list[Assignment]:
        decided = []
        for waiting in sorted(self.queue.values(), key=lambda w: (w.waiting_since, w.id)):
            eligible = sorted(a for a, agent in self.agents.items() if fits(agent, waiting, now))
            if not eligible:
                continue
            after = [a for a in eligible if self.turn is None or a > self.turn]
            chosen = (after or eligible)[0]
            agent = self.agents[chosen]
            agent.load[waiting.channel] = agent.load.get(waiting.channel, 0) + 1
            del self.queue[waiting.id]
            self.turn = chosen
            decided.append(Assignment(waiting.id, chosen, waiting.channel, offer=False))
        return decided


def fits(agent: Agent, waiting: Waiting, now: float) -> bool:
    waited = now - waiting.waiting_since
    return (
        agent.presence is Presence.ONLINE
        and agent.not_responding_until <= now
        and agent.load.get(waiting.channel, 0) < agent.capacity.get(waiting.channel, 0)
        and (agent.slots is None or sum(agent.load.values()) < agent.slots)
        and all(
            agent.skills.get(n.skill, 0) >= n.level
            for n in waiting.needs
            if n.relax_after_s is None or waited < n.relax_after_s
        )
    )


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32))
def test_round_robin_decides_as_a_scan_of_the_whole_queue(seed: int) -> None:
    rng = random.Random(seed)
    skills = ("a", "b", "c")
    fast, scan = RoundRobin(), ScanRoundRobin()

    def new_agent(agent_id: int) -> Agent:
        return Agent(
            agent_id,
            rng.choice([Presence.ONLINE, Presence.ONLINE, Presence.AWAY]),
            skills={s: rng.randint(1, 2) for s in rng.sample(skills, rng.randint(1, 3))},
            capacity={ch: rng.randint(0, 2) for ch in Channel},
            slots=rng.choice([None, 1, 2]),
            not_responding_until=rng.choice([0.0, 0.0, 30.0]),
        )

    agents = {i: new_agent(i) for i in rng.sample(range(1, 30), rng.randint(1, 8))}
    for agent in agents.values():
        fast.set_agent(agent)
        scan.set_agent(agent)
    known: dict[int, Waiting] = {}
    held: dict[int, tuple[Waiting, int]] = {}  # assigned and not yet released
    now, number = 0.0, itertools.count(1)
    for _ in range(rng.randint(1, 60)):
        now += rng.choice([0.0, 1.0, 5.0, 20.0])
        event = rng.random()
        if event < 0.45:
            needs = tuple(
                SkillNeed(s, rng.randint(1, 2), rng.choice([None, None, 10.0, 25.0]))
                for s in rng.sample(skills, rng.randint(0, 2))
            )
            waiting = Waiting(next(number), rng.choice(list(Channel)), needs, waiting_since=now)
            known[waiting.id] = waiting
            fast.enqueue(waiting)
            scan.enqueue(waiting)
        elif event < 0.7 and held:
            conversation_id = rng.choice(sorted(held))
            waiting, agent_id = held.pop(conversation_id)
            if rng.random() < 0.8:
                fast.release(agent_id, waiting.channel, now)
                scan.release(agent_id, waiting.channel, now)
            else:
                fast.requeue(waiting, agent_id, now)
                scan.requeue(waiting, agent_id, now)
        elif event < 0.85:
            agent_id = rng.choice(sorted(agents))
            presence = rng.choice(list(Presence))
            fast.set_presence(agent_id, presence, now)
            scan.set_presence(agent_id, presence, now)
        else:  # a supervisor changes an agent's skills; its load is what the scan holds
            agent_id = rng.choice(sorted(agents))
            changed = replace(
                scan.agents[agent_id],
                skills={s: 1 for s in rng.sample(skills, rng.randint(1, 3))},
                load=dict(scan.agents[agent_id].load),
            )
            fast.set_agent(changed)
            scan.set_agent(changed)
        decided = fast.decide(now)
        assert decided == scan.decide(now)
        for assignment in decided:
            held[assignment.conversation_id] = (
                known[assignment.conversation_id],
                assignment.agent_id,
            )
