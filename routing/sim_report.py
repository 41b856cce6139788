"""What a simulated day is compared with, and how the comparison is reported.

The bound comes from the scenario alone (its arrival rates and the staffing its roster,
breaks and disconnects leave, half-hour by half-hour); the report gathers both routers'
figures, the bound, the share of the gap closed and the scenario's goals into one
JSON-ready dict, and renders the readable summary. Nothing here simulates.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from inbox.types import Channel
from routing.erlang import Bound, Period, day_bound
from routing.sim_metrics import covered
from routing.sim_scenario import GOAL_FIELDS, HALF_HOUR_S, Scenario

ROUTERS = ("guichet", "baseline")
# The figures every report carries for each router, under these names.
HEADLINE = (
    "chat_sl60",
    "chat_asa_s",
    "email_within_sla",
    "form_within_sla",
    "all_asa_s",
    "occupancy_cv",
    "duplicate_assignments",
    "never_assigned",
    "all_sl60",
    "worst_cell_sl60",
)


def bound_of(scenario: Scenario) -> Bound:
    """The SIPP bound on the scenario's half-hours: mean arrival rate, rounded staffing."""
    total = sum(scenario.channels.values())
    chat_share = scenario.channels.get(Channel.CHAT, 0.0) / total
    periods = [
        Period(rate, rate * chat_share, math.floor(agents + 0.5))
        for rate, agents in zip(arrival_rates(scenario), on_duty(scenario), strict=True)
    ]
    return day_bound(periods, handle_s=scenario.handle_mean_s, threshold_s=scenario.service_level_s)


def arrival_rates(scenario: Scenario) -> list[float]:
    """Mean arrivals per hour in each half-hour of the day (all channels)."""
    rates = []
    for start in scenario.half_hours():
        end = min(start + HALF_HOUR_S, scenario.day_end)
        expected = sum(p.per_hour * _overlap(p.start, p.end, start, end) for p in scenario.arrivals)
        rates.append(expected / (end - start))
    return rates


def on_duty(scenario: Scenario) -> list[float]:
    """Mean number of agents available (on shift, not away, not disconnected) per half-hour."""
    gone: dict[str, list[tuple[float, float]]] = {a.name: [] for a in scenario.agents}
    for away in scenario.away:
        gone[away.agent].append((away.start, away.end))
    for cut in scenario.disconnects:
        gone[cut.agent].append((cut.at, math.inf if cut.back is None else cut.back))
    counts = []
    for start in scenario.half_hours():
        end = min(start + HALF_HOUR_S, scenario.day_end)
        present = 0.0
        for agent in scenario.agents:
            lo, hi = max(start, agent.shift_start), min(end, agent.shift_end)
            if hi > lo:
                present += (hi - lo) - covered(gone[agent.name], lo, hi)
        counts.append(present / (end - start))
    return counts


def _overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def build_report(
    scenario: Scenario,
    seed: int,
    runs: dict[str, list[dict[str, Any]]],
    days: dict[str, list[dict[str, list[float]]]],
    cpu: dict[str, float],
) -> dict[str, Any]:
    bound = bound_of(scenario)
    report: dict[str, Any] = {
        "scenario": scenario.name,
        "tier": scenario.tier,
        "seed": seed,
        "replications": len(runs["guichet"]),
    }
    for name in ROUTERS:
        report[name] = _mean_of(runs[name])
    report["bound"] = {
        "chat_sl60": bound.chat_sl,
        "all_asa_s": bound.all_asa_s,
        "chat_asa_s": bound.chat_asa_s,
        "chat_worst_half_hour_sl60": bound.chat_worst_sl,
        "all_sl60": bound.all_sl,
        "all_worst_half_hour_sl60": bound.all_worst_sl,
        "chat_sl60_non_preemptive": bound.chat_np_sl,
        "chat_asa_non_preemptive_s": bound.chat_np_asa_s,
        "overloaded_half_hours": [
            clock_text(scenario.day_start + i * HALF_HOUR_S) for i in bound.overloaded
        ],
    }
    guichet_asa, baseline_asa = report["guichet"]["all_asa_s"], report["baseline"]["all_asa_s"]
    report["gap_closed"] = gap_closed(baseline_asa, guichet_asa, bound.all_asa_s)
    report["asa_bound_over_router"] = bound.all_asa_s / guichet_asa if guichet_asa else 1.0
    report["cpu_s"] = cpu
    days_run = len(runs["guichet"])
    report["goals"] = check_goals(scenario, report["guichet"], bound, cpu["guichet"] / days_run)
    if len(runs["guichet"]) > 1:
        report["interval95"] = {name: _half_widths(runs[name]) for name in ROUTERS}
    report["series"] = {
        "start": [clock_text(t) for t in scenario.half_hours()],
        **{name: _mean_series(days[name]) for name in ROUTERS},
    }
    return report


def gap_closed(baseline: float, router: float, bound: float) -> float:
    """Share of the baseline-to-bound gap on ASA that the router closes, within [0, 1]."""
    gap = baseline - bound
    if gap <= 0:
        return 1.0 if router <= baseline else 0.0
    return min(1.0, max(0.0, (baseline - router) / gap))


def check_goals(
    scenario: Scenario, figures: dict[str, Any], bound: Bound, cpu_s: float = 0.0
) -> dict[str, Any]:
    """Each goal of the scenario against the real router's figures (``cpu_s``: CPU
    seconds of one simulated day)."""
    goals = scenario.goals
    checks: dict[str, Any] = {}
    observed = {
        "chat_sl60": figures["chat_sl60"],
        "chat_asa_s": figures["chat_asa_s"],
        "email_within_sla": figures["email_within_sla"],
        "form_within_sla": figures["form_within_sla"],
        "occupancy_cv": figures["occupancy_cv"],
        "reoffer_chat_s": figures["reoffer_chat_max_s"],
        "reoffer_email_s": figures["reoffer_email_max_s"],
        "all_sl60": figures["all_sl60"],
        "worst_cell_sl60": figures["worst_cell_sl60"],
        "cpu_s": cpu_s,
        "all_asa_over_bound": (
            figures["all_asa_outside_overload_s"] / bound.all_asa_s if bound.all_asa_s else math.inf
        ),
    }
    for name, at_least in GOAL_FIELDS.items():
        target = getattr(goals, name)
        if target is not None:
            value = observed[name]
            met = value >= target if at_least else value <= target
            checks[name] = {"target": target, "value": value, "met": met}
    for window in goals.chat_sl60_windows:
        key = window_key(window.start, window.end)
        value = figures[key]
        checks[key] = {"target": window.minimum, "value": value, "met": value >= window.minimum}
    return checks


def summary_text(report: dict[str, Any]) -> str:
    rows = [
        ("chat SL60", "chat_sl60", "pct"),
        ("chat ASA", "chat_asa_s", "s"),
        ("chat p90 wait", "chat_p90_wait_s", "s"),
        ("email within SLA", "email_within_sla", "pct"),
        ("  VIP within SLA", "vip_within_sla", "pct"),
        ("form within SLA", "form_within_sla", "pct"),
        ("all-channel SL60", "all_sl60", "pct"),
        ("worst skill cell SL60", "worst_cell_sl60", "pct"),
        ("all-channel ASA", "all_asa_s", "s"),
        ("occupancy (mean)", "occupancy_mean", "pct"),
        ("occupancy CV", "occupancy_cv", "pct"),
        ("chat re-offer (max)", "reoffer_chat_max_s", "s"),
        ("duplicate assignments", "duplicate_assignments", "n"),
        ("never assigned", "never_assigned", "n"),
    ]
    bound = report["bound"]
    lines = [
        f"Scenario {report['scenario']} (tier {report['tier']}, seed {report['seed']}, "
        f"{report['replications']} replication(s), {report['guichet']['conversations']:.0f} "
        "conversations)",
        f"{'':24}{'guichet':>12}{'baseline':>12}{'bound':>12}",
    ]
    bounds = {
        "chat_sl60": bound["chat_sl60"],
        "chat_asa_s": bound["chat_asa_s"],
        "all_asa_s": bound["all_asa_s"],
        "all_sl60": bound["all_sl60"],
    }
    for label, key, unit in rows:
        cells = [_fmt(report[name][key], unit) for name in ROUTERS]
        cells.append(_fmt(bounds[key], unit) if key in bounds else "")
        lines.append(f"{label:24}" + "".join(f"{cell:>12}" for cell in cells))
    lines.append(
        f"gap closed on all-channel ASA: {report['gap_closed']:.1%}   "
        f"CPU: guichet {report['cpu_s']['guichet']:.2f} s, "
        f"baseline {report['cpu_s']['baseline']:.2f} s"
    )
    lines.append(
        "chat bound above assumes chat interrupts email/form work; without interrupting: "
        f"SL60 {bound['chat_sl60_non_preemptive']:.2%}, "
        f"ASA {bound['chat_asa_non_preemptive_s']:.1f} s"
    )
    if bound["overloaded_half_hours"]:
        lines.append(
            "bound ASA leaves out the overloaded half-hours "
            + ", ".join(bound["overloaded_half_hours"])
        )
    for name, check in report["goals"].items():
        verdict = "met" if check["met"] else "MISSED"
        sign = "at least" if GOAL_FIELDS.get(name, True) else "at most"
        lines.append(f"goal {name}: {check['value']:.6g} ({sign} {check['target']:.6g}): {verdict}")
    return "\n".join(lines)


def _fmt(value: float, unit: str) -> str:
    if unit == "pct":
        return f"{value:.2%}"
    if unit == "s":
        return f"{value:.1f} s"
    return f"{value:.0f}"


def _mean_of(figures: list[dict[str, Any]]) -> dict[str, Any]:
    if len(figures) == 1:
        return dict(figures[0])
    return {key: statistics.fmean(f[key] for f in figures) for key in figures[0]}


# Two-sided 95 % Student t quantiles for 1..30 degrees of freedom.
# fmt: off
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# fmt: on


def _half_widths(figures: list[dict[str, Any]]) -> dict[str, float]:
    n = len(figures)
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
    return {
        key: t * statistics.stdev([f[key] for f in figures]) / math.sqrt(n) for key in figures[0]
    }


def _mean_series(days: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    return {
        key: [statistics.fmean(col) for col in zip(*(d[key] for d in days), strict=True)]
        for key in days[0]
    }


def half_hour_of(scenario: Scenario, t: float) -> int:
    return int((t - scenario.day_start) // HALF_HOUR_S)


def window_key(start: float, end: float) -> str:
    return f"chat_sl60_{clock_text(start)}-{clock_text(end)}"


def clock_text(t: float) -> str:
    minutes = int(round(t / 60))
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
