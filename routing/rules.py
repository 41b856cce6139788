"""Supervisor routing rules as data: checked on save, evaluated on each new conversation.

This module owns the rule format, its canonical JSON and the evaluation of an ordered rule
set on one conversation's ``Facts``; conditions live in ``routing.rule_conditions``. It
touches no database and no web code: the store keeps ``rule_to_json`` output and the JSON
API answers a ``RuleError`` (``.path``, ``.message``) as its error document. The limits on a
whole rule set are checked by ``parse_rules`` only: a save should check the set it makes.

A rule is a JSON object::

    {"name": "VIP billing", "enabled": true, "stop": false,
     "conditions": [{"field": "channel", "op": "in", "value": ["email", "form"]},
                    {"field": "contact.tags", "op": "has", "value": "vip"}],
     "actions": [{"type": "require_skill", "skill": "billing", "level": 2},
                 {"type": "set_priority", "priority": "high"}]}

``name`` (1-100 characters) and ``actions`` are required; ``enabled`` (default true),
``stop`` (default false) and ``conditions`` (default none: the rule matches everything) are
optional. Unknown keys are refused, never ignored. A rule needs an action unless it stops.

Conditions, all of which must hold (``value`` shapes in brackets):

* ``channel`` ``in`` [list of ``email``, ``chat``, ``form``].
* ``source`` (the mailbox address, form slug or widget id the conversation came through)
  ``equals`` [string] or ``in`` [list of strings].
* ``subject``, ``body``: ``contains`` [string] or ``matches`` [pattern].
* ``contact.email``, ``contact.name``, ``contact.domain`` (the part after the ``@``):
  ``equals``, ``contains``, ``ends_with`` [string] or ``matches`` [pattern]. A conversation
  without a contact email or name matches none of these. ``ends_with`` is a plain suffix:
  ``.example.com`` matches subdomains only, ``example.com`` also ``badexample.com``.
* ``contact.tags`` and ``tags`` (the conversation's): ``has`` [tag], ``has_any`` or
  ``has_none`` [list of tags]. Tags are compared trimmed and lowercase, as the store keeps
  them (at most 64 characters).
* ``language`` ``in`` [list of codes like ``en``, ``fr``, ``pt-br``]: ``pt`` matches ``pt``
  and ``pt-br``; ``pt-br`` matches ``pt-br`` only. Case and ``_``/``-`` do not matter.
* ``business_hours`` ``inside`` or ``outside`` [``{"timezone": "Europe/Paris", "days":
  ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:30"}``], read at the
  conversation's received time on the wall clock of that timezone (so 09:00 stays 09:00
  across daylight-saving changes). ``from`` is included and ``to`` is not; ``to`` may be
  ``24:00``. When ``to`` is before ``from`` the hours run past midnight and belong to the day
  they start on: ``fri`` 22:00-06:00 covers Friday night until Saturday 06:00.

Every text comparison ignores case, patterns included (``(?-i)`` turns that off). A pattern
is a regular expression (the ``regex`` module's syntax, a superset of Python's ``re``)
searched anywhere in the text (anchor it with ``^`` and ``$``), at most 300 characters. It is
refused on save if it does not compile, if it uses the ``(?x)`` or ``(?V1)`` flags, or if it
is too large once its counted repetitions are multiplied out (``(?:x{100}){100}`` counts as
10,000 items; a pattern may have 2,000 and a rule set's patterns 60,000 together), since
the compiler writes repetitions out. Conditions look at the first 64 KiB of each text. A
search that takes over 20 ms, or that would start after the evaluation's 100 ms for
patterns is spent, counts as no match and is reported in ``Outcome.errors``.

Actions, applied in order:

* ``require_skill``: ``skill`` (``inbox.types.SKILL_NAME``), ``level`` (1-10, default 1),
  optional ``relax_after_s``: the skill stops being required after that many seconds of
  waiting.
* ``relax_skill``: ``skill``, ``after_s``: a skill required earlier (by this rule or an earlier
  one) stops being required after ``after_s`` seconds; nothing if it was not required.
* ``set_priority``: ``priority`` (``low``, ``normal``, ``high``, ``urgent``).
* ``set_team``: ``team`` (a team name, 1-100 characters).
* ``add_tags``: ``tags`` (a list of tags).
* ``set_sla``: ``first_response_s`` (seconds).
* ``requeue_when_away`` (no other keys): an email or form this rule matches waits again
  for another agent when the agent holding it turns away or offline (chats always do).

Seconds are positive numbers of at most 30 days. Strings are 1-200 characters, lists 1-100
items (duplicates dropped); a rule has at most 20 conditions and 20 actions, a rule set at
most 200 rules.

Evaluation goes through the rules in order and skips disabled ones. Each rule whose
conditions all hold applies its actions: a later ``set_priority``, ``set_team`` or
``set_sla`` overrides an earlier one; tags add up; a skill required twice keeps the higher
level and the relax time set last (a ``require_skill`` without ``relax_after_s`` sets
"never"). A matching rule with ``"stop": true`` ends the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from inbox.types import MAX_SKILL_LEVEL, SKILL_NAME, Priority
from routing.core import SkillNeed
from routing.rule_conditions import (
    MAX_LIST_ITEMS,
    MAX_PATTERN_CHARS,
    MAX_PATTERN_SIZE,
    MAX_PATTERN_SIZE_PER_SET,
    MAX_STRING_CHARS,
    MAX_TAG_CHARS,
    MAX_TEXT_CHARS,
    Condition,
    Facts,
    RuleError,
    Scope,
    at,
    check_choice,
    check_list,
    check_object,
    check_seconds,
    check_string,
    check_strings,
    check_tag,
    kind,
    parse_condition,
    pattern_size,
)

__all__ = [
    "MAX_ACTIONS", "MAX_CONDITIONS", "MAX_LIST_ITEMS", "MAX_NAME_CHARS", "MAX_PATTERN_CHARS",
    "MAX_PATTERN_SIZE", "MAX_PATTERN_SIZE_PER_SET", "MAX_RULES", "MAX_SECONDS",
    "MAX_STRING_CHARS", "MAX_TAG_CHARS", "MAX_TEAM_CHARS", "MAX_TEXT_CHARS",
    "Action", "AddTags", "Condition", "Facts", "Outcome", "RelaxSkill", "RequireSkill", "Rule",
    "RuleError", "SetPriority", "SetSla", "SetTeam",
    "evaluate", "parse_rule", "parse_rules", "rule_to_json",
]  # fmt: skip

MAX_NAME_CHARS = 100
MAX_CONDITIONS = 20
MAX_ACTIONS = 20
MAX_RULES = 200
MAX_TEAM_CHARS = 100  # the store's team name column
MAX_SECONDS = 30 * 24 * 3600.0
_PRIORITIES = tuple(p.value for p in Priority)


# -- actions ----------------------------------------------------------------------------------


@dataclass
class _Tally:
    """What the matching rules decided so far."""

    needs: dict[str, SkillNeed] = field(default_factory=dict)
    priority: Priority | None = None
    team: str | None = None
    tags: set[str] = field(default_factory=set)
    first_response_s: float | None = None
    requeue_when_away: bool = False


@dataclass(frozen=True)
class RequireSkill:
    type: ClassVar[str] = "require_skill"
    keys: ClassVar[tuple[str, ...]] = ("skill",)
    optional: ClassVar[tuple[str, ...]] = ("level", "relax_after_s")
    skill: str
    level: int = 1
    relax_after_s: float | None = None

    @classmethod
    def parse(cls, obj: dict[str, object], path: str) -> RequireSkill:
        relax = obj.get("relax_after_s")
        return cls(
            _skill(obj["skill"], at(path, "skill")),
            _level(obj.get("level", 1), at(path, "level")),
            None if relax is None else _seconds(relax, at(path, "relax_after_s")),
        )

    def apply(self, tally: _Tally) -> None:
        known = tally.needs.get(self.skill)
        level = self.level if known is None else max(known.level, self.level)
        tally.needs[self.skill] = SkillNeed(self.skill, level, self.relax_after_s)

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"type": self.type, "skill": self.skill, "level": self.level}
        if self.relax_after_s is not None:
            shown["relax_after_s"] = _number(self.relax_after_s)
        return shown


@dataclass(frozen=True)
class RelaxSkill:
    type: ClassVar[str] = "relax_skill"
    keys: ClassVar[tuple[str, ...]] = ("skill", "after_s")
    optional: ClassVar[tuple[str, ...]] = ()
    skill: str
    after_s: float

    @classmethod
    def parse(cls, obj: dict[str, object], path: str) -> RelaxSkill:
        skill = _skill(obj["skill"], at(path, "skill"))
        return cls(skill, _seconds(obj["after_s"], at(path, "after_s")))

    def apply(self, tally: _Tally) -> None:
        known = tally.needs.get(self.skill)
        if known is not None:
            tally.needs[self.skill] = replace(known, relax_after_s=self.after_s)

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "skill": self.skill, "after_s": _number(self.after_s)}


@dataclass(frozen=True)
class SetPriority:
    type: ClassVar[str] = "set_priority"
    keys: ClassVar[tuple[str, ...]] = ("priority",)
    optional: ClassVar[tuple[str, ...]] = ()
    priority: Priority

    @classmethod
    def parse(cls, obj: dict[str, object], path: str) -> SetPriority:
        path = at(path, "priority")
        return cls(Priority(check_choice(obj["priority"], path, _PRIORITIES, "priority")))

    def apply(self, tally: _Tally) -> None:
        tally.priority = self.priority

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "priority": self.priority.value}


@dataclass(frozen=True)
class SetTeam:
    type: ClassVar[str] = "set_team"
    keys: ClassVar[tuple[str, ...]] = ("team",)
    optional: ClassVar[tuple[str, ...]] = ()
    team: str

    @classmethod
    def parse(cls, obj: dict[str, object], path: str) -> SetTeam:
        return cls(check_string(obj["team"], at(path, "team"), MAX_TEAM_CHARS))

    def apply(self, tally: _Tally) -> None:
        tally.team = self.team

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "team": self.team}


@dataclass(frozen=True)
class AddTags:
    type: ClassVar[str] = "add_tags"
    keys: ClassVar[tuple[str, ...]] = ("tags",)
    optional: ClassVar[tuple[str, ...]] = ()
    tags: tuple[str, ...]

    @classmethod
    def parse(cls, obj: dict[str, object], path: str) -> AddTags:
        return cls(check_strings(obj["tags"], at(path, "tags"), check_tag))

    def apply(self, tally: _Tally) -> None:
        tally.tags.update(self.tags)

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "tags": list(self.tags)}


@dataclass(frozen=True)
class SetSla:
    type: ClassVar[str] = "set_sla"
    keys: ClassVar[tuple[str, ...]] = ("first_response_s",)
    optional: ClassVar[tuple[str, ...]] = ()
    first_response_s: float

    @classmethod
    def parse(cls, obj: dict[str, object], path: str) -> SetSla:
        return cls(_seconds(obj["first_response_s"], at(path, "first_response_s")))

    def apply(self, tally: _Tally) -> None:
        tally.first_response_s = self.first_response_s

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "first_response_s": _number(self.first_response_s)}


@dataclass(frozen=True)
class RequeueWhenAway:
    type: ClassVar[str] = "requeue_when_away"
    keys: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parse(cls, obj: dict[str, object], path: str) -> RequeueWhenAway:
        return cls()

    def apply(self, tally: _Tally) -> None:
        tally.requeue_when_away = True

    def to_json(self) -> dict[str, object]:
        return {"type": self.type}


Action = RequireSkill | RelaxSkill | SetPriority | SetTeam | AddTags | SetSla | RequeueWhenAway
_ACTIONS: dict[str, type[Action]] = {
    cls.type: cls
    for cls in (RequireSkill, RelaxSkill, SetPriority, SetTeam, AddTags, SetSla, RequeueWhenAway)
}


def _parse_action(data: object, path: str) -> Action:
    if not isinstance(data, dict):
        raise RuleError(path, f"must be an object, not {kind(data)}")
    if "type" not in data:
        raise RuleError(at(path, "type"), "is required")
    action = _ACTIONS[check_choice(data["type"], at(path, "type"), tuple(_ACTIONS), "action")]
    return action.parse(check_object(data, path, ("type", *action.keys), action.optional), path)


def _number(seconds: float) -> int | float:
    return int(seconds) if seconds.is_integer() else seconds


def _seconds(value: object, path: str) -> float:
    return check_seconds(value, path, MAX_SECONDS)


def _skill(value: object, path: str) -> str:
    if not isinstance(value, str) or not SKILL_NAME.fullmatch(value):
        shown = repr(value)[:50] if isinstance(value, str) else kind(value)
        raise RuleError(
            path,
            f"{shown} is not a skill name: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 64 characters",
        )
    return value


def _level(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SKILL_LEVEL:
        raise RuleError(path, f"must be a whole number from 1 to {MAX_SKILL_LEVEL}")
    return value


# -- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A checked rule; build it with ``parse_rule``, which compiles its patterns once."""

    name: str
    conditions: tuple[Condition, ...] = ()
    actions: tuple[Action, ...] = ()
    enabled: bool = True
    stop: bool = False


def parse_rule(data: object) -> Rule:
    """A rule from its JSON; ``RuleError`` names the first thing wrong with it."""
    return _parse_rule(data, "")


def parse_rules(items: object) -> tuple[Rule, ...]:
    """An ordered rule set from a JSON list; error paths start with the rule's index."""
    if not isinstance(items, list):
        raise RuleError("", f"rules must be a list, not {kind(items)}")
    if len(items) > MAX_RULES:
        raise RuleError("", f"at most {MAX_RULES} rules")
    rules = tuple(_parse_rule(item, f"[{i}]") for i, item in enumerate(items))
    _check_pattern_total(rules)
    return rules


def rule_to_json(rule: Rule) -> dict[str, object]:
    """The canonical JSON of a rule: ``parse_rule(rule_to_json(rule)) == rule``."""
    return {
        "name": rule.name,
        "enabled": rule.enabled,
        "stop": rule.stop,
        "conditions": [condition.to_json() for condition in rule.conditions],
        "actions": [action.to_json() for action in rule.actions],
    }


def _parse_rule(data: object, path: str) -> Rule:
    if not isinstance(data, dict):
        raise RuleError(path, f"a rule must be an object, not {kind(data)}")
    obj = check_object(data, path, ("name", "actions"), ("enabled", "stop", "conditions"))
    name = check_string(obj["name"], at(path, "name"), MAX_NAME_CHARS).strip()
    if not name:
        raise RuleError(at(path, "name"), "must not be blank")
    enabled = _flag(obj.get("enabled", True), at(path, "enabled"))
    stop = _flag(obj.get("stop", False), at(path, "stop"))
    conditions_path = at(path, "conditions")
    conditions = check_list(obj.get("conditions", []), conditions_path, MAX_CONDITIONS, empty=True)
    actions_path = at(path, "actions")
    actions = check_list(obj["actions"], actions_path, MAX_ACTIONS, empty=True)
    if not actions and not stop:
        raise RuleError(actions_path, 'a rule needs at least one action, or "stop": true')
    return Rule(
        name,
        tuple(parse_condition(c, at(conditions_path, i)) for i, c in enumerate(conditions)),
        tuple(_parse_action(a, at(actions_path, i)) for i, a in enumerate(actions)),
        enabled,
        stop,
    )


def _check_pattern_total(rules: tuple[Rule, ...]) -> None:
    total = 0
    for i, rule in enumerate(rules):
        for j, condition in enumerate(rule.conditions):
            if condition.op == "matches" and isinstance(condition.value, str):
                total += pattern_size(condition.value)
                if total > MAX_PATTERN_SIZE_PER_SET:
                    raise RuleError(
                        f"[{i}].conditions[{j}].value",
                        "makes the rule set's patterns too large together: shorten or remove "
                        f"some (at most {MAX_PATTERN_SIZE_PER_SET} items, repetitions counted)",
                    )


def _flag(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise RuleError(path, f"must be true or false, not {kind(value)}")
    return value


# -- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the rules decided for one conversation."""

    needs: tuple[SkillNeed, ...]  # one per skill, sorted by skill
    priority: Priority | None
    team: str | None
    tags: frozenset[str]  # added by the rules
    first_response_s: float | None
    matched: tuple[int, ...]  # indexes of the rules that applied, in order
    errors: tuple[str, ...]  # patterns that ran out of time, naming their rule
    requeue_when_away: bool = False  # email/form waits again if its agent goes away


def evaluate(rules: Sequence[Rule], facts: Facts) -> Outcome:
    """Apply ``rules`` in order to one conversation."""
    scope = Scope(facts)
    tally = _Tally()
    matched = []
    for index, rule in enumerate(rules):
        if not rule.enabled:
            continue
        scope.rule_index, scope.rule_name = index, rule.name
        if not _holds(rule, scope):
            continue
        matched.append(index)
        for action in rule.actions:
            action.apply(tally)
        if rule.stop:
            break
    return Outcome(
        needs=tuple(tally.needs[skill] for skill in sorted(tally.needs)),
        priority=tally.priority,
        team=tally.team,
        tags=frozenset(tally.tags),
        first_response_s=tally.first_response_s,
        requeue_when_away=tally.requeue_when_away,
        matched=tuple(matched),
        errors=tuple(scope.errors),
    )


def _holds(rule: Rule, scope: Scope) -> bool:
    for condition in rule.conditions:
        if not condition.test(scope):
            return False
    return True
