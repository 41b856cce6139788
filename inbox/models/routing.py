"""Supervisors' routing rules, stored as the canonical JSON that ``routing.rules`` checks.

The store keeps them opaque: ``routing`` validates a rule before any write reaches this
table and reads them back in ``position`` order. Every change is in the audit log with
the rule before and after.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer
from sqlalchemy.orm import Mapped, mapped_column

from inbox.models.base import Base, BigId, UTCDateTime


class RoutingRule(Base):
    __tablename__ = "routing_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
