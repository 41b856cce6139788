"""The routing simulator: a seeded day through the real router, against a naive one and the bound.

    python -m routing.simulate routing/scenarios/s.json [--json] [--chart day.svg]
        [--replications N] [--seed N] [--progress | --no-progress]

The same day (arrivals, channels, skills and handle times drawn from separate seeded
streams) is routed twice: by ``routing.core.Router`` with the scenario's settings, and by
``RoundRobin`` (``routing.sim_baseline``), a naive router (arrival order, next eligible
agent in turn, load ignored). Both are compared with the pooled-queue bound of
``routing.erlang``. The scenario format is parsed in ``routing.sim_scenario`` (field
checks in ``routing.sim_fields``), the event loop lives in ``routing.sim_day``, the
figures in ``routing.sim_metrics``, the bound and the report in ``routing.sim_report``,
the chart in ``routing.sim_chart``. Scenario L's file is written by ``routing.sim_roster``
(staffing arithmetic in ``routing.sim_staffing``). This module reads nothing but the
scenario file and writes nothing but stdout, stderr and the optional chart.

Scenario files
==============

One JSON object. Times of day are strings ``"HH:MM"`` or ``"HH:MM:SS"`` (00:00 to 48:00,
one simulated day, no dates); durations are numbers of seconds; rates are per hour.
Unknown fields are refused, and every error names the field at fault
(``agents[3].shift.end: must be after start``).

Required:

``name``          string; shown in reports.
``tier``          ``"A"``: exponential handle times with one mean for every channel, one
                  conversation per agent at a time over all channels (a chat may interrupt
                  email or form work with ``router.chat_interrupts``), no abandonment, every
                  assignment accepted at once. (``"B"`` is not simulated yet.)
``day``           ``{"start": "09:00", "end": "17:00"}``: conversations arrive in
                  [start, end); metrics per half-hour cover the same span.
``arrivals``      list of ``{"from": "08:00", "to": "10:00", "per_hour": 110}``, in order,
                  not overlapping, inside the day: Poisson arrivals (all channels together)
                  at that mean rate. Gaps have no arrivals.
``channels``      weights of the channel mix, e.g. ``{"chat": 12, "email": 6, "form": 3}``;
                  any positive numbers, normalised (shares 0.55/0.35/0.10 work as well).
``skills``        weights of the skills conversations need, e.g. ``{"billing": 1, "tech":
                  1}``: each conversation needs exactly one skill, drawn by weight, at
                  level 1. Skill names: lowercase letters, digits, ``. _ -``.
  or ``needs``    several independent dimensions of need, each weights of its skills:
                  ``{"language": {"l1": 45, "l2": 20}, "product": {"p1": 35, "p2": 25}}``:
                  each conversation needs one skill of every dimension (here a language
                  AND a product), each drawn by its own weights, all at level 1. Dimension
                  names follow the skill-name rule; a skill belongs to one dimension only.
                  Exactly one of ``skills`` and ``needs`` is given; ``skills`` is the same
                  as ``needs`` with a single dimension. The combination of skills a
                  conversation needs is its skill cell (``("l1", "p2")``).
``agents``        list of agents:
                  ``{"id": "a1", "skills": {"billing": 1, "tech": 1},
                  "capacity": {"chat": 2, "email": 1, "form": 1},
                  "shift": {"start": "09:00", "end": "17:00"}}``.
                  ``skills`` maps skill to level (1..10); ``capacity`` is conversations at
                  once per channel (a missing channel or 0: never gets that channel). Tier A
                  uses only whether a channel is above 0: one conversation at a time in all.

Optional (default):

``description``      free text ("").
``seed``             whole number (1): seeds every random stream; ``--seed`` overrides.
``service_level_s``  threshold of the chat service level (60).
``handle_mean_s``    mean handle time of every conversation in tier A (480, 8 min).
``drain_s``          after the day ends nothing arrives and agents still on duty stay
                     online this long (7200) to empty the queue; work still waiting then
                     counts in ``never_assigned``.
``sla_s``            first-response SLA per channel, e.g. ``{"email": 14400, "form":
                     7200}``; a channel without one gets no deadline (chat). Its deadline
                     orders email and forms in the router (earliest first).
``vip``              ``{"channel": "email", "share": 0.1, "sla_s": 3600}``: that share of the
                     channel's conversations is VIP, with its own SLA and priority class.
``priorities``       initial priority per class, ``{"vip": "normal"}``; classes are
                     ``chat``, ``email``, ``form`` (non-VIP) and ``vip``; priorities
                     ``low``, ``normal``, ``high``, ``urgent`` (all ``normal``).
``away``             planned absences: ``{"agent": "a1", "from": "12:00", "to": "12:30",
                     "reason": "lunch"}`` (reason is free text, default "break"). The agent
                     is away (gets nothing new) and finishes what it holds.
``disconnects``      unexpected disconnects: ``{"agent": "a5", "at": "16:00", "back":
                     "16:10"}``: offline at once, everything it holds is handed back to the
                     queue keeping its waiting time (the chat customer is still there); back
                     online at ``back`` (``null`` or absent: gone for the day).
``supervisor``       rule changes while the day runs, each with ``at`` and ``action``:
                     ``{"action": "set_priority", "class": "vip", "priority": "high"}``
                     (waiting conversations of that class are re-queued with it, later ones
                     arrive with it); ``{"action": "add_skill", "agents": ["l17"], "skill":
                     "s1", "level": 1}``; ``{"action": "remove_skill", "agents": [...],
                     "skill": "s1"}``.
``router``           the settings of the real router; the baseline ignores them:
                     ``{"policy": "least_loaded", "chat_first": true, "chat_interrupts":
                     true, "spare_scarce": true, "relax_s": {"s1": 30}}``.
                     ``policy``: ``least_loaded`` (default), ``longest_idle`` or
                     ``least_flexible``; ``chat_first`` (true): chat before email and forms
                     of the same priority; ``chat_interrupts`` (false): a chat may take an
                     agent busy with an email or form, whose work is put aside and resumed
                     when the agent holds no chat; ``spare_scarce`` (true): prefer agents
                     who could serve the fewest other waiting conversations;
                     ``relax_s``: skill -> seconds of waiting after which a conversation no
                     longer requires that skill (a relaxation rule).
``goals``            targets checked for the real router and shown in the report (none):
                     ``chat_sl60``, ``all_sl60``, ``worst_cell_sl60``, ``email_within_sla``,
                     ``form_within_sla`` (shares, at least); ``chat_asa_s``,
                     ``occupancy_cv``, ``reoffer_chat_s``, ``reoffer_email_s``, ``cpu_s``
                     (CPU seconds of one simulated day of the real router) (at most);
                     ``all_asa_over_bound`` (all-channel ASA
                     outside overloaded half-hours at most this many times the bound's);
                     ``chat_sl60_windows``: ``[{"from": "11:00", "to": "12:00", "min": 0.9}]``.

Metrics
=======

Waits run from arrival to the first assignment (tier A's first response). ``chat_sl60``
is the share of all chat arrivals answered within ``service_level_s`` (never answered is a
miss); ``all_sl60`` the same over the arrivals of every channel; ``worst_cell_sl60`` the
lowest ``all_sl60`` of a skill cell (all channels), among the cells with at least 30
arrivals over the day (``sim_metrics.MIN_CELL_ARRIVALS``: a cell of a few conversations
would make the figure a matter of chance), 1 if no cell has that many;
``*_asa_s`` average over answered conversations; ``email_within_sla`` and
``form_within_sla`` are shares of arrivals first answered by their deadline (VIP included
in email, also shown apart as ``vip_within_sla``); ``occupancy_cv`` is the largest, over
groups of agents sharing a shift, of the coefficient of variation of occupancy (busy time
over time online or busy, within the shift); ``never_assigned`` counts conversations still
waiting after the drain; ``duplicate_assignments`` counts assignments of a conversation
that was not waiting (held by someone, or finished). ``gap_closed`` is
(baseline ASA - router ASA) / (baseline ASA - bound ASA) on all channels, clamped to
[0, 1] (1 when the baseline already meets the bound and the router does no worse).

The bound is evaluated half-hour by half-hour (SIPP) on the scenario's mean arrival rate
and on-duty staffing (shifts minus breaks and disconnects, rounded). ``bound.chat_sl60``
lets chat interrupt email and form work, as ROUTING.md's figures do (and as
``router.chat_interrupts`` lets the router do); ``bound.chat_sl60_non_preemptive`` gives
the reference for a router that only serves chat first. SIPP takes each half-hour as a
steady state: where staffing barely exceeds the load (scenario L, whose unplanned
absences use up most of the square-root margin) queues have no time to reach it, and a
router can do better than these figures; there they are a reference, not a bound.
Other keys (``chat_sl30``,
``chat_p90_wait_s``, ``vip_within_sla``, ``reoffer_chat_max_s``, ``all_asa_outside_overload_s``, per
half-hour ``series``, ``cpu_s``, ``goals``, ``interval95`` with several replications)
come in addition to the agreed ones; with several replications every figure is the mean.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from routing.core import Router
from routing.sim_baseline import RoundRobin
from routing.sim_chart import write_chart
from routing.sim_day import RouterFault, Routes, Simulation, draw_day
from routing.sim_metrics import Ledger, series, summarize, window_service_level
from routing.sim_report import (
    ROUTERS,
    bound_of,
    build_report,
    half_hour_of,
    summary_text,
    window_key,
)
from routing.sim_scenario import Scenario, ScenarioError, load_scenario


# -- running ---------------------------------------------------------------------------------
def make_router(name: str, scenario: Scenario) -> Routes:
    if name == "baseline":
        return RoundRobin()
    settings = scenario.router
    return Router(
        settings.policy,
        chat_first=settings.chat_first,
        chat_interrupts=settings.chat_interrupts,
        spare_scarce=settings.spare_scarce,
    )


def simulate_once(
    scenario: Scenario, name: str, seed: int, on_event: Callable[[float], None] | None = None
) -> tuple[dict[str, Any], dict[str, list[float]], float]:
    """(metrics, half-hour series, CPU seconds) of one router on one seeded day."""
    day = draw_day(scenario, seed)
    started = time.process_time()
    relax = {} if name == "baseline" else scenario.router.relax_s  # the baseline has no rules
    router = make_router(name, scenario)
    ledger = Simulation(scenario, router, day, on_event=on_event, relax_s=relax).run()
    cpu = time.process_time() - started
    return _metrics(ledger, scenario), series(ledger, scenario), cpu


def _metrics(ledger: Ledger, scenario: Scenario) -> dict[str, Any]:
    figures: dict[str, Any] = asdict(summarize(ledger, scenario))
    overloaded = set(bound_of(scenario).overloaded)
    stable = [
        c.wait_s
        for c in ledger.conversations
        if c.wait_s is not None and half_hour_of(scenario, c.arrival) not in overloaded
    ]
    figures["all_asa_outside_overload_s"] = statistics.fmean(stable) if stable else 0.0
    for window in scenario.goals.chat_sl60_windows:
        figures[window_key(window.start, window.end)] = window_service_level(
            ledger, scenario.service_level_s, window.start, window.end
        )
    return figures


def run(
    scenario_path: Path | str,
    *,
    json_out: bool,
    chart: Path | None,
    progress: bool,
    replications: int = 1,
    seed: int | None = None,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Simulate the scenario for both routers, print the report, and return it."""
    scenario = load_scenario(Path(scenario_path))
    first_seed = scenario.seed if seed is None else seed
    bar = ProgressBar(scenario, replications) if progress else None
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ROUTERS}
    days: dict[str, list[dict[str, list[float]]]] = {name: [] for name in ROUTERS}
    cpu = dict.fromkeys(ROUTERS, 0.0)
    for rep in range(replications):
        for name in ROUTERS:
            on_event = bar.tracker(name, rep) if bar else None
            figures, halves, seconds = simulate_once(scenario, name, first_seed + rep, on_event)
            runs[name].append(figures)
            days[name].append(halves)
            cpu[name] += seconds
    if bar:
        bar.done()
    report = build_report(scenario, first_seed, runs, days, cpu)
    if chart is not None:
        write_chart(chart, scenario, report["series"])
    stream = out or sys.stdout
    if json_out:
        stream.write(json.dumps(report, indent=2) + "\n")
    else:
        stream.write(summary_text(report) + "\n")
    return report


class ProgressBar:
    """A one-line bar on stderr, redrawn with ``\\r`` when the whole percent changes."""

    def __init__(self, scenario: Scenario, replications: int, stream: TextIO | None = None) -> None:
        self.start = scenario.day_start
        self.span = scenario.day_end + scenario.drain_s - scenario.day_start
        self.legs = replications * len(ROUTERS)
        self.stream = stream or sys.stderr
        self.label = scenario.name
        self._shown = -1

    def tracker(self, name: str, rep: int) -> Callable[[float], None]:
        leg = rep * len(ROUTERS) + ROUTERS.index(name)

        def update(now: float) -> None:
            within = min(1.0, max(0.0, (now - self.start) / self.span))
            percent = int(100 * (leg + within) / self.legs)
            if percent != self._shown:
                self._shown = percent
                filled = percent * 30 // 100
                self.stream.write(
                    f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] "
                    f"{percent:3d}% {name} {rep + 1}"
                )
                self.stream.flush()

        return update

    def done(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


# -- command line ------------------------------------------------------------------------------
def build_parser(prog: str = "python -m routing.simulate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Simulate a routing scenario: the real router, a naive one, the bound.",
    )
    parser.add_argument("scenario", metavar="SCENARIO_FILE", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--chart", metavar="PATH", type=Path, help="write an SVG chart here")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    shown.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show a progress bar"
    )
    parser.add_argument(
        "--replications",
        metavar="N",
        type=int,
        default=1,
        help="days to simulate, seeds SEED..SEED+N-1 (default 1)",
    )
    parser.add_argument("--seed", metavar="N", type=int, help="override the scenario's seed")
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m routing.simulate") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.replications < 1:
        print("--replications must be at least 1", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        run(
            args.scenario,
            json_out=args.json,
            chart=args.chart,
            progress=progress,
            replications=args.replications,
            seed=args.seed,
        )
    except (OSError, ScenarioError) as exc:
        print(f"{args.scenario}: {exc}", file=sys.stderr)
        return 2
    except RouterFault as exc:
        print(f"{args.scenario}: router fault: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
