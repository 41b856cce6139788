"""Checks for the fields of a scenario file, each naming the JSON path it refuses.

Every checker takes a decoded JSON value and its path (``agents[3].shift.end``) and
returns the value in the type the simulator wants, or raises ``ScenarioError`` with that
path. ``routing.sim_scenario`` builds scenarios from these; nothing here knows what a
scenario is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from inbox.types import SKILL_NAME, Channel, Priority

_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?$")


class ScenarioError(ValueError):
    """A scenario file that cannot be simulated; ``field`` is the JSON path at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def clock(value: str) -> float:
    """'HH:MM' or 'HH:MM:SS' (hours 0..48) as seconds since midnight."""
    match = _CLOCK.match(value)
    if not match or int(match.group(1)) > 48:
        raise ValueError(value)
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds


def obj(
    value: object, at: str, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, object]:
    value = mapping(value, at)
    missing = [key for key in required if key not in value]
    if missing:
        raise ScenarioError(join(at, missing[0]), "is required")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise ScenarioError(join(at, unknown[0]), "is not a known field")
    return value


def mapping(value: object, at: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ScenarioError(at, f"expected an object, got {type(value).__name__}")
    return value


def join(at: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{at}[{key}]"
    return f"{at}.{key}" if at else key


def number(value: object, at: str, *, low: float | None = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(at, f"expected a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ScenarioError(at, f"must be {bounds}, got {value!r}")
    return float(value)


def whole(value: object, at: str, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ScenarioError(at, f"expected a whole number >= {low}, got {value!r}")
    return value


def text(value: object, at: str) -> str:
    if not isinstance(value, str) or not value:
        raise ScenarioError(at, f"expected a non-empty string, got {value!r}")
    return value


def time_of(value: object, at: str) -> float:
    try:
        return clock(text(value, at))
    except ValueError:
        raise ScenarioError(at, f'expected a time "HH:MM" (00:00..48:00), got {value!r}') from None


def array(value: object, at: str) -> list[object]:
    if not isinstance(value, list):
        raise ScenarioError(at, f"expected a list, got {type(value).__name__}")
    return value


def channel_of(value: object, at: str) -> Channel:
    try:
        return Channel(text(value, at))
    except ValueError:
        raise ScenarioError(at, f"unknown channel {value!r}") from None


def skill_name(value: object, at: str) -> str:
    name = text(value, at)
    if not SKILL_NAME.match(name):
        raise ScenarioError(at, f"bad skill name {name!r} (lowercase letters, digits, . _ -)")
    return name


def priority_rank(value: object, at: str) -> int:
    try:
        return Priority(text(value, at)).rank
    except ValueError:
        raise ScenarioError(at, f"unknown priority {value!r}") from None


def weights(value: object, at: str, key: str) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise ScenarioError(at, "expected a non-empty object of weights")
    parsed = {str(name): number(weight, join(at, str(name))) for name, weight in value.items()}
    if sum(parsed.values()) <= 0:
        raise ScenarioError(at, f"the {key} weights add up to zero")
    return parsed


def span(raw: dict[str, object], at: str, start: str, end: str) -> tuple[float, float]:
    begin, finish = time_of(raw[start], join(at, start)), time_of(raw[end], join(at, end))
    if finish <= begin:
        raise ScenarioError(join(at, end), f"must be after {start}")
    return begin, finish
