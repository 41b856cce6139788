"""Conditions of supervisor routing rules: their checks on save and their tests on one
conversation's ``Facts``.

It owns the condition vocabulary (documented in ``routing.rules``), the shared input checks
that raise ``RuleError``, and the guards around regular expressions: a pattern is refused on
save if it does not compile or would compile to something huge, and every match runs with a
time limit, so a rule can make one conversation's evaluation slower but never hang it. It
touches no database, and no clock but the monotonic one that bounds pattern matching.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex  # type: ignore[import-untyped]  # typeshed's stubs are not a dependency

from inbox.types import Channel

MAX_STRING_CHARS = 200
MAX_LIST_ITEMS = 100
MAX_PATTERN_CHARS = 300
MAX_TAG_CHARS = 64  # the store's tag column
MAX_TEXT_CHARS = 64 * 1024  # how much of a subject, body, ... conditions look at
# The regex module writes a group out once per minimum repeat: (?:x{1000}){1000} takes
# 270 MB to compile. These bound the items (~100 to ~1,500 bytes each) that one pattern,
# and all the patterns of a rule set, may compile to.
MAX_PATTERN_SIZE = 2_000
MAX_PATTERN_SIZE_PER_SET = 60_000
MATCH_TIMEOUT_S = 0.02  # one pattern on one text
MATCH_BUDGET_S = 0.1  # all patterns of one evaluation together

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FIELD_OPS: dict[str, tuple[str, ...]] = {
    "channel": ("in",),
    "source": ("in", "equals"),
    "subject": ("contains", "matches"),
    "body": ("contains", "matches"),
    "contact.email": ("equals", "contains", "ends_with", "matches"),
    "contact.name": ("equals", "contains", "ends_with", "matches"),
    "contact.domain": ("equals", "contains", "ends_with", "matches"),
    "contact.tags": ("has", "has_any", "has_none"),
    "tags": ("has", "has_any", "has_none"),
    "language": ("in",),
    "business_hours": ("inside", "outside"),
}

_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
_QUANTIFIER = re.compile(r"\{\s*(\d*)\s*(?:,\s*\d*\s*)?\}")
_INLINE_FLAGS = re.compile(r"\(\?([A-Za-z0-9-]*)[:)]")
# What the regex module takes for a POSIX class inside a set, exactly: [:alpha:], [:^L&:],
# [:Script=Latin:]. Anything else there is a literal "[" and the set may end sooner.
_POSIX_CLASS = re.compile(
    r"\[:\^?[A-Za-z0-9 &_.-]*(?:[:=][A-Za-z0-9 &_./-]*[A-Za-z0-9&_./-][A-Za-z0-9 &_./-]*)?:\]"
)
_COMMENT = re.compile(r"\(\?#(?:[^\\)]|\\.?)*\)?", re.S)  # to its first unescaped ")"


class RuleError(ValueError):
    """A rule refused on save. ``path`` points into the posted JSON (``"conditions[2].value"``,
    ``"[3].actions[0].skill"``; empty for the whole document); ``message`` is for a
    supervisor."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


# -- input checks shared with routing.rules --------------------------------------------------


def at(path: str, key: str | int) -> str:
    """The path of a key or index below ``path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def kind(value: object) -> str:
    """A value's JSON type, for messages."""
    for types, name in _KINDS:
        if isinstance(value, types):
            return name
    return type(value).__name__


_KINDS = (
    (type(None), "null"),
    (bool, "true/false"),
    (int | float, "a number"),
    (str, "a string"),
    (list | tuple, "a list"),
    (dict, "an object"),
)


def check_object(
    value: object, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, object]:
    """A JSON object with every required key and no key it does not know."""
    if not isinstance(value, dict):
        raise RuleError(path, f"must be an object, not {kind(value)}")
    known = required + optional
    for key in value:
        if key not in known:
            name = key if isinstance(key, str) else repr(key)
            raise RuleError(at(path, name[:50]), f"unknown key; expected {_either(known)}")
    for key in required:
        if key not in value:
            raise RuleError(at(path, key), "is required")
    return value


def check_string(value: object, path: str, limit: int = MAX_STRING_CHARS) -> str:
    if not isinstance(value, str):
        raise RuleError(path, f"must be a string, not {kind(value)}")
    if not value:
        raise RuleError(path, "must not be empty")
    if len(value) > limit:
        raise RuleError(path, f"must be at most {limit} characters")
    if "\x00" in value:
        raise RuleError(path, "must not contain NUL characters")
    return value


def check_list(
    value: object, path: str, limit: int = MAX_LIST_ITEMS, empty: bool = False
) -> list[object]:
    if not isinstance(value, list):
        raise RuleError(path, f"must be a list, not {kind(value)}")
    if not value and not empty:
        raise RuleError(path, "must not be empty")
    if len(value) > limit:
        raise RuleError(path, f"must have at most {limit} items")
    return value


def check_strings(
    value: object, path: str, item: Callable[[object, str], str] = check_string
) -> tuple[str, ...]:
    """A non-empty list of strings, each checked by ``item``; duplicates dropped."""
    items = check_list(value, path)
    return tuple(dict.fromkeys(item(v, at(path, i)) for i, v in enumerate(items)))


def check_choice(value: object, path: str, choices: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        shown = repr(value)[:50] if isinstance(value, str) else kind(value)
        raise RuleError(path, f"unknown {what} {shown}; expected {_either(choices)}")
    return value


def check_seconds(value: object, path: str, limit: float) -> float:
    """A positive number of seconds, at most ``limit``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(path, f"must be a number of seconds, not {kind(value)}")
    if not 0 < value <= limit:  # false for NaN; exact for ints too large for a float
        raise RuleError(path, f"must be more than 0 and at most {limit:g} seconds")
    return float(value)


def check_tag(value: object, path: str) -> str:
    """A tag as the store keeps it: trimmed and lowercase."""
    tag = check_string(value, path).strip().lower()
    if not tag:
        raise RuleError(path, "must not be blank")
    if len(tag) > MAX_TAG_CHARS:
        raise RuleError(path, f"must be at most {MAX_TAG_CHARS} characters")
    return tag


def _either(choices: tuple[str, ...]) -> str:
    if len(choices) == 1:
        return choices[0]
    return ", ".join(choices[:-1]) + " or " + choices[-1]


# -- facts and their prepared forms -----------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What a rule can look at, for one conversation."""

    channel: Channel
    source: str | None  # the mailbox address, form slug or widget id it came through
    subject: str
    body: str
    contact_email: str | None
    contact_name: str | None
    contact_tags: frozenset[str]
    tags: frozenset[str]
    language: str | None
    received_at: datetime  # aware

    def __post_init__(self) -> None:
        if self.received_at.utcoffset() is None:
            raise ValueError("Facts.received_at must be an aware datetime")


def _domain(email: str | None) -> str | None:
    return None if email is None or "@" not in email else email.rpartition("@")[2]


_TEXTS: dict[str, Callable[[Facts], str | None]] = {
    "source": lambda f: f.source,
    "subject": lambda f: f.subject,
    "body": lambda f: f.body,
    "contact.email": lambda f: f.contact_email,
    "contact.name": lambda f: f.contact_name,
    "contact.domain": lambda f: _domain(f.contact_email),
}


class Scope:
    """One evaluation's view of the facts: texts bounded and folded once, when a condition
    first asks; and the errors met on the way (patterns that ran out of time)."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.errors: list[str] = []
        self.rule_index = -1  # the rule being evaluated, for errors
        self.rule_name = ""
        self._deadline: float | None = None
        self._texts: dict[str, str | None] = {}
        self._folded: dict[str, str | None] = {}

    def text(self, name: str) -> str | None:
        """The text of a field in ``_TEXTS``, cut to ``MAX_TEXT_CHARS``."""
        try:
            return self._texts[name]
        except KeyError:
            text = _TEXTS[name](self.facts)
            text = self._texts[name] = None if text is None else text[:MAX_TEXT_CHARS]
            return text

    def folded(self, name: str) -> str | None:
        """The same text case-folded, for comparisons that ignore case."""
        try:
            return self._folded[name]
        except KeyError:
            text = self.text(name)
            text = self._folded[name] = None if text is None else text.casefold()
            return text

    @cached_property
    def tags(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.facts.tags)

    @cached_property
    def contact_tags(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.facts.contact_tags)

    @cached_property
    def language(self) -> str | None:
        language = self.facts.language
        return None if language is None else language.strip().lower().replace("_", "-")

    def search(self, pattern: Pattern, text: str | None, what: str) -> bool:
        """Whether ``pattern`` occurs in ``text``; a search that runs out of time counts
        as no match and is recorded in ``errors``."""
        if text is None:
            return False
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + MATCH_BUDGET_S
        left = self._deadline - now
        if left <= 0:
            spent = f"the {MATCH_BUDGET_S * 1000:g} ms for patterns was spent"
            self.errors.append(f"{self._where(what)} was skipped: {spent}")
            return False
        timeout = min(MATCH_TIMEOUT_S, left)
        try:
            return pattern.search(text, timeout=timeout) is not None
        except TimeoutError:
            took = f"took over {timeout * 1000:.3g} ms"
            self.errors.append(f"{self._where(what)} {took} and counted as no match")
            return False

    def _where(self, what: str) -> str:
        return f"rule {self.rule_index} ({self.rule_name!r}): {what}"


# -- patterns ---------------------------------------------------------------------------------


class Pattern(Protocol):
    def search(self, string: str, *, timeout: float) -> object | None: ...


def compile_pattern(value: object, path: str) -> tuple[str, Pattern]:
    """A pattern's source and its compiled form; matching ignores case."""
    source = check_string(value, path, MAX_PATTERN_CHARS)
    for flags in _INLINE_FLAGS.findall(source):
        if "x" in flags or "V1" in flags:
            raise RuleError(path, "the inline flags (?x) and (?V1) are not supported")
    size = pattern_size(source)
    if size > MAX_PATTERN_SIZE:
        raise RuleError(
            path,
            f"is too large once its counted repetitions ({{3}}, {{2,5}}) are multiplied out: "
            f"{size} items, at most {MAX_PATTERN_SIZE}",
        )
    try:
        compiled: Pattern = regex.compile(source, regex.IGNORECASE)
    except regex.error as err:
        where = "" if err.pos is None else f" (at character {err.pos + 1})"
        raise RuleError(path, f"is not a valid regular expression: {err.msg}{where}") from None
    except (RecursionError, OverflowError, ValueError, MemoryError):
        raise RuleError(path, "is too complex a regular expression") from None
    return source, compiled


def pattern_size(source: str) -> int:
    """An upper estimate of the items ``source`` compiles to, counting a repeated group once
    per minimum repeat. Anything not understood counts as one more item, so the estimate
    only errs high (verbose mode and nested sets, which could hide groups, are refused)."""
    frames = [[0, 0]]  # per open group: [size so far, size of its last item]
    i, end = 0, len(source)
    while i < end:
        char, frame, size = source[i], frames[-1], 1
        if char == "\\":
            i += 2
        elif char == "[":
            i = _set_end(source, i)
        elif comment := _COMMENT.match(source, i):  # not an item: a repeat skips it
            i = comment.end()
            continue
        elif char == "(":
            frames.append([0, 0])
            i += 1
            continue
        elif char == ")" and len(frames) > 1:
            size = frames.pop()[0]
            frame = frames[-1]
            i += 1
        elif repeat := _QUANTIFIER.match(source, i):
            times = max(1, int(repeat[1] or 0))
            frame[0] += frame[1] * (times - 1)
            frame[1] *= times
            i = repeat.end()
            continue
        else:
            i += 1
        frame[0] += size
        frame[1] = size
    return sum(frame[0] for frame in frames)


def _set_end(source: str, start: int) -> int:
    """The index after the set opened at ``start`` (the end, if it never closes)."""
    i = start + 1
    if source.startswith("^", i):
        i += 1
    if source.startswith("]", i):
        i += 1
    while i < len(source):
        if source[i] == "\\":
            i += 2
        elif posix := _POSIX_CLASS.match(source, i):
            i = posix.end()
        elif source[i] == "]":
            return i + 1
        else:
            i += 1
    return len(source)


# -- business hours ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hours:
    """Opening hours: on ``days``, from ``start`` to ``end`` wall-clock time in ``timezone``.
    ``end`` before ``start`` runs past midnight into the next day; ``end`` may be 24:00."""

    timezone: str
    days: tuple[str, ...]  # in week order
    start: str  # HH:MM
    end: str  # HH:MM or 24:00

    def to_json(self) -> dict[str, object]:
        return {
            "timezone": self.timezone,
            "days": list(self.days),
            "from": self.start,
            "to": self.end,
        }


def parse_hours(value: object, path: str) -> Hours:
    obj = check_object(value, path, ("timezone", "days", "from", "to"))
    timezone = check_string(obj["timezone"], at(path, "timezone"), 64)
    _zone(timezone, at(path, "timezone"))
    days_path = at(path, "days")
    days = check_strings(obj["days"], days_path, lambda v, p: check_choice(v, p, DAYS, "day"))
    start = _clock(obj["from"], at(path, "from"), midnight=False)
    end = _clock(obj["to"], at(path, "to"), midnight=True)
    if start == end:
        whole_day = "use 00:00 to 24:00 for a whole day"
        raise RuleError(at(path, "to"), f'must differ from "from" ({whole_day})')
    return Hours(timezone, tuple(d for d in DAYS if d in days), start, end)


def _zone(name: str, path: str) -> ZoneInfo:
    # "localtime" is whatever the server's clock is set to: not a place a rule can name.
    if _TIMEZONE.fullmatch(name) and name not in ("localtime", "posixrules"):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise RuleError(path, f"unknown timezone {name!r}; use a name like Europe/Paris")


def _clock(value: object, path: str, midnight: bool) -> str:
    if isinstance(value, str) and (_TIME.fullmatch(value) or (midnight and value == "24:00")):
        return value
    latest = "24:00" if midnight else "23:59"
    raise RuleError(path, f"must be a time written HH:MM, from 00:00 to {latest}")


def _seconds_of(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60


# -- conditions -------------------------------------------------------------------------------

Value = str | tuple[str, ...] | Hours
Test = Callable[[Scope], bool]


@dataclass(frozen=True)
class Condition:
    """One condition of a rule; build it with ``parse_condition``, which prepares ``test``."""

    field: str
    op: str
    value: Value
    test: Test = dataclasses.field(compare=False, repr=False)

    def to_json(self) -> dict[str, object]:
        value = self.value
        shown: object = value
        if isinstance(value, Hours):
            shown = value.to_json()
        elif isinstance(value, tuple):
            shown = list(value)
        return {"field": self.field, "op": self.op, "value": shown}


def parse_condition(data: object, path: str) -> Condition:
    obj = check_object(data, path, ("field", "op", "value"))
    name = check_choice(obj["field"], at(path, "field"), tuple(FIELD_OPS), "field")
    ops = FIELD_OPS[name]
    op = obj["op"]
    if not isinstance(op, str) or op not in ops:
        shown = repr(op)[:50] if isinstance(op, str) else kind(op)
        raise RuleError(at(path, "op"), f"{shown} does not apply to {name}; use {_either(ops)}")
    value, test = _BUILDERS[op](name, obj["value"], at(path, "value"))
    return Condition(name, op, value, test)


def _in(name: str, data: object, path: str) -> tuple[Value, Test]:
    if name == "channel":
        channels = tuple(c.value for c in Channel)
        values = check_strings(data, path, lambda v, p: check_choice(v, p, channels, "channel"))
        allowed = frozenset(Channel(v) for v in values)
        return values, lambda s: s.facts.channel in allowed
    if name == "language":
        values = check_strings(data, path, _language)
        prefixes = tuple(v + "-" for v in values)
        return (
            values,
            lambda s: (
                (lang := s.language) is not None and (lang in values or lang.startswith(prefixes))
            ),
        )
    values = check_strings(data, path)
    folded = frozenset(v.casefold() for v in values)
    return values, lambda s: s.folded("source") in folded


def _language(value: object, path: str) -> str:
    code = check_string(value, path, 35).lower().replace("_", "-")
    if not _LANGUAGE.fullmatch(code):
        raise RuleError(path, f"{code!r} is not a language code like en, fr or pt-br")
    return code


def _text(name: str, data: object, path: str, op: str) -> tuple[Value, Test]:
    want = check_string(data, path)
    folded = want.casefold()
    if op == "equals":
        return want, lambda s: s.folded(name) == folded
    if op == "contains":
        return want, lambda s: (text := s.folded(name)) is not None and folded in text
    return want, lambda s: (text := s.folded(name)) is not None and text.endswith(folded)


def _matches(name: str, data: object, path: str) -> tuple[Value, Test]:
    source, pattern = compile_pattern(data, path)
    what = f"{name} matches {source[:60]!r}"
    return source, lambda s: s.search(pattern, s.text(name), what)


def _tags(name: str, data: object, path: str, op: str) -> tuple[Value, Test]:
    get: Callable[[Scope], frozenset[str]] = (
        (lambda s: s.tags) if name == "tags" else (lambda s: s.contact_tags)
    )
    if op == "has":
        tag = check_tag(data, path)
        return tag, lambda s: tag in get(s)
    values = check_strings(data, path, check_tag)
    wanted = frozenset(values)
    if op == "has_any":
        return values, lambda s: not wanted.isdisjoint(get(s))
    return values, lambda s: wanted.isdisjoint(get(s))


def _hours(data: object, path: str, inside: bool) -> tuple[Value, Test]:
    hours = parse_hours(data, path)
    zone = _zone(hours.timezone, path)
    days = frozenset(DAYS.index(d) for d in hours.days)
    start, end = _seconds_of(hours.start), _seconds_of(hours.end)

    def test(scope: Scope) -> bool:
        local = scope.facts.received_at.astimezone(zone)
        now = local.hour * 3600 + local.minute * 60 + local.second
        day = local.weekday()
        if start < end:
            within = day in days and start <= now < end
        else:  # past midnight: the hours after it belong to the day before
            within = (day in days and now >= start) or ((day - 1) % 7 in days and now < end)
        return within == inside

    return hours, test


_BUILDERS: dict[str, Callable[[str, object, str], tuple[Value, Test]]] = {
    "in": _in,
    "equals": lambda n, d, p: _text(n, d, p, "equals"),
    "contains": lambda n, d, p: _text(n, d, p, "contains"),
    "ends_with": lambda n, d, p: _text(n, d, p, "ends_with"),
    "matches": _matches,
    "has": lambda n, d, p: _tags(n, d, p, "has"),
    "has_any": lambda n, d, p: _tags(n, d, p, "has_any"),
    "has_none": lambda n, d, p: _tags(n, d, p, "has_none"),
    "inside": lambda n, d, p: _hours(d, p, inside=True),
    "outside": lambda n, d, p: _hours(d, p, inside=False),
}
