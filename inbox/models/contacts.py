"""Contacts: one person across channels, reachable through several identities."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from inbox.models.base import Base, BigId, UTCDateTime
from inbox.types import Channel, sql_in


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A merged contact keeps its row so that old references still resolve.
    merged_into_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("contacts.id"), index=True
    )


class ContactIdentity(Base):
    """How a contact is known on one channel: an email address, a chat visitor id, ..."""

    __tablename__ = "contact_identities"
    __table_args__ = (
        UniqueConstraint("channel", "value"),
        CheckConstraint(f"channel IN {sql_in(Channel)}", name="channel"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
