"""Scenario files for the routing simulator: reading, checking, and the staffing they imply.

The format is documented field by field in ``routing.simulate``'s module docstring; this
module turns a JSON document into frozen dataclasses and refuses anything it does not
understand with a ``ScenarioError`` naming the field (single fields are checked by
``routing.sim_fields``). It runs nothing and draws no random numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from inbox.types import Channel
from routing.core import Policy
from routing.sim_fields import ScenarioError as ScenarioError  # part of this module's API
from routing.sim_fields import (
    array,
    channel_of,
    join,
    mapping,
    number,
    obj,
    priority_rank,
    skill_name,
    span,
    text,
    time_of,
    weights,
    whole,
)

HALF_HOUR_S = 1800.0
# A conversation's class decides its priority: its channel, or "vip" for the VIP share.
CLASSES = ("chat", "email", "form", "vip")


@dataclass(frozen=True)
class ArrivalPeriod:
    start: float  # seconds since midnight
    end: float
    per_hour: float


@dataclass(frozen=True)
class AgentSpec:
    name: str
    skills: Mapping[str, int]
    capacity: Mapping[Channel, int]
    shift_start: float
    shift_end: float


@dataclass(frozen=True)
class Away:
    agent: str
    start: float
    end: float
    reason: str = "break"


@dataclass(frozen=True)
class Disconnect:
    agent: str
    at: float
    back: float | None = None  # None: gone for the rest of the day


@dataclass(frozen=True)
class Need:
    """One dimension of what a conversation needs: exactly one of its skills, by weight."""

    name: str  # "skill" for a scenario's ``skills``; a key of its ``needs`` otherwise
    weights: Mapping[str, float]  # skill -> relative weight


@dataclass(frozen=True)
class Vip:
    channel: Channel
    share: float
    sla_s: float


@dataclass(frozen=True)
class SetPriority:
    at: float
    target: str  # one of CLASSES
    priority: int  # Priority.rank


@dataclass(frozen=True)
class ChangeSkill:
    at: float
    agents: tuple[str, ...]
    skill: str
    level: int  # 0 removes the skill


SupervisorEvent = SetPriority | ChangeSkill


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    minimum: float


# Goal name -> True for a share (0..1, at least), False for a limit (at most).
GOAL_FIELDS = {
    "chat_sl60": True,
    "chat_asa_s": False,
    "email_within_sla": True,
    "form_within_sla": True,
    "all_asa_over_bound": False,
    "occupancy_cv": False,
    "reoffer_chat_s": False,
    "reoffer_email_s": False,
    "all_sl60": True,
    "worst_cell_sl60": True,
    "cpu_s": False,
}


@dataclass(frozen=True)
class Goals:
    chat_sl60: float | None = None
    chat_asa_s: float | None = None
    email_within_sla: float | None = None
    form_within_sla: float | None = None
    chat_sl60_windows: tuple[Window, ...] = ()
    all_asa_over_bound: float | None = None
    occupancy_cv: float | None = None
    reoffer_chat_s: float | None = None
    reoffer_email_s: float | None = None
    all_sl60: float | None = None
    worst_cell_sl60: float | None = None
    cpu_s: float | None = None  # CPU seconds of the real router's simulated day


@dataclass(frozen=True)
class RouterSettings:
    policy: Policy = Policy.LEAST_LOADED
    chat_first: bool = True
    chat_interrupts: bool = False
    spare_scarce: bool = True
    # Skill -> seconds of waiting after which a conversation no longer requires it.
    relax_s: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    tier: str
    day_start: float
    day_end: float
    arrivals: tuple[ArrivalPeriod, ...]
    channels: Mapping[Channel, float]  # relative weights
    needs: tuple[Need, ...]  # what each conversation needs: one skill per dimension
    agents: tuple[AgentSpec, ...]
    description: str = ""
    seed: int = 1
    drain_s: float = 7200.0
    service_level_s: float = 60.0
    handle_mean_s: float = 480.0
    sla_s: Mapping[Channel, float] = field(default_factory=dict)
    vip: Vip | None = None
    priorities: Mapping[str, int] = field(default_factory=dict)
    away: tuple[Away, ...] = ()
    disconnects: tuple[Disconnect, ...] = ()
    supervisor: tuple[SupervisorEvent, ...] = ()
    router: RouterSettings = RouterSettings()
    goals: Goals = Goals()

    def half_hours(self) -> list[float]:
        """Start times of the half-hours covering the day."""
        count = math.ceil((self.day_end - self.day_start) / HALF_HOUR_S)
        return [self.day_start + i * HALF_HOUR_S for i in range(count)]


MAX_SCENARIO_BYTES = 1024 * 1024


def load_scenario(path: Path) -> Scenario:
    with path.open("rb") as handle:
        raw = handle.read(MAX_SCENARIO_BYTES + 1)
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError("file", f"larger than {MAX_SCENARIO_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ScenarioError("file", f"not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"line {exc.lineno}", f"not JSON ({exc.msg})") from None
    return parse_scenario(data)


def parse_scenario(data: object) -> Scenario:
    """Check a decoded scenario document and build the ``Scenario`` it describes."""
    top = obj(
        data,
        "",
        ("name", "tier", "day", "arrivals", "channels", "agents"),
        (
            "skills",
            "needs",
            "description",
            "seed",
            "drain_s",
            "service_level_s",
            "handle_mean_s",
            "sla_s",
            "vip",
            "priorities",
            "away",
            "disconnects",
            "supervisor",
            "router",
            "goals",
        ),
    )
    tier = text(top["tier"], "tier")
    if tier != "A":
        raise ScenarioError("tier", f"only tier 'A' is simulated so far, got {tier!r}")
    day_start, day_end = span(obj(top["day"], "day", ("start", "end")), "day", "start", "end")
    needs = _needs(top)
    agents = tuple(
        _agent(raw, join("agents", i)) for i, raw in enumerate(array(top["agents"], "agents"))
    )
    names = [agent.name for agent in agents]
    if not agents:
        raise ScenarioError("agents", "needs at least one agent")
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ScenarioError("agents", f"agent id {duplicate!r} appears twice")
    known = set(names)
    return Scenario(
        name=text(top["name"], "name"),
        tier=tier,
        description=str(top.get("description", "")),
        seed=whole(top.get("seed", 1), "seed"),
        day_start=day_start,
        day_end=day_end,
        drain_s=number(top.get("drain_s", 7200), "drain_s"),
        service_level_s=number(top.get("service_level_s", 60), "service_level_s"),
        handle_mean_s=number(top.get("handle_mean_s", 480), "handle_mean_s", low=1.0),
        arrivals=_arrivals(top["arrivals"], day_start, day_end),
        channels={
            channel_of(name, join("channels", name)): weight
            for name, weight in weights(top["channels"], "channels", "channel").items()
        },
        needs=needs,
        sla_s=_sla(top.get("sla_s", {})),
        vip=_vip(top["vip"]) if "vip" in top else None,
        priorities=_priorities(top.get("priorities", {})),
        agents=agents,
        away=tuple(_away(raw, at, known) for at, raw in _items(top, "away")),
        disconnects=tuple(_disconnect(raw, at, known) for at, raw in _items(top, "disconnects")),
        supervisor=tuple(_supervisor(raw, at, known) for at, raw in _items(top, "supervisor")),
        router=_router(top.get("router", {})),
        goals=_goals(top.get("goals", {})),
    )


def _items(top: dict[str, object], key: str) -> list[tuple[str, object]]:
    """(JSON path, entry) for each entry of an optional list."""
    return [(join(key, i), raw) for i, raw in enumerate(array(top.get(key, []), key))]


def _needs(top: dict[str, object]) -> tuple[Need, ...]:
    """``skills`` (one dimension) or ``needs`` (several, drawn independently)."""
    if "skills" in top and "needs" in top:
        raise ScenarioError("needs", "give either skills or needs, not both")
    if "skills" in top:
        dimensions = {"skill": top["skills"]}
        paths = {"skill": "skills"}
    elif "needs" in top:
        dimensions = mapping(top["needs"], "needs")
        if not dimensions:
            raise ScenarioError("needs", "needs at least one dimension")
        paths = {name: join("needs", name) for name in dimensions}
    else:
        raise ScenarioError("skills", "is required (or needs)")
    seen: dict[str, str] = {}
    needs = []
    for name, raw in dimensions.items():
        at = paths[name]
        if name != "skill":
            skill_name(name, at)  # dimension names follow the skill-name rule
        parsed = weights(raw, at, "skill")
        for skill in parsed:
            skill_name(skill, join(at, skill))
            if skill in seen:
                raise ScenarioError(join(at, skill), f"already a skill of {seen[skill]}")
            seen[skill] = name
        needs.append(Need(name, parsed))
    return tuple(needs)


def _arrivals(value: object, day_start: float, day_end: float) -> tuple[ArrivalPeriod, ...]:
    periods: list[ArrivalPeriod] = []
    for i, raw in enumerate(array(value, "arrivals")):
        at = join("arrivals", i)
        entry = obj(raw, at, ("from", "to", "per_hour"))
        start, end = span(entry, at, "from", "to")
        if start < day_start or end > day_end:
            raise ScenarioError(at, "lies outside the day")
        if periods and start < periods[-1].end:
            raise ScenarioError(join(at, "from"), "overlaps the period before")
        periods.append(ArrivalPeriod(start, end, number(entry["per_hour"], join(at, "per_hour"))))
    if not periods:
        raise ScenarioError("arrivals", "needs at least one period")
    return tuple(periods)


def _agent(raw: object, at: str) -> AgentSpec:
    entry = obj(raw, at, ("id", "skills", "capacity", "shift"))
    skills = mapping(entry["skills"], join(at, "skills"))
    capacity = mapping(entry["capacity"], join(at, "capacity"))
    start, end = span(
        obj(entry["shift"], join(at, "shift"), ("start", "end")),
        join(at, "shift"),
        "start",
        "end",
    )
    return AgentSpec(
        name=text(entry["id"], join(at, "id")),
        skills={
            skill_name(name, f"{at}.skills.{name}"): whole(level, f"{at}.skills.{name}", low=1)
            for name, level in skills.items()
        },
        capacity={
            channel_of(name, f"{at}.capacity.{name}"): whole(n, f"{at}.capacity.{name}")
            for name, n in capacity.items()
        },
        shift_start=start,
        shift_end=end,
    )


def _agent_ref(value: object, at: str, known: set[str]) -> str:
    name = text(value, at)
    if name not in known:
        raise ScenarioError(at, f"no agent has id {name!r}")
    return name


def _away(raw: object, at: str, known: set[str]) -> Away:
    entry = obj(raw, at, ("agent", "from", "to"), ("reason",))
    start, end = span(entry, at, "from", "to")
    reason = text(entry.get("reason", "break"), join(at, "reason"))
    return Away(_agent_ref(entry["agent"], join(at, "agent"), known), start, end, reason)


def _disconnect(raw: object, at: str, known: set[str]) -> Disconnect:
    entry = obj(raw, at, ("agent", "at"), ("back",))
    when = time_of(entry["at"], join(at, "at"))
    back = entry.get("back")
    back_at = None if back is None else time_of(back, join(at, "back"))
    if back_at is not None and back_at <= when:
        raise ScenarioError(join(at, "back"), "must be after at")
    return Disconnect(_agent_ref(entry["agent"], join(at, "agent"), known), when, back_at)


def _supervisor(raw: object, at: str, known: set[str]) -> SupervisorEvent:
    head = obj(raw, at, ("at", "action"), ("class", "priority", "agents", "skill", "level"))
    when = time_of(head["at"], join(at, "at"))
    action = head["action"]
    if action == "set_priority":
        entry = obj(raw, at, ("at", "action", "class", "priority"))
        target = entry["class"]
        if target not in CLASSES:
            raise ScenarioError(join(at, "class"), f"expected one of {CLASSES}, got {target!r}")
        rank = priority_rank(entry["priority"], join(at, "priority"))
        return SetPriority(when, str(target), rank)
    if action in ("add_skill", "remove_skill"):
        fields = ("at", "action", "agents", "skill")
        entry = obj(raw, at, fields, ("level",) if action == "add_skill" else ())
        agents = tuple(
            _agent_ref(name, join(join(at, "agents"), i), known)
            for i, name in enumerate(array(entry["agents"], join(at, "agents")))
        )
        level = 0  # remove_skill
        if action == "add_skill":
            level = whole(entry.get("level", 1), join(at, "level"), low=1)
        return ChangeSkill(when, agents, skill_name(entry["skill"], join(at, "skill")), level)
    raise ScenarioError(
        join(at, "action"), f"expected set_priority, add_skill or remove_skill, got {action!r}"
    )


def _sla(value: object) -> dict[Channel, float]:
    entry = obj(value, "sla_s", (), ("email", "form", "chat"))
    return {
        channel_of(name, join("sla_s", name)): number(s, join("sla_s", name), low=1.0)
        for name, s in entry.items()
    }


def _vip(value: object) -> Vip:
    entry = obj(value, "vip", ("channel", "share", "sla_s"))
    return Vip(
        channel_of(entry["channel"], "vip.channel"),
        number(entry["share"], "vip.share", high=1.0),
        number(entry["sla_s"], "vip.sla_s", low=1.0),
    )


def _priorities(value: object) -> dict[str, int]:
    entry = obj(value, "priorities", (), CLASSES)
    return {name: priority_rank(p, join("priorities", name)) for name, p in entry.items()}


def _router(value: object) -> RouterSettings:
    entry = obj(
        value, "router", (), ("policy", "chat_first", "chat_interrupts", "spare_scarce", "relax_s")
    )
    policy = entry.get("policy", Policy.LEAST_LOADED.value)
    if policy not in {p.value for p in Policy}:
        choices = ", ".join(p.value for p in Policy)
        raise ScenarioError("router.policy", f"expected one of {choices}, got {policy!r}")
    flags = {}
    for name, default in (("chat_first", True), ("chat_interrupts", False), ("spare_scarce", True)):
        flag = entry.get(name, default)
        if not isinstance(flag, bool):
            raise ScenarioError(f"router.{name}", f"expected true or false, got {flag!r}")
        flags[name] = flag
    relax = mapping(entry.get("relax_s", {}), "router.relax_s")
    relax_s = {
        skill_name(skill, join("router.relax_s", skill)): number(
            seconds, join("router.relax_s", skill), low=0.0
        )
        for skill, seconds in relax.items()
    }
    return RouterSettings(Policy(str(policy)), relax_s=relax_s, **flags)


def _goals(value: object) -> Goals:
    entry = obj(value, "goals", (), tuple(GOAL_FIELDS) + ("chat_sl60_windows",))

    def goal(name: str) -> float | None:
        if name not in entry:
            return None
        return number(entry[name], join("goals", name), high=1.0 if GOAL_FIELDS[name] else None)

    windows = []
    for i, raw in enumerate(array(entry.get("chat_sl60_windows", []), "goals.chat_sl60_windows")):
        at = join("goals.chat_sl60_windows", i)
        window = obj(raw, at, ("from", "to", "min"))
        start, end = span(window, at, "from", "to")
        windows.append(Window(start, end, number(window["min"], join(at, "min"), high=1.0)))
    return Goals(
        chat_sl60=goal("chat_sl60"),
        chat_asa_s=goal("chat_asa_s"),
        email_within_sla=goal("email_within_sla"),
        form_within_sla=goal("form_within_sla"),
        chat_sl60_windows=tuple(windows),
        all_asa_over_bound=goal("all_asa_over_bound"),
        occupancy_cv=goal("occupancy_cv"),
        reoffer_chat_s=goal("reoffer_chat_s"),
        reoffer_email_s=goal("reoffer_email_s"),
        all_sl60=goal("all_sl60"),
        worst_cell_sl60=goal("worst_cell_sl60"),
        cpu_s=goal("cpu_s"),
    )
