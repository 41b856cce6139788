"""Supervisor rules on plain data: each condition true and false, each action, the order of
rules, refusals with the exact path a supervisor is shown, patterns that would hang or
blow up, business hours across midnight and daylight-saving changes, and canonical JSON
that round-trips for any valid rule."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.types import Channel, Priority
from routing.core import SkillNeed
from routing.rules import (
    MAX_RULES,
    Facts,
    Outcome,
    RuleError,
    evaluate,
    parse_rule,
    parse_rules,
    rule_to_json,
)

MONDAY_NOON_PARIS = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
HIT = {"type": "add_tags", "tags": ["hit"]}


def facts(**changes: Any) -> Facts:
    base = Facts(
        channel=Channel.EMAIL,
        source="support@example.com",
        subject="Invoice question",
        body="Hello, my invoice is wrong.",
        contact_email="Ana@Example.COM",
        contact_name="Ana Lima",
        contact_tags=frozenset({"vip"}),
        tags=frozenset({"billing"}),
        language="pt-BR",
        received_at=MONDAY_NOON_PARIS,
    )
    return replace(base, **changes)


def rule(*conditions: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return {"name": "r", "conditions": list(conditions), "actions": [HIT], **keys}


def run(rules: list[dict[str, Any]], **changes: Any) -> Outcome:
    return evaluate(parse_rules(rules), facts(**changes))


def holds(condition: dict[str, Any], **changes: Any) -> bool:
    outcome = run([rule(condition)], **changes)
    assert outcome.errors == ()
    return outcome.matched == (0,)


def cond(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def paris_hours(days: list[str], start: str, end: str) -> dict[str, Any]:
    return {"timezone": "Europe/Paris", "days": days, "from": start, "to": end}


# -- conditions -------------------------------------------------------------------------------

CONDITIONS = [
    (cond("channel", "in", ["email", "form"]), {}, True),
    (cond("channel", "in", ["chat"]), {}, False),
    (cond("channel", "in", ["chat"]), {"channel": Channel.CHAT}, True),
    (cond("source", "equals", "SUPPORT@example.com"), {}, True),
    (cond("source", "equals", "sales@example.com"), {}, False),
    (cond("source", "equals", "support@example.com"), {"source": None}, False),
    (cond("source", "in", ["contact-form", "support@example.com"]), {}, True),
    (cond("source", "in", ["contact-form"]), {}, False),
    (cond("subject", "contains", "INVOICE"), {}, True),
    (cond("subject", "contains", "refund"), {}, False),
    (cond("subject", "matches", r"^invoice\b"), {}, True),
    (cond("subject", "matches", r"^question"), {}, False),
    (cond("subject", "matches", r"(?-i)^invoice"), {}, False),
    (cond("body", "contains", "invoice is WRONG"), {}, True),
    (cond("body", "contains", "refund"), {}, False),
    (cond("body", "matches", r"invoice\s+is"), {}, True),
    (cond("body", "matches", r"\d{4}"), {}, False),
    (cond("contact.email", "equals", "ana@example.com"), {}, True),
    (cond("contact.email", "equals", "bob@example.com"), {}, False),
    (cond("contact.email", "contains", "ana@"), {}, True),
    (cond("contact.email", "contains", "bob@"), {}, False),
    (cond("contact.email", "ends_with", "@example.com"), {}, True),
    (cond("contact.email", "ends_with", "@example.org"), {}, False),
    (cond("contact.email", "matches", r"^ana@"), {}, True),
    (cond("contact.email", "matches", r"^bob@"), {}, False),
    (cond("contact.email", "contains", "@"), {"contact_email": None}, False),
    (cond("contact.email", "matches", "."), {"contact_email": None}, False),
    (cond("contact.domain", "equals", "example.com"), {}, True),
    (cond("contact.domain", "equals", "example.org"), {}, False),
    (cond("contact.domain", "contains", "AMPLE"), {}, True),
    (cond("contact.domain", "ends_with", ".example.com"), {}, False),
    (
        cond("contact.domain", "ends_with", ".example.com"),
        {"contact_email": "x@eu.example.com"},
        True,
    ),
    (cond("contact.domain", "matches", r"^example\.(com|org)$"), {}, True),
    (cond("contact.domain", "matches", r"^example\.org$"), {}, False),
    (cond("contact.domain", "contains", "a"), {"contact_email": "no-at-sign"}, False),
    (cond("contact.name", "equals", "ana lima"), {}, True),
    (cond("contact.name", "equals", "ana"), {}, False),
    (cond("contact.name", "contains", "LIM"), {}, True),
    (cond("contact.name", "ends_with", "lima"), {}, True),
    (cond("contact.name", "ends_with", "ana"), {}, False),
    (cond("contact.name", "matches", r"^ana\s"), {}, True),
    (cond("contact.name", "matches", r"^bob"), {}, False),
    (cond("contact.name", "contains", "a"), {"contact_name": None}, False),
    (cond("contact.tags", "has", " VIP "), {}, True),
    (cond("contact.tags", "has", "gold"), {}, False),
    (cond("contact.tags", "has_any", ["gold", "vip"]), {}, True),
    (cond("contact.tags", "has_any", ["gold"]), {}, False),
    (cond("contact.tags", "has_none", ["gold"]), {}, True),
    (cond("contact.tags", "has_none", ["gold", "vip"]), {}, False),
    (cond("contact.tags", "has", "vip"), {"contact_tags": frozenset({"VIP"})}, True),
    (cond("tags", "has", "billing"), {}, True),
    (cond("tags", "has", "vip"), {}, False),
    (cond("tags", "has_any", ["billing", "refund"]), {}, True),
    (cond("tags", "has_any", ["refund"]), {}, False),
    (cond("tags", "has_none", ["refund"]), {}, True),
    (cond("tags", "has_none", ["refund", "billing"]), {}, False),
    (cond("language", "in", ["pt"]), {}, True),
    (cond("language", "in", ["PT_BR"]), {}, True),
    (cond("language", "in", ["pt-pt", "en"]), {}, False),
    (cond("language", "in", ["pt-br"]), {"language": "pt"}, False),
    (cond("language", "in", ["pt"]), {"language": "ptx"}, False),
    (cond("language", "in", ["en"]), {"language": None}, False),
    (cond("business_hours", "inside", paris_hours(["mon"], "09:00", "17:30")), {}, True),
    (cond("business_hours", "outside", paris_hours(["mon"], "09:00", "17:30")), {}, False),
    (cond("business_hours", "inside", paris_hours(["tue"], "09:00", "17:30")), {}, False),
    (cond("business_hours", "outside", paris_hours(["tue"], "09:00", "17:30")), {}, True),
    (cond("business_hours", "inside", paris_hours(["mon"], "13:00", "17:30")), {}, False),
]


@pytest.mark.parametrize(("condition", "changes", "expected"), CONDITIONS)
def test_condition(condition: dict[str, Any], changes: dict[str, Any], expected: bool) -> None:
    assert holds(condition, **changes) is expected


def test_all_conditions_must_hold() -> None:
    channel = cond("channel", "in", ["email"])
    assert holds(channel)
    outcome = run([rule(channel, cond("tags", "has", "vip"))])
    assert outcome.matched == ()


def test_a_rule_without_conditions_matches_everything() -> None:
    assert run([rule()]).matched == (0,)


def test_text_beyond_64_kib_is_not_looked_at() -> None:
    early = "x" * 60_000 + "needle"
    late = "x" * 70_000 + "needle"
    for op, value in (("contains", "needle"), ("matches", "needle")):
        assert holds(cond("body", op, value), body=early)
        assert not holds(cond("body", op, value), body=late)


# -- business hours ---------------------------------------------------------------------------


def at_utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


WEEKDAYS = paris_hours(["mon", "tue", "wed", "thu", "fri"], "09:00", "17:30")


@pytest.mark.parametrize(
    ("received", "inside"),
    [
        # Friday 29 March 2024, Paris on CET (UTC+1).
        (at_utc(2024, 3, 29, 7, 59), False),  # 08:59
        (at_utc(2024, 3, 29, 8, 0), True),  # 09:00, opening included
        (at_utc(2024, 3, 29, 16, 29), True),  # 17:29
        (at_utc(2024, 3, 29, 16, 30), False),  # 17:30, closing excluded
        # Clocks go forward on Sunday 31 March; Monday 1 April is on CEST (UTC+2).
        (at_utc(2024, 4, 1, 6, 59), False),  # 08:59
        (at_utc(2024, 4, 1, 7, 0), True),  # 09:00
        (at_utc(2024, 4, 1, 15, 29), True),  # 17:29
        (at_utc(2024, 4, 1, 15, 30), False),  # 17:30
        (at_utc(2024, 3, 31, 10, 0), False),  # Sunday
    ],
)
def test_business_hours_follow_the_wall_clock_across_dst(received: datetime, inside: bool) -> None:
    assert holds(cond("business_hours", "inside", WEEKDAYS), received_at=received) is inside
    assert holds(cond("business_hours", "outside", WEEKDAYS), received_at=received) is not inside


NIGHTS = paris_hours(["fri"], "22:00", "06:00")


@pytest.mark.parametrize(
    ("received", "inside"),
    [
        # June 2024: Paris on CEST (UTC+2). Friday 7, Saturday 8.
        (at_utc(2024, 6, 7, 19, 59), False),  # Friday 21:59
        (at_utc(2024, 6, 7, 20, 0), True),  # Friday 22:00
        (at_utc(2024, 6, 7, 22, 30), True),  # Saturday 00:30, still Friday's night
        (at_utc(2024, 6, 8, 3, 59), True),  # Saturday 05:59
        (at_utc(2024, 6, 8, 4, 0), False),  # Saturday 06:00
        (at_utc(2024, 6, 8, 20, 0), False),  # Saturday 22:00: Saturday is not listed
        (at_utc(2024, 6, 7, 1, 0), False),  # Friday 03:00 belongs to Thursday's night
    ],
)
def test_business_hours_across_midnight(received: datetime, inside: bool) -> None:
    assert holds(cond("business_hours", "inside", NIGHTS), received_at=received) is inside


@pytest.mark.parametrize(
    ("received", "inside"),
    [
        # Clocks go back at 03:00 CEST on Sunday 27 October 2024: 02:00-03:00 happens twice.
        (at_utc(2024, 10, 26, 19, 59), False),  # Saturday 21:59 CEST
        (at_utc(2024, 10, 26, 20, 0), True),  # Saturday 22:00 CEST
        (at_utc(2024, 10, 27, 0, 30), True),  # Sunday 02:30 CEST
        (at_utc(2024, 10, 27, 1, 30), True),  # Sunday 02:30 CET, the second time
        (at_utc(2024, 10, 27, 4, 59), True),  # Sunday 05:59 CET
        (at_utc(2024, 10, 27, 5, 0), False),  # Sunday 06:00 CET (07:00 on yesterday's offset)
    ],
)
def test_business_hours_across_midnight_and_a_dst_change(received: datetime, inside: bool) -> None:
    saturday_nights = paris_hours(["sat"], "22:00", "06:00")
    assert holds(cond("business_hours", "inside", saturday_nights), received_at=received) is inside


def test_business_hours_until_24_00_cover_the_end_of_the_day() -> None:
    whole_saturday = cond("business_hours", "inside", paris_hours(["sat"], "00:00", "24:00"))
    assert holds(whole_saturday, received_at=at_utc(2024, 6, 8, 21, 59))  # Saturday 23:59
    assert not holds(whole_saturday, received_at=at_utc(2024, 6, 8, 22, 0))  # Sunday 00:00
    assert holds(whole_saturday, received_at=at_utc(2024, 6, 7, 22, 0))  # Saturday 00:00


def test_facts_need_an_aware_received_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        facts(received_at=datetime(2024, 6, 3, 10, 0))


# -- actions and the order of rules -----------------------------------------------------------


def acting(*actions: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return {"name": "r", "actions": list(actions), **keys}


def test_require_skill_defaults_and_relax_time() -> None:
    outcome = run(
        [
            acting(
                {"type": "require_skill", "skill": "spanish"},
                {"type": "require_skill", "skill": "billing", "level": 3, "relax_after_s": 120},
            )
        ]
    )
    assert outcome.needs == (SkillNeed("billing", 3, 120.0), SkillNeed("spanish", 1, None))


def test_the_same_skill_keeps_the_higher_level_and_the_last_relax_time() -> None:
    outcome = run(
        [
            acting({"type": "require_skill", "skill": "billing", "level": 4, "relax_after_s": 60}),
            acting({"type": "require_skill", "skill": "billing", "level": 2, "relax_after_s": 300}),
        ]
    )
    assert outcome.needs == (SkillNeed("billing", 4, 300.0),)
    strict_last = run(
        [
            acting({"type": "require_skill", "skill": "billing", "relax_after_s": 60}),
            acting({"type": "require_skill", "skill": "billing", "level": 2}),
        ]
    )
    assert strict_last.needs == (SkillNeed("billing", 2, None),)


def test_relax_skill_relaxes_a_skill_required_earlier_only() -> None:
    outcome = run(
        [
            acting({"type": "relax_skill", "skill": "billing", "after_s": 30}),  # not yet required
            acting({"type": "require_skill", "skill": "billing", "level": 2}),
            acting({"type": "relax_skill", "skill": "billing", "after_s": 90}),
            acting({"type": "relax_skill", "skill": "french", "after_s": 90}),
        ]
    )
    assert outcome.needs == (SkillNeed("billing", 2, 90.0),)
    assert outcome.matched == (0, 1, 2, 3)


def test_scalar_actions_are_overridden_by_later_rules() -> None:
    outcome = run(
        [
            acting(
                {"type": "set_priority", "priority": "high"},
                {"type": "set_team", "team": "Billing"},
                {"type": "set_sla", "first_response_s": 3600},
            ),
            acting(
                {"type": "set_priority", "priority": "urgent"},
                {"type": "set_sla", "first_response_s": 900.5},
            ),
        ]
    )
    assert outcome.priority is Priority.URGENT
    assert outcome.team == "Billing"
    assert outcome.first_response_s == 900.5


def test_tags_accumulate() -> None:
    outcome = run(
        [
            acting({"type": "add_tags", "tags": ["VIP", "billing"]}),
            acting({"type": "add_tags", "tags": ["late"]}),
        ]
    )
    assert outcome.tags == frozenset({"vip", "billing", "late"})


def test_nothing_matches_an_empty_rule_set() -> None:
    assert run([]) == Outcome((), None, None, frozenset(), None, (), ())


def test_stop_ends_evaluation_only_when_its_rule_matches() -> None:
    team = {"type": "set_team", "team": "A"}
    later = {"type": "set_team", "team": "B"}
    chat_only = cond("channel", "in", ["chat"])
    outcome = run([acting(team, stop=True), acting(later)])
    assert (outcome.team, outcome.matched) == ("A", (0,))
    outcome = run([acting(team, stop=True, conditions=[chat_only]), acting(later)])
    assert (outcome.team, outcome.matched) == ("B", (1,))


def test_a_rule_may_only_stop() -> None:
    outcome = run([acting(stop=True), acting({"type": "set_team", "team": "B"})])
    assert (outcome.team, outcome.matched) == (None, (0,))


def test_disabled_rules_are_skipped() -> None:
    outcome = run(
        [
            acting({"type": "set_team", "team": "A"}, enabled=False, stop=True),
            acting({"type": "add_tags", "tags": ["x"]}),
        ]
    )
    assert (outcome.team, outcome.tags, outcome.matched) == (None, frozenset({"x"}), (1,))


# -- patterns that could hang or blow up ------------------------------------------------------


def test_nested_quantifier_returns_promptly() -> None:
    started = time.monotonic()
    outcome = run([rule(cond("subject", "matches", "(a+)+$"))], subject="a" * 50 + "!")
    assert time.monotonic() - started < 1.0
    assert outcome.matched == ()


def test_catastrophic_pattern_times_out_as_no_match_with_an_error() -> None:
    hang = rule(cond("subject", "matches", "(a|aa)+$"), name="Hang")
    started = time.monotonic()
    outcome = run([hang, rule()], subject="a" * 50 + "!")
    assert time.monotonic() - started < 1.0
    assert outcome.matched == (1,)
    (error,) = outcome.errors
    assert error.startswith("rule 0 ('Hang'): subject matches '(a|aa)+$' took over")


def test_one_evaluation_spends_a_bounded_time_on_patterns() -> None:
    hang = rule(cond("body", "matches", "(a|aa)+$"))
    started = time.monotonic()
    outcome = run([hang] * 40, body="a" * 50 + "!")
    assert time.monotonic() - started < 1.0
    assert len(outcome.errors) == 40
    assert "was skipped" in outcome.errors[-1]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(", "is not a valid regular expression: missing ) (at character 2)"),
        ("a**", "is not a valid regular expression: multiple repeat"),
        (r"\p{Nonexistent}", "is not a valid regular expression: unknown property"),
        ("(?:x{1000}){1000}", "too large once its counted repetitions"),
        ("(?:[ab]{100}){200}", "too large once its counted repetitions"),
        ("x{1000000}", "1000000 items, at most 2000"),
        ("x{2001}", "2001 items, at most 2000"),
        ("(?:x{100})(?#c){100}", "too large"),  # a comment is invisible to the repeat
        (r"(?:x{100}[)]){100}", "too large"),
        (r"(?:x{100}\)){100}", "too large"),
        ("(?:x{100}[[:alpha:])]){100}", "too large"),
        ("(?:x{100}[[:Script=Latin:])]){100}", "too large"),
        (r"(?:x{100}(?#\))y){100}", "too large"),
        ("(?x)a", "not supported"),
        ("(?V1)[[a]--[b]]", "not supported"),
        ("a" * 301, "at most 300 characters"),
    ],
)
def test_bad_patterns_are_refused_on_save(pattern: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(RuleError) as refused:
        parse_rule(rule(cond("subject", "matches", pattern)))
    assert time.monotonic() - started < 1.0
    assert refused.value.path == "conditions[0].value"
    assert message in refused.value.message


@pytest.mark.parametrize(
    "pattern",
    [
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        r"\b(?:\d{4}[ -]?){3}\d{4}\b",
        r".{0,200}refund.{0,200}",
        r"[[:alpha:]]{2}\d{9}[A-Z]{2}",
        r"\{\d+\}",
        "x{2000}",
    ],
)
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    parse_rule(rule(cond("subject", "matches", pattern)))


# -- refusals ---------------------------------------------------------------------------------

SKILL = {"type": "require_skill", "skill": "billing"}


def with_condition(value: Any, field: str = "subject", op: str = "contains") -> dict[str, Any]:
    return rule(cond(field, op, value))


def with_action(**keys: Any) -> dict[str, Any]:
    return {"name": "r", "actions": [keys]}


def with_hours(**changes: Any) -> dict[str, Any]:
    return rule(cond("business_hours", "inside", {**WEEKDAYS, **changes}))


REFUSALS = [
    ([], "", "a rule must be an object, not a list"),
    ({"actions": [HIT]}, "name", "is required"),
    ({"name": "r"}, "actions", "is required"),
    ({"name": "r", "actions": [HIT], "nmae": "x"}, "nmae", "unknown key"),
    ({"name": 5, "actions": [HIT]}, "name", "must be a string, not a number"),
    ({"name": "", "actions": [HIT]}, "name", "must not be empty"),
    ({"name": "   ", "actions": [HIT]}, "name", "must not be blank"),
    ({"name": "x" * 101, "actions": [HIT]}, "name", "at most 100 characters"),
    ({"name": "a\x00b", "actions": [HIT]}, "name", "NUL"),
    ({"name": "r", "actions": [HIT], "enabled": "yes"}, "enabled", "must be true or false"),
    ({"name": "r", "actions": [HIT], "stop": 1}, "stop", "must be true or false"),
    ({"name": "r", "actions": []}, "actions", 'at least one action, or "stop": true'),
    ({"name": "r", "actions": {}}, "actions", "must be a list, not an object"),
    ({"name": "r", "actions": [HIT] * 21}, "actions", "at most 20 items"),
    (rule(conditions="subject"), "conditions", "must be a list, not a string"),
    (rule(*[cond("tags", "has", "x")] * 21), "conditions", "at most 20 items"),
    (
        {"name": "r", "conditions": ["subject"], "actions": [HIT]},
        "conditions[0]",
        "must be an object, not a string",
    ),
    (rule({"field": "subject", "op": "contains"}), "conditions[0].value", "is required"),
    (
        rule({"field": "subject", "op": "contains", "valeu": "x"}),
        "conditions[0].valeu",
        "unknown key",
    ),
    (rule(cond("priority", "in", ["high"])), "conditions[0].field", "unknown field 'priority'"),
    (
        rule(cond("subject", "equals", "x")),
        "conditions[0].op",
        "'equals' does not apply to subject",
    ),
    (
        rule({"field": "subject", "op": None, "value": "x"}),
        "conditions[0].op",
        "null does not apply to subject",
    ),
    (
        with_condition(["email", "sms"], "channel", "in"),
        "conditions[0].value[1]",
        "unknown channel 'sms'",
    ),
    (with_condition([], "channel", "in"), "conditions[0].value", "must not be empty"),
    (
        with_condition("email", "channel", "in"),
        "conditions[0].value",
        "must be a list, not a string",
    ),
    (with_condition(["s"] * 101, "source", "in"), "conditions[0].value", "at most 100 items"),
    (with_condition(["ok", 7], "source", "in"), "conditions[0].value[1]", "must be a string"),
    (with_condition("x" * 201), "conditions[0].value", "at most 200 characters"),
    (with_condition(5), "conditions[0].value", "must be a string, not a number"),
    (with_condition(""), "conditions[0].value", "must not be empty"),
    (with_condition(True, "contact.email", "equals"), "conditions[0].value", "not true/false"),
    (
        with_condition(["en", "english"], "language", "in"),
        "conditions[0].value[1]",
        "not a language code",
    ),
    (with_condition("   ", "tags", "has"), "conditions[0].value", "must not be blank"),
    (with_condition("x" * 65, "contact.tags", "has"), "conditions[0].value", "at most 64"),
    (with_condition(["a", ""], "tags", "has_any"), "conditions[0].value[1]", "must not be empty"),
    (with_condition("a", "tags", "has_none"), "conditions[0].value", "must be a list"),
    (with_condition("9-5", "business_hours", "inside"), "conditions[0].value", "must be an object"),
    (with_hours(timezone="Mars/Olympus"), "conditions[0].value.timezone", "unknown timezone"),
    (with_hours(timezone="../../etc/passwd"), "conditions[0].value.timezone", "unknown timezone"),
    (with_hours(timezone="Europe"), "conditions[0].value.timezone", "unknown timezone"),
    (with_hours(timezone="localtime"), "conditions[0].value.timezone", "unknown timezone"),
    (with_hours(days=["mon", "funday"]), "conditions[0].value.days[1]", "unknown day 'funday'"),
    (with_hours(days=[]), "conditions[0].value.days", "must not be empty"),
    (with_hours(**{"from": "9:00"}), "conditions[0].value.from", "HH:MM, from 00:00 to 23:59"),
    (with_hours(**{"from": "24:00"}), "conditions[0].value.from", "HH:MM"),
    (with_hours(to="24:01"), "conditions[0].value.to", "HH:MM, from 00:00 to 24:00"),
    (with_hours(to=1730), "conditions[0].value.to", "HH:MM"),
    (with_hours(to="09:00"), "conditions[0].value.to", 'must differ from "from"'),
    (with_hours(tz="UTC"), "conditions[0].value.tz", "unknown key"),
    ({"name": "r", "actions": ["tag"]}, "actions[0]", "must be an object, not a string"),
    (with_action(skill="billing"), "actions[0].type", "is required"),
    (with_action(type="assign"), "actions[0].type", "unknown action 'assign'"),
    (with_action(type="require_skill"), "actions[0].skill", "is required"),
    (with_action(type="require_skill", skill="Billing"), "actions[0].skill", "is not a skill name"),
    (
        with_action(type="require_skill", skill="billing\n"),
        "actions[0].skill",
        "is not a skill name",
    ),
    (with_action(type="require_skill", skill="b" * 65), "actions[0].skill", "is not a skill name"),
    (with_action(type="require_skill", skill=3), "actions[0].skill", "a number is not a skill"),
    (with_action(**SKILL, level=0), "actions[0].level", "whole number from 1 to 10"),
    (with_action(**SKILL, level=11), "actions[0].level", "whole number from 1 to 10"),
    (with_action(**SKILL, level=2.0), "actions[0].level", "whole number"),
    (with_action(**SKILL, level=True), "actions[0].level", "whole number"),
    (with_action(**SKILL, relax_after_s=0), "actions[0].relax_after_s", "more than 0"),
    (with_action(**SKILL, relax_after_s=-5), "actions[0].relax_after_s", "more than 0"),
    (with_action(**SKILL, relax_after_s=float("nan")), "actions[0].relax_after_s", "more than 0"),
    (with_action(**SKILL, relax_after_s=float("inf")), "actions[0].relax_after_s", "more than 0"),
    (with_action(**SKILL, relax_after_s=10**400), "actions[0].relax_after_s", "at most"),
    (with_action(**SKILL, level=10**400), "actions[0].level", "whole number"),
    (with_action(**SKILL, relax_after_s="60"), "actions[0].relax_after_s", "not a string"),
    (with_action(**SKILL, relax_after_s=30 * 86400 + 1), "actions[0].relax_after_s", "at most"),
    (with_action(**SKILL, priority="high"), "actions[0].priority", "unknown key"),
    (with_action(type="relax_skill", skill="billing"), "actions[0].after_s", "is required"),
    (
        with_action(type="set_priority", priority="critical"),
        "actions[0].priority",
        "unknown priority",
    ),
    (
        with_action(type="set_priority", priority=2),
        "actions[0].priority",
        "unknown priority a number",
    ),
    (with_action(type="set_team", team=""), "actions[0].team", "must not be empty"),
    (with_action(type="set_team", team="t" * 101), "actions[0].team", "at most 100"),
    (with_action(type="add_tags", tags=[]), "actions[0].tags", "must not be empty"),
    (with_action(type="add_tags", tags=["ok", 5]), "actions[0].tags[1]", "must be a string"),
    (with_action(type="set_sla", first_response_s=0), "actions[0].first_response_s", "more than 0"),
    (
        with_action(type="set_sla", first_response_s=31 * 86400),
        "actions[0].first_response_s",
        "at most",
    ),
    (with_action(type="set_sla", first_response_s=None), "actions[0].first_response_s", "not null"),
]


@pytest.mark.parametrize(("data", "path", "message"), REFUSALS)
def test_refusal(data: object, path: str, message: str) -> None:
    with pytest.raises(RuleError) as refused:
        parse_rule(data)
    assert refused.value.path == path
    assert message in refused.value.message
    assert str(refused.value) == (f"{path}: " if path else "") + refused.value.message


def test_rule_errors_are_value_errors() -> None:
    assert issubclass(RuleError, ValueError)


@pytest.mark.parametrize(
    ("items", "path", "message"),
    [
        ({"name": "r"}, "", "rules must be a list, not an object"),
        ([rule()] * (MAX_RULES + 1), "", f"at most {MAX_RULES} rules"),
        ([rule(), with_action(type="require_skill", skill="Bad")], "[1].actions[0].skill", "skill"),
        ([rule(), rule(), rule(cond("a", "in", []))], "[2].conditions[0].field", "unknown field"),
        ([rule(), 3], "[1]", "a rule must be an object"),
    ],
)
def test_rule_set_refusal(items: object, path: str, message: str) -> None:
    with pytest.raises(RuleError) as refused:
        parse_rules(items)
    assert refused.value.path == path
    assert message in refused.value.message


def test_a_full_rule_set_is_accepted() -> None:
    assert len(parse_rules([rule()] * MAX_RULES)) == MAX_RULES


def test_the_patterns_of_a_rule_set_are_bounded_together() -> None:
    big = rule(*[cond("body", "matches", f"x{{1000}}{i}") for i in range(20)])  # 20 * 1001
    assert len(parse_rules([big, big])) == 2
    with pytest.raises(RuleError) as refused:
        parse_rules([big, big, big])
    assert refused.value.path == "[2].conditions[19].value"
    assert "too large together" in refused.value.message


# -- canonical JSON ---------------------------------------------------------------------------


def test_canonical_json() -> None:
    parsed = parse_rule(
        {
            "name": "  VIP billing ",
            "conditions": [
                cond("language", "in", ["PT_br", "pt-BR", "en"]),
                cond(
                    "business_hours",
                    "outside",
                    paris_hours(["fri", "mon", "fri"], "22:00", "06:00"),
                ),
            ],
            "actions": [
                {"type": "require_skill", "skill": "billing"},
                {"type": "set_sla", "first_response_s": 1800.0},
                {"type": "add_tags", "tags": [" VIP", "vip", "Late"]},
            ],
        }
    )
    assert rule_to_json(parsed) == {
        "name": "VIP billing",
        "enabled": True,
        "stop": False,
        "conditions": [
            cond("language", "in", ["pt-br", "en"]),
            cond("business_hours", "outside", paris_hours(["mon", "fri"], "22:00", "06:00")),
        ],
        "actions": [
            {"type": "require_skill", "skill": "billing", "level": 1},
            {"type": "set_sla", "first_response_s": 1800},
            {"type": "add_tags", "tags": ["vip", "late"]},
        ],
    }
    assert '"first_response_s": 1800}' in json.dumps(rule_to_json(parsed))  # not 1800.0


PATTERNS = [
    "^invoice",
    r"\border\s*#?\d{4,8}\b",
    "(?-i)URGENT",
    r"r[eé]embolso|refund",
    r"^\S+@\S+$",
]
SECONDS = st.integers(1, 30 * 86400) | st.floats(0.001, 30 * 86400.0)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=200)
TAG = TEXT.filter(lambda t: t.strip() != "" and len(t.strip().lower()) <= 64)
NAME = TEXT.filter(lambda t: t.strip() != "" and len(t) <= 100)
CLOCK = st.from_regex(r"([01][0-9]|2[0-3]):[0-5][0-9]", fullmatch=True)
LANGUAGE = st.from_regex(r"[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{1,8}){0,2}", fullmatch=True)
DAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def lists(items: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(items, min_size=1, max_size=4)


def conditions_of(field: str, ops: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.sampled_from(sorted(ops)).flatmap(
        lambda op: ops[op].map(lambda value: cond(field, op, value))
    )


TEXT_OPS = {
    "equals": TEXT,
    "contains": TEXT,
    "ends_with": TEXT,
    "matches": st.sampled_from(PATTERNS),
}
TAG_OPS = {"has": TAG, "has_any": lists(TAG), "has_none": lists(TAG)}
HOURS = st.builds(
    lambda zone, days, start, end: {"timezone": zone, "days": days, "from": start, "to": end},
    st.sampled_from(["UTC", "Europe/Paris", "America/Sao_Paulo", "Asia/Kolkata"]),
    lists(st.sampled_from(DAY_NAMES)),
    CLOCK,
    CLOCK | st.just("24:00"),
).filter(lambda hours: hours["from"] != hours["to"])
CONDITION = st.one_of(
    conditions_of("channel", {"in": lists(st.sampled_from(["email", "chat", "form"]))}),
    conditions_of("source", {"in": lists(TEXT), "equals": TEXT}),
    conditions_of("subject", {"contains": TEXT, "matches": st.sampled_from(PATTERNS)}),
    conditions_of("body", {"contains": TEXT, "matches": st.sampled_from(PATTERNS)}),
    conditions_of("contact.email", TEXT_OPS),
    conditions_of("contact.name", TEXT_OPS),
    conditions_of("contact.domain", TEXT_OPS),
    conditions_of("contact.tags", TAG_OPS),
    conditions_of("tags", TAG_OPS),
    conditions_of("language", {"in": lists(LANGUAGE)}),
    conditions_of("business_hours", {"inside": HOURS, "outside": HOURS}),
)
SKILL_NAMES = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)
ACTION = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("require_skill"), "skill": SKILL_NAMES},
        optional={"level": st.integers(1, 10), "relax_after_s": SECONDS},
    ),
    st.fixed_dictionaries(
        {"type": st.just("relax_skill"), "skill": SKILL_NAMES, "after_s": SECONDS}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("set_priority"),
            "priority": st.sampled_from(["low", "normal", "high", "urgent"]),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("set_team"), "team": TEXT.filter(lambda t: len(t) <= 100)}
    ),
    st.fixed_dictionaries({"type": st.just("add_tags"), "tags": lists(TAG)}),
    st.fixed_dictionaries({"type": st.just("set_sla"), "first_response_s": SECONDS}),
)
RULE = st.fixed_dictionaries(
    {"name": NAME, "actions": st.lists(ACTION, min_size=1, max_size=5)},
    optional={
        "enabled": st.booleans(),
        "stop": st.booleans(),
        "conditions": st.lists(CONDITION, max_size=5),
    },
)


@settings(max_examples=300, deadline=None)
@given(RULE)
def test_canonical_json_round_trips(data: dict[str, Any]) -> None:
    parsed = parse_rule(data)
    canonical = rule_to_json(parsed)
    stored = json.loads(json.dumps(canonical))
    assert parse_rule(stored) == parsed
    assert rule_to_json(parse_rule(stored)) == canonical


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            ("channel", "in"),
            ("source", "equals"),
            ("subject", "matches"),
            ("contact.domain", "ends_with"),
            ("tags", "has"),
            ("tags", "has_none"),
            ("language", "in"),
            ("business_hours", "inside"),
        ]
    ),
    JSON,
    st.sampled_from(
        ["require_skill", "relax_skill", "set_priority", "set_team", "add_tags", "set_sla"]
    ),
    st.sampled_from(
        [
            "skill",
            "level",
            "relax_after_s",
            "after_s",
            "priority",
            "team",
            "tags",
            "first_response_s",
        ]
    ),
    JSON,
)
def test_any_json_is_parsed_or_refused_never_crashed_on(
    field_op: tuple[str, str], value: object, action: str, key: str, action_value: object
) -> None:
    for data in (
        value,
        rule(cond(*field_op, value)),
        rule(cond("business_hours", "inside", {**WEEKDAYS, "days": value})),
        with_action(type=action, **{key: action_value}),
        with_action(**SKILL, **{key: action_value}) if key not in ("skill", "type") else value,
    ):
        try:
            parse_rule(data)
        except RuleError:
            pass


FACTS = st.builds(
    Facts,
    channel=st.sampled_from(list(Channel)),
    source=st.none() | st.text(max_size=30),
    subject=st.text(max_size=60),
    body=st.text(max_size=200),
    contact_email=st.none() | st.emails() | st.text(max_size=20),
    contact_name=st.none() | st.text(max_size=20),
    contact_tags=st.frozensets(st.text(max_size=10), max_size=3),
    tags=st.frozensets(st.text(max_size=10), max_size=3),
    language=st.none() | LANGUAGE | st.text(max_size=8),
    received_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(RULE, max_size=6), FACTS)
def test_evaluation_is_consistent_for_any_rules_and_facts(
    items: list[dict[str, Any]], conversation: Facts
) -> None:
    rules = parse_rules(items)
    outcome = evaluate(rules, conversation)
    skills = [need.skill for need in outcome.needs]
    assert skills == sorted(set(skills))
    assert list(outcome.matched) == sorted(set(outcome.matched))
    assert all(rules[i].enabled for i in outcome.matched)
    stops = [i for i in outcome.matched if rules[i].stop]
    assert stops in ([], list(outcome.matched[-1:]))
    assert outcome.errors == ()
    # Each matched rule, alone, matches too: conditions do not depend on other rules.
    for index in outcome.matched:
        assert evaluate([rules[index]], conversation).matched == (0,)


def test_requeue_when_away_is_set_only_by_a_matching_rule() -> None:
    flag = {"name": "urgent", "actions": [{"type": "requeue_when_away"}],
            "conditions": [{"field": "subject", "op": "contains", "value": "urgent"}]}
    assert run([flag], subject="Urgent: help").requeue_when_away is True
    assert run([flag], subject="Hello").requeue_when_away is False
    assert rule_to_json(parse_rule(flag))["actions"] == [{"type": "requeue_when_away"}]
    with pytest.raises(RuleError) as caught:
        parse_rule({**flag, "actions": [{"type": "requeue_when_away", "after_s": 5}]})
    assert caught.value.path == "actions[0].after_s"
