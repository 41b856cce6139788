"""Enumerations shared by the store, the channels, routing and the web layer.

They are ``StrEnum`` so their values are what the database and the JSON API carry.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    FORM = "form"


class Status(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    NOTE = "note"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    def at_least(self, other: Role) -> bool:
        order = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)
        return order.index(self) >= order.index(other)


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


MAX_SKILL_LEVEL = 10
# Lowercase letters, digits, '.', '_' or '-', at most 64 characters (the column's size).
SKILL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def sql_in(enum: type[StrEnum]) -> str:
    """The values of an enum as a SQL ``IN`` list, for CHECK constraints."""
    return "(" + ", ".join(f"'{member.value}'" for member in enum) + ")"
