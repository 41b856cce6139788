"""The routing simulator: Erlang C against published values, scenario files, a pinned
seeded day through the real router, determinism, and the report's shape."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inbox.types import Channel, Presence
from routing.core import Agent, SkillNeed, Waiting
from routing.erlang import MMC, erlang_c, head_of_line
from routing.sim_baseline import RoundRobin
from routing.sim_day import RouterFault, Simulation, draw_day
from routing.sim_metrics import Ledger
from routing.sim_report import HEADLINE, arrival_rates, bound_of, gap_closed, on_duty
from routing.sim_scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from routing.simulate import main, make_router, run, simulate_once

SCENARIOS = Path(__file__).resolve().parents[2] / "routing" / "scenarios"
S_FILE, M_FILE = SCENARIOS / "s.json", SCENARIOS / "m.json"
EIGHT_MIN = 480.0


def s_document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(S_FILE.read_text())
    return data


# -- Erlang C ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("agents", "per_hour", "p_wait", "asa_s", "sl60"),
    [  # ROUTING.md's reference rows (8-minute mean handle, 60-second threshold)
        (5, 12, 0.026, 3.65, 0.9831),
        (40, 270, 0.412, 49.4, 0.7504),
        (40, 285, 0.664, 159.0, 0.483),
        (100, 700, 0.390, 28.1, 0.831),
    ],
)
def test_erlang_c_matches_reference_rows(
    agents: int, per_hour: float, p_wait: float, asa_s: float, sl60: float
) -> None:
    queue = MMC(agents, per_hour / 3600, EIGHT_MIN)
    assert queue.p_wait == pytest.approx(p_wait, abs=0.0006)
    assert queue.asa_s == pytest.approx(asa_s, abs=0.51)
    assert queue.service_level(60) == pytest.approx(sl60, abs=0.0006)


def test_erlang_c_closed_forms() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert MMC(1, 0.5, 1.0).asa_s == pytest.approx(1.0)  # rho / (mu - lambda)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(10, 10.0) == 1.0 and erlang_c(10, 0.0) == 0.0
    assert MMC(10, 11 / EIGHT_MIN, EIGHT_MIN).service_level(60) == 0.0


def _erlang_c_log_space(c: int, a: float) -> float:
    """The textbook sum, in logarithms: an independent check for large teams."""
    terms = [k * math.log(a) - math.lgamma(k + 1) for k in range(c)]
    tail = c * math.log(a) - math.lgamma(c + 1) - math.log(1 - a / c)
    top = max(terms + [tail])
    total = sum(math.exp(t - top) for t in terms) + math.exp(tail - top)
    return math.exp(tail - top) / total


@pytest.mark.parametrize(("c", "a"), [(1100, 1050.0), (1015, 983.3), (500, 420.0), (37, 36.0)])
def test_erlang_c_is_stable_for_large_teams(c: int, a: float) -> None:
    assert erlang_c(c, a) == pytest.approx(_erlang_c_log_space(c, a), rel=1e-9)


@given(st.integers(1, 300), st.floats(0.01, 0.99))
def test_erlang_c_is_a_probability_that_falls_with_more_agents(c: int, occupancy: float) -> None:
    load = c * occupancy
    p = erlang_c(c, load)
    assert 0.0 <= p <= 1.0
    assert erlang_c(c + 1, load) <= p


def test_head_of_line_priority_is_cobhams_formula() -> None:
    # One agent, chat 0.2 and email 0.3 per minute, 1-minute handle: W_chat = rho / (mu - l1).
    queue = MMC(1, 0.5 / 60, 60.0)
    asa, sl = head_of_line(queue, 0.2 / 60, 30.0)
    assert asa == pytest.approx(0.5 / (1 / 60 - 0.2 / 60))
    assert sl == pytest.approx(1 - 0.5 * math.exp(-(1 / 60 - 0.2 / 60) * 30))
    overloaded = MMC(2, 3 / 60, 60.0)  # all agents always busy: every chat waits
    assert head_of_line(overloaded, 1 / 60, 60.0)[0] == pytest.approx(60.0)


@pytest.mark.parametrize("interrupts", [False, True])
def test_chat_references_match_a_fully_trained_team(interrupts: bool) -> None:
    """Scenario S with every agent on both skills, chat first: the simulated chat service
    level lands near the head-of-line reference when chat never interrupts work, and near
    the preemptive-priority bound when it does."""
    data = s_document()
    for agent in data["agents"]:
        agent["skills"] = {"billing": 1, "tech": 1}
    data["router"] = {"policy": "least_loaded", "chat_interrupts": interrupts}
    scenario = parse_scenario(data)
    seeds = range(1, 41)
    simulated = sum(simulate_once(scenario, "guichet", s)[0]["chat_sl60"] for s in seeds) / 40
    bound = bound_of(scenario)
    expected = bound.chat_sl if interrupts else bound.chat_np_sl
    assert simulated == pytest.approx(expected, abs=0.03)


# -- the bound on the scenario files --------------------------------------------------------
def test_bound_of_s_matches_routing_md() -> None:
    bound = bound_of(load_scenario(S_FILE))
    assert bound.chat_sl == pytest.approx(0.9642, abs=5e-5)
    assert bound.chat_asa_s == pytest.approx(9.1, abs=0.05)
    assert bound.chat_worst_sl == pytest.approx(0.9328, abs=5e-5)
    assert bound.all_sl == pytest.approx(0.772, abs=5e-4)
    assert bound.all_asa_s == pytest.approx(90, abs=0.5)
    assert bound.overloaded == ()


def test_bound_of_m_matches_routing_md() -> None:
    bound = bound_of(load_scenario(M_FILE))
    assert bound.chat_sl == pytest.approx(0.9990, abs=5e-5)
    assert bound.all_sl == pytest.approx(0.700, abs=5e-4)
    assert bound.all_asa_s == pytest.approx(49, abs=0.5)
    assert bound.overloaded == (6, 7)  # 11:00-12:00


# -- scenario files -----------------------------------------------------------------------------
def test_s_file_is_scenario_s() -> None:
    s = load_scenario(S_FILE)
    assert (s.day_start, s.day_end) == (9 * 3600, 17 * 3600)
    assert sum(arrival_rates(s)) / 2 == pytest.approx(168)
    assert [a.name for a in s.agents] == ["a1", "a2", "a3", "a4", "a5"]
    assert [round(n) for n in on_duty(s)] == [5] * 6 + [4] * 4 + [5] * 4 + [4] * 2
    assert s.tier == "A" and s.vip is not None and s.vip.share == 0.1


def test_m_file_is_scenario_m() -> None:
    m = load_scenario(M_FILE)
    assert sum(arrival_rates(m)) / 2 == pytest.approx(1965)
    assert [math.floor(n + 0.5) for n in on_duty(m)] == (
        [20] * 4 + [19] * 2 + [20] * 2 + [38] * 4 + [35] * 2 + [38] * 2 + [19] * 4 + [20] * 4
    )
    for start in (8 * 3600, 12 * 3600):
        shift = [a for a in m.agents if a.shift_start == start]
        primaries = [min(a.skills) for a in shift]
        assert [primaries.count(f"s{k}") for k in range(1, 7)] == [6, 4, 3, 3, 2, 2]
        assert all(len(a.skills) == (1 if min(a.skills) == "s6" else 2) for a in shift)
    assert [type(e).__name__ for e in m.supervisor] == ["SetPriority", "ChangeSkill"]


def _broken(change: str) -> dict[str, Any]:
    data = s_document()
    if change == "missing agents":
        del data["agents"]
    elif change == "bad shift end":
        data["agents"][1]["shift"]["end"] = "25:99"
    elif change == "shift ends before it starts":
        data["agents"][2]["shift"]["end"] = "08:00"
    elif change == "unknown channel":
        data["channels"]["fax"] = 1
    elif change == "unknown agent on lunch":
        data["away"][0]["agent"] = "zz"
    elif change == "unknown policy":
        data["router"]["policy"] = "fastest"
    elif change == "typo in a field":
        data["colour"] = "blue"
    elif change == "tier B":
        data["tier"] = "B"
    elif change == "overlapping arrivals":
        data["arrivals"].append({"from": "16:00", "to": "17:00", "per_hour": 3})
    elif change == "negative rate":
        data["arrivals"][0]["per_hour"] = -1
    elif change == "share above one":
        data["vip"]["share"] = 1.5
    elif change == "bad skill name":
        data["agents"][0]["skills"] = {"Billing!": 1}
    return data


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("missing agents", "agents"),
        ("bad shift end", "agents[1].shift.end"),
        ("shift ends before it starts", "agents[2].shift.end"),
        ("unknown channel", "channels.fax"),
        ("unknown agent on lunch", "away[0].agent"),
        ("unknown policy", "router.policy"),
        ("typo in a field", "colour"),
        ("tier B", "tier"),
        ("overlapping arrivals", "arrivals[1].from"),
        ("negative rate", "arrivals[0].per_hour"),
        ("share above one", "vip.share"),
        ("bad skill name", "agents[0].skills.Billing!"),
    ],
)
def test_bad_scenario_names_the_field(change: str, field: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(_broken(change))
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ": ")


def test_cli_reports_a_bad_file_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_broken("unknown policy")))
    not_json = tmp_path / "not.json"
    not_json.write_text("{nope")
    assert main([str(bad), "--no-progress"]) == 2
    assert "router.policy: expected one of" in capsys.readouterr().err
    assert main([str(not_json), "--no-progress"]) == 2
    assert "line 1: not JSON" in capsys.readouterr().err


# -- a pinned seeded day --------------------------------------------------------------------
def lunch_hours() -> Scenario:
    """Scenario S cut to 12:00-14:00 (four lunches), a5 away 13:15-13:20 holding its work."""
    data = s_document()
    for agent in data["agents"]:
        agent["shift"] = {"start": "12:00", "end": "14:00"}
    data.update(
        day={"start": "12:00", "end": "14:00"},
        arrivals=[{"from": "12:00", "to": "14:00", "per_hour": 21}],
        disconnects=[{"agent": "a5", "at": "13:15", "back": "13:20"}],
        drain_s=3600,
        seed=3,
    )
    del data["vip"], data["goals"]
    return parse_scenario(data)


def test_pinned_day_through_the_real_router() -> None:
    """Exact figures of one short day: a change in the router or the simulator shows here.
    (If a deliberate change moves them, check the new figures make sense, then re-pin.)"""
    scenario = lunch_hours()
    day = draw_day(scenario, 3)
    assert len(day) == 43
    mix = {ch.value: sum(c.channel is ch for c in day) for ch in Channel}
    assert mix == {"chat": 25, "email": 9, "form": 9}
    figures, _, _ = simulate_once(scenario, "guichet", 3)
    assert figures["chat_sl60"] == 24 / 25
    assert figures["chat_asa_s"] == pytest.approx(4.5683, abs=1e-4)
    assert figures["all_asa_s"] == pytest.approx(18.3338, abs=1e-4)
    assert figures["occupancy_cv"] == pytest.approx(0.1147, abs=1e-4)
    assert figures["reoffer_chat_max_s"] == 0.0  # a5's chat interrupts someone's email
    assert (figures["email_within_sla"], figures["form_within_sla"]) == (1.0, 1.0)
    assert (figures["duplicate_assignments"], figures["never_assigned"]) == (0, 0)
    baseline, _, _ = simulate_once(scenario, "baseline", 3)
    assert baseline["chat_sl60"] == 17 / 25
    assert baseline["chat_asa_s"] == pytest.approx(90.6016, abs=1e-4)
    assert baseline["all_asa_s"] == pytest.approx(76.7577, abs=1e-4)
    assert baseline["reoffer_chat_max_s"] == 300.0  # waited for a5 to come back


def one_agent_morning(interrupts: bool) -> Scenario:
    data = s_document()
    data["agents"] = data["agents"][:1]
    data["agents"][0]["skills"] = {"billing": 1, "tech": 1}
    data.update(
        away=[], disconnects=[], arrivals=[{"from": "09:00", "to": "12:00", "per_hour": 12}]
    )
    data["router"] = {"chat_interrupts": interrupts}
    return parse_scenario(data)


def spans_of(ledger: Ledger, chat: bool | None = None) -> list[tuple[float, float]]:
    """(first assigned, completed) of the conversations, all or only chats / non-chats."""
    return sorted(
        (c.first_assigned if c.first_assigned is not None else -1.0,
         c.completed if c.completed is not None else -1.0)
        for c in ledger.conversations
        if chat is None or (c.channel is Channel.CHAT) == chat
    )


def disjoint(spans: list[tuple[float, float]]) -> bool:
    return all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_tier_a_serves_one_conversation_at_a_time() -> None:
    scenario = one_agent_morning(interrupts=False)
    for name in ("guichet", "baseline"):
        ledger = Simulation(scenario, make_router(name, scenario), draw_day(scenario, 5)).run()
        spans = spans_of(ledger)
        assert spans and spans[0][0] >= 0 and all(end >= 0 for _, end in spans)
        assert disjoint(spans)


def test_a_chat_interrupts_email_and_form_work_which_resumes_after() -> None:
    scenario = one_agent_morning(interrupts=True)
    day = draw_day(scenario, 5)
    ledger = Simulation(scenario, make_router("guichet", scenario), day).run()
    chats, others = spans_of(ledger, chat=True), spans_of(ledger, chat=False)
    assert all(start >= 0 and end >= 0 for start, end in chats + others)
    assert disjoint(chats) and disjoint(others)
    # Email and form work starts only when the agent holds nothing ...
    assert not any(c0 < start < c1 for start, _ in others for c0, c1 in chats)
    # ... chats do start in the middle of it, and that work takes longer by the chat.
    interrupted = [
        (c, [ch for ch in ledger.conversations if ch.channel is Channel.CHAT
             and c.first_assigned < ch.first_assigned < c.completed])
        for c in ledger.conversations
        if c.channel is not Channel.CHAT
    ]
    interrupted = [(c, chats_in) for c, chats_in in interrupted if chats_in]
    assert interrupted
    for conv, chats_in in interrupted:
        assert conv.completed >= conv.first_assigned + conv.handle_s + min(
            ch.handle_s for ch in chats_in
        ) - 1e-6


def test_disconnect_hands_work_back_keeping_its_wait() -> None:
    scenario = lunch_hours()
    sim = Simulation(scenario, make_router("guichet", scenario), draw_day(scenario, 3))
    ledger = sim.run()
    reoffered = [c for c in ledger.conversations if c.reoffer_s]
    assert reoffered and all(c.completed is not None for c in reoffered)
    for conv in reoffered:
        assert conv.first_assigned is not None and conv.first_assigned < 13.25 * 3600


def test_supervisor_priority_change_requeues_waiting_vip_email() -> None:
    data = s_document()
    data["supervisor"] = [
        {"at": "10:00", "action": "set_priority", "class": "vip", "priority": "urgent"}
    ]
    data.update(agents=data["agents"][:1], away=[], disconnects=[])  # one agent: a queue builds
    data["vip"]["share"] = 1.0
    scenario = parse_scenario(data)
    enqueued: list[Waiting] = []

    class Watching(RoundRobin):
        def enqueue(self, waiting: Waiting) -> None:
            enqueued.append(waiting)
            super().enqueue(waiting)

    Simulation(scenario, Watching(), draw_day(scenario, 2)).run()
    emails = [w for w in enqueued if w.channel is Channel.EMAIL]
    early = {w.id for w in emails if w.waiting_since < 10 * 3600}
    raised = {w.id for w in emails if w.priority == 3 and w.id in early}
    assert raised and {w.priority for w in emails if w.id in raised} == {1, 3}
    assert all(w.priority == 3 for w in emails if w.id not in early)


def test_a_router_that_overfills_an_agent_stops_the_run() -> None:
    class Forgetful(RoundRobin):
        """Knows nothing of slots: an agent with a chat may get an email too."""

        def set_agent(self, agent: Agent) -> None:
            super().set_agent(replace(agent, slots=None))

    data = s_document()
    data.update(agents=data["agents"][:1], away=[], disconnects=[])
    scenario = parse_scenario(data)
    with pytest.raises(RouterFault, match="has no capacity left"):
        Simulation(scenario, Forgetful(), draw_day(scenario, 1)).run()


# -- the naive router ---------------------------------------------------------------------------
def test_round_robin_takes_turns_within_skills_and_capacity() -> None:
    rr = RoundRobin()
    for agent_id, skills in ((1, {"tech": 1}), (2, {"billing": 1}), (3, {"tech": 1})):
        rr.set_agent(Agent(agent_id, Presence.ONLINE, skills, {Channel.CHAT: 1}))
    for i in range(1, 5):
        rr.enqueue(Waiting(i, Channel.CHAT, (SkillNeed("tech"),), waiting_since=float(i)))
    first = [(a.conversation_id, a.agent_id) for a in rr.decide(10.0)]
    assert first == [(1, 1), (2, 3)]  # agent 2 lacks the skill; then everyone is full
    rr.release(1, Channel.CHAT, 11.0)
    rr.release(3, Channel.CHAT, 11.0)
    assert [(a.conversation_id, a.agent_id) for a in rr.decide(12.0)] == [(3, 1), (4, 3)]
    rr.set_presence(1, Presence.AWAY, 13.0)
    rr.release(1, Channel.CHAT, 13.0)
    rr.enqueue(Waiting(5, Channel.CHAT, (SkillNeed("tech"),), waiting_since=13.0))
    assert rr.decide(14.0) == []  # agent 1 away, agent 3 full


# -- whole days, determinism, the report --------------------------------------------------------
@pytest.mark.parametrize("path", [S_FILE, M_FILE])
def test_full_days_assign_everything_exactly_once(path: Path) -> None:
    scenario = load_scenario(path)
    for name in ("guichet", "baseline"):
        figures, _, _ = simulate_once(scenario, name, scenario.seed)
        assert figures["duplicate_assignments"] == 0
        assert figures["never_assigned"] == 0


def test_guichet_no_worse_than_baseline_on_chat_asa_for_s() -> None:
    scenario = load_scenario(S_FILE)
    seeds = range(1, 6)
    ours = sum(simulate_once(scenario, "guichet", seed)[0]["chat_asa_s"] for seed in seeds)
    naive = sum(simulate_once(scenario, "baseline", seed)[0]["chat_asa_s"] for seed in seeds)
    assert ours <= naive


def _report(seed: int | None = None) -> dict[str, Any]:
    out = io.StringIO()
    report = run(S_FILE, json_out=True, chart=None, progress=False, seed=seed, out=out)
    assert json.loads(out.getvalue()) == json.loads(json.dumps(report))
    return report


def test_same_seed_same_report() -> None:
    first, second = _report(), _report()
    first.pop("cpu_s"), second.pop("cpu_s")
    assert first == second
    other = _report(seed=2)
    assert other["guichet"]["conversations"] != first["guichet"]["conversations"]


def test_json_report_has_the_agreed_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "day.svg"
    assert main([str(S_FILE), "--json", "--no-progress", "--chart", str(chart)]) == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("guichet", "baseline"):
        assert set(HEADLINE) <= set(report[name])
        assert all(
            0.0 <= report[name][key] <= 1.0
            for key in ("chat_sl60", "email_within_sla", "form_within_sla")
        )
    assert set(report["bound"]) >= {"chat_sl60", "all_asa_s"}
    assert 0.0 <= report["gap_closed"] <= 1.0
    svg = chart.read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 12


def test_replications_report_intervals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(S_FILE), "--replications", "3", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "3 replication(s)" in text and "chat SL60" in text and "goal chat_sl60" in text
    report = run(
        S_FILE, json_out=True, chart=None, progress=False, replications=2, out=io.StringIO()
    )
    assert report["interval95"]["guichet"]["chat_asa_s"] >= 0


def test_gap_closed_is_clamped() -> None:
    assert gap_closed(100.0, 60.0, 50.0) == pytest.approx(0.8)
    assert gap_closed(100.0, 120.0, 50.0) == 0.0
    assert gap_closed(100.0, 40.0, 50.0) == 1.0
    assert gap_closed(50.0, 50.0, 50.0) == 1.0


def test_a_scenario_file_that_is_not_utf8_or_too_large_is_refused(tmp_path: Path) -> None:
    from routing.sim_scenario import MAX_SCENARIO_BYTES, ScenarioError, load_scenario

    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ScenarioError, match="UTF-8"):
        load_scenario(binary)
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (MAX_SCENARIO_BYTES + 1))
    with pytest.raises(ScenarioError, match="larger than"):
        load_scenario(huge)
