"""Scenario files for the routing simulator: reading, checking, and the staffing they imply.

The format is documented field by field in ``routing.simulate``'s module docstring; this
module turns a JSON document into frozen dataclasses and refuses anything it does not
understand with a ``ScenarioError`` naming the field. It runs nothing and draws no random
numbers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inbox.types import SKILL_NAME, Channel, Priority
from routing.core import Policy

HALF_HOUR_S = 1800.0
# A conversation's class decides its priority: its channel, or "vip" for the VIP share.
CLASSES = ("chat", "email", "form", "vip")
_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?$")


class ScenarioError(ValueError):
    """A scenario file that cannot be simulated; ``field`` is the JSON path at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


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
    skills: Mapping[str, float]  # relative weights
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


def clock(value: str) -> float:
    """'HH:MM' or 'HH:MM:SS' (hours 0..48) as seconds since midnight."""
    match = _CLOCK.match(value)
    if not match or int(match.group(1)) > 48:
        raise ValueError(value)
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds


# -- the parser ---------------------------------------------------------------------------
def _obj(
    value: object, at: str, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, object]:
    value = _mapping(value, at)
    missing = [key for key in required if key not in value]
    if missing:
        raise ScenarioError(_join(at, missing[0]), "is required")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise ScenarioError(_join(at, unknown[0]), "is not a known field")
    return value


def _mapping(value: object, at: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ScenarioError(at, f"expected an object, got {type(value).__name__}")
    return value


def _join(at: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{at}[{key}]"
    return f"{at}.{key}" if at else key


def _num(value: object, at: str, *, low: float | None = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(at, f"expected a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ScenarioError(at, f"must be {bounds}, got {value!r}")
    return float(value)


def _int(value: object, at: str, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ScenarioError(at, f"expected a whole number >= {low}, got {value!r}")
    return value


def _str(value: object, at: str) -> str:
    if not isinstance(value, str) or not value:
        raise ScenarioError(at, f"expected a non-empty string, got {value!r}")
    return value


def _time(value: object, at: str) -> float:
    try:
        return clock(_str(value, at))
    except ValueError:
        raise ScenarioError(at, f'expected a time "HH:MM" (00:00..48:00), got {value!r}') from None


def _list(value: object, at: str) -> list[object]:
    if not isinstance(value, list):
        raise ScenarioError(at, f"expected a list, got {type(value).__name__}")
    return value


def _channel(value: object, at: str) -> Channel:
    try:
        return Channel(_str(value, at))
    except ValueError:
        raise ScenarioError(at, f"unknown channel {value!r}") from None


def _skill(value: object, at: str) -> str:
    name = _str(value, at)
    if not SKILL_NAME.match(name):
        raise ScenarioError(at, f"bad skill name {name!r} (lowercase letters, digits, . _ -)")
    return name


def _priority(value: object, at: str) -> int:
    try:
        return Priority(_str(value, at)).rank
    except ValueError:
        raise ScenarioError(at, f"unknown priority {value!r}") from None


def _weights(value: object, at: str, key: str) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise ScenarioError(at, "expected a non-empty object of weights")
    weights = {str(name): _num(weight, _join(at, str(name))) for name, weight in value.items()}
    if sum(weights.values()) <= 0:
        raise ScenarioError(at, f"the {key} weights add up to zero")
    return weights


def _span(raw: dict[str, object], at: str, start: str, end: str) -> tuple[float, float]:
    begin, finish = _time(raw[start], _join(at, start)), _time(raw[end], _join(at, end))
    if finish <= begin:
        raise ScenarioError(_join(at, end), f"must be after {start}")
    return begin, finish


def parse_scenario(data: object) -> Scenario:
    """Check a decoded scenario document and build the ``Scenario`` it describes."""
    top = _obj(
        data,
        "",
        ("name", "tier", "day", "arrivals", "channels", "skills", "agents"),
        (
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
    tier = _str(top["tier"], "tier")
    if tier != "A":
        raise ScenarioError("tier", f"only tier 'A' is simulated so far, got {tier!r}")
    day_start, day_end = _span(_obj(top["day"], "day", ("start", "end")), "day", "start", "end")
    skills = _weights(top["skills"], "skills", "skill")
    for name in skills:
        _skill(name, _join("skills", name))
    agents = tuple(
        _agent(raw, _join("agents", i)) for i, raw in enumerate(_list(top["agents"], "agents"))
    )
    names = [agent.name for agent in agents]
    if not agents:
        raise ScenarioError("agents", "needs at least one agent")
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ScenarioError("agents", f"agent id {duplicate!r} appears twice")
    known = set(names)
    return Scenario(
        name=_str(top["name"], "name"),
        tier=tier,
        description=str(top.get("description", "")),
        seed=_int(top.get("seed", 1), "seed"),
        day_start=day_start,
        day_end=day_end,
        drain_s=_num(top.get("drain_s", 7200), "drain_s"),
        service_level_s=_num(top.get("service_level_s", 60), "service_level_s"),
        handle_mean_s=_num(top.get("handle_mean_s", 480), "handle_mean_s", low=1.0),
        arrivals=_arrivals(top["arrivals"], day_start, day_end),
        channels={
            _channel(name, _join("channels", name)): weight
            for name, weight in _weights(top["channels"], "channels", "channel").items()
        },
        skills=skills,
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
    return [(_join(key, i), raw) for i, raw in enumerate(_list(top.get(key, []), key))]


def _arrivals(value: object, day_start: float, day_end: float) -> tuple[ArrivalPeriod, ...]:
    periods: list[ArrivalPeriod] = []
    for i, raw in enumerate(_list(value, "arrivals")):
        at = _join("arrivals", i)
        entry = _obj(raw, at, ("from", "to", "per_hour"))
        start, end = _span(entry, at, "from", "to")
        if start < day_start or end > day_end:
            raise ScenarioError(at, "lies outside the day")
        if periods and start < periods[-1].end:
            raise ScenarioError(_join(at, "from"), "overlaps the period before")
        periods.append(ArrivalPeriod(start, end, _num(entry["per_hour"], _join(at, "per_hour"))))
    if not periods:
        raise ScenarioError("arrivals", "needs at least one period")
    return tuple(periods)


def _agent(raw: object, at: str) -> AgentSpec:
    entry = _obj(raw, at, ("id", "skills", "capacity", "shift"))
    skills = _mapping(entry["skills"], _join(at, "skills"))
    capacity = _mapping(entry["capacity"], _join(at, "capacity"))
    start, end = _span(
        _obj(entry["shift"], _join(at, "shift"), ("start", "end")),
        _join(at, "shift"),
        "start",
        "end",
    )
    return AgentSpec(
        name=_str(entry["id"], _join(at, "id")),
        skills={
            _skill(name, f"{at}.skills.{name}"): _int(level, f"{at}.skills.{name}", low=1)
            for name, level in skills.items()
        },
        capacity={
            _channel(name, f"{at}.capacity.{name}"): _int(n, f"{at}.capacity.{name}")
            for name, n in capacity.items()
        },
        shift_start=start,
        shift_end=end,
    )


def _agent_ref(value: object, at: str, known: set[str]) -> str:
    name = _str(value, at)
    if name not in known:
        raise ScenarioError(at, f"no agent has id {name!r}")
    return name


def _away(raw: object, at: str, known: set[str]) -> Away:
    entry = _obj(raw, at, ("agent", "from", "to"), ("reason",))
    start, end = _span(entry, at, "from", "to")
    reason = _str(entry.get("reason", "break"), _join(at, "reason"))
    return Away(_agent_ref(entry["agent"], _join(at, "agent"), known), start, end, reason)


def _disconnect(raw: object, at: str, known: set[str]) -> Disconnect:
    entry = _obj(raw, at, ("agent", "at"), ("back",))
    when = _time(entry["at"], _join(at, "at"))
    back = entry.get("back")
    back_at = None if back is None else _time(back, _join(at, "back"))
    if back_at is not None and back_at <= when:
        raise ScenarioError(_join(at, "back"), "must be after at")
    return Disconnect(_agent_ref(entry["agent"], _join(at, "agent"), known), when, back_at)


def _supervisor(raw: object, at: str, known: set[str]) -> SupervisorEvent:
    head = _obj(raw, at, ("at", "action"), ("class", "priority", "agents", "skill", "level"))
    when = _time(head["at"], _join(at, "at"))
    action = head["action"]
    if action == "set_priority":
        entry = _obj(raw, at, ("at", "action", "class", "priority"))
        target = entry["class"]
        if target not in CLASSES:
            raise ScenarioError(_join(at, "class"), f"expected one of {CLASSES}, got {target!r}")
        return SetPriority(when, str(target), _priority(entry["priority"], _join(at, "priority")))
    if action in ("add_skill", "remove_skill"):
        fields = ("at", "action", "agents", "skill")
        entry = _obj(raw, at, fields, ("level",) if action == "add_skill" else ())
        agents = tuple(
            _agent_ref(name, _join(_join(at, "agents"), i), known)
            for i, name in enumerate(_list(entry["agents"], _join(at, "agents")))
        )
        level = 0  # remove_skill
        if action == "add_skill":
            level = _int(entry.get("level", 1), _join(at, "level"), low=1)
        return ChangeSkill(when, agents, _skill(entry["skill"], _join(at, "skill")), level)
    raise ScenarioError(
        _join(at, "action"), f"expected set_priority, add_skill or remove_skill, got {action!r}"
    )


def _sla(value: object) -> dict[Channel, float]:
    entry = _obj(value, "sla_s", (), ("email", "form", "chat"))
    return {
        _channel(name, _join("sla_s", name)): _num(s, _join("sla_s", name), low=1.0)
        for name, s in entry.items()
    }


def _vip(value: object) -> Vip:
    entry = _obj(value, "vip", ("channel", "share", "sla_s"))
    return Vip(
        _channel(entry["channel"], "vip.channel"),
        _num(entry["share"], "vip.share", high=1.0),
        _num(entry["sla_s"], "vip.sla_s", low=1.0),
    )


def _priorities(value: object) -> dict[str, int]:
    entry = _obj(value, "priorities", (), CLASSES)
    return {name: _priority(p, _join("priorities", name)) for name, p in entry.items()}


def _router(value: object) -> RouterSettings:
    entry = _obj(
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
    relax = _mapping(entry.get("relax_s", {}), "router.relax_s")
    relax_s = {
        _skill(skill, _join("router.relax_s", skill)): _num(
            seconds, _join("router.relax_s", skill), low=0.0
        )
        for skill, seconds in relax.items()
    }
    return RouterSettings(Policy(str(policy)), relax_s=relax_s, **flags)


def _goals(value: object) -> Goals:
    entry = _obj(value, "goals", (), tuple(GOAL_FIELDS) + ("chat_sl60_windows",))

    def goal(name: str) -> float | None:
        if name not in entry:
            return None
        return _num(entry[name], _join("goals", name), high=1.0 if GOAL_FIELDS[name] else None)

    windows = []
    for i, raw in enumerate(_list(entry.get("chat_sl60_windows", []), "goals.chat_sl60_windows")):
        at = _join("goals.chat_sl60_windows", i)
        window = _obj(raw, at, ("from", "to", "min"))
        start, end = _span(window, at, "from", "to")
        windows.append(Window(start, end, _num(window["min"], _join(at, "min"), high=1.0)))
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
    )
