"""The one settings object.

Every setting has a name, a type, a default and help text. Values come from command-line
flags first (for the settings that have one), then ``GUICHET_*`` environment variables,
then the default. README's configuration table must match ``SETTINGS``
(``tests/test_docs.py`` checks it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(ValueError):
    """A setting has a value Guichet cannot use. The message names the setting."""


def parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"port must be a number, got {port!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port must be 0-65535, got {number}")
    return host, number


def parse_database_url(value: str) -> str:
    """Accept the URLs Guichet can run on and normalise them to an async driver."""
    if len(value) > 2048:
        raise ValueError("database URL is longer than 2048 characters")
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"not a database URL: {value!r}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql":
        url = url.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(
            f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    return url.render_as_string(hide_password=False)


def parse_positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(f"must be a positive integer, got {number}")
    return number


def int_between(low: int, high: int) -> Callable[[str], int]:
    """A parser for a whole number from ``low`` to ``high``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"must be a whole number, got {value[:40]!r}") from None
        if not low <= number <= high:
            raise ValueError(f"must be {low}-{high}, got {number}")
        return number

    return parse


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    default: Any
    parse: Callable[[str], Any] = str
    flag: str | None = None

    @property
    def option(self) -> str:
        """How a user names this setting in an error: its flag, else its variable."""
        return self.flag or self.env

    @property
    def env(self) -> str:
        return "GUICHET_" + self.name.upper()


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {value!r}")


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "Directory for the SQLite database, attachments and other files.",
            "./data", str, "--data-dir"),
    Setting("database_url", "Database URL: sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB. "
            "Default: SQLite file guichet.db in the data directory.", None, parse_database_url,
            "--database"),
    Setting("http", "HOST:PORT for the web server (agent inbox, API, websockets).",
            "127.0.0.1:8000", parse_hostport, "--http"),
    Setting("smtp", "HOST:PORT for inbound SMTP.", "127.0.0.1:2525", parse_hostport, "--smtp"),
    Setting("public_url", "Base URL customers and agents reach Guichet at, used in links and "
            "to check websocket Origin. Default: http://HTTP.", None, str),
    Setting("secure_cookies", "Mark cookies Secure (set when Guichet is served over HTTPS).",
            False, lambda v: v.lower() in ("1", "true", "yes", "on")),
    Setting("session_hours", "Hours an agent's login session lasts.", 12, parse_positive_int),
    Setting("max_body_bytes", "Largest HTTP request body accepted by the JSON API.",
            1_048_576, parse_positive_int),
    Setting("log_level", "Logging level: debug, info, warning or error.", "info",
            lambda v: _choice(v.lower(), ("debug", "info", "warning", "error"))),
    Setting("presence_grace_s", "Seconds after an agent's last websocket heartbeat before an "
            "online agent turns away (1-3600, at least GUICHET_HEARTBEAT_S).", 20,
            int_between(1, 3600)),
    Setting("heartbeat_s", "Seconds between an agent websocket's heartbeats: while a socket is "
            "open, the agent's last-seen time is refreshed every half of this (1-300).", 15,
            int_between(1, 300)),
    Setting("routing_policy", "Which eligible agent gets a conversation: least_loaded, "
            "longest_idle, least_flexible (fewest skills first) or least_occupied (lowest "
            "share of busy time while present: fairness).", "least_loaded",
            lambda v: _choice(v.lower(), ("least_loaded", "longest_idle", "least_flexible",
                                          "least_occupied"))),
    Setting("routing_chat_first", "Serve waiting chats before email and forms of the same "
            "priority.", True, _flag),
    Setting("routing_requeue_s", "Seconds after an agent turns away or offline before the "
            "chats they hold wait for another agent (0-3600).", 15, int_between(0, 3600)),
    Setting("routing_sticky_s", "Seconds after a returning customer's conversation starts "
            "waiting during which their previous agent is preferred, when eligible "
            "(0-86400; 0: no stickiness).", 120, int_between(0, 86400)),
    Setting("routing_offer_s", "0: chats are assigned directly. Above 0: a chat is offered to "
            "the chosen agent, who must accept it within this many seconds or it goes to "
            "the next one (0-600).", 0, int_between(0, 600)),
    Setting("routing_not_responding_s", "Seconds an agent who let an offer expire gets no "
            "offers (0-3600).", 120, int_between(0, 3600)),
)


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    http: tuple[str, int]
    smtp: tuple[str, int]
    public_url: str
    secure_cookies: bool
    session_hours: int
    max_body_bytes: int
    log_level: str
    presence_grace_s: int = 20
    heartbeat_s: int = 15
    routing_policy: str = "least_loaded"
    routing_chat_first: bool = True
    routing_requeue_s: int = 15
    routing_sticky_s: int = 120
    routing_offer_s: int = 0
    routing_not_responding_s: int = 120

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def url(self) -> URL:
        return make_url(self.database_url)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def load_settings(
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from flags (raw strings, ``None`` = not given) and the environment."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = flags.get(setting.name)
        source = setting.option
        if raw is None:
            raw = environ.get(setting.env)
            source = setting.env
        if raw is None:
            default = setting.default
            values[setting.name] = setting.parse(default) if isinstance(default, str) else default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    data_dir = Path(values["data_dir"]).expanduser().resolve()
    values["data_dir"] = data_dir
    if values["database_url"] is None:
        values["database_url"] = f"sqlite+aiosqlite:///{data_dir / 'guichet.db'}"
    if values["public_url"] is None:
        host, port = values["http"]
        values["public_url"] = f"http://{host}:{port}"
    values["public_url"] = values["public_url"].rstrip("/")
    _check_presence_timing(values["presence_grace_s"], values["heartbeat_s"])
    return Settings(**values)


def _check_presence_timing(grace_s: int, heartbeat_s: int) -> None:
    # A live socket's last-seen time can be up to 3/4 of a heartbeat old (refreshed every
    # half heartbeat, checked every quarter); a shorter grace would turn live agents away.
    if grace_s < heartbeat_s:
        raise ConfigError(
            f"GUICHET_PRESENCE_GRACE_S: must be at least GUICHET_HEARTBEAT_S ({heartbeat_s}), "
            f"got {grace_s}"
        )
