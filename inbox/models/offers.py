"""Chats offered to an agent who has not accepted yet.

A row lives while the offer is open: accepting turns it into the conversation's
assignee, declining or letting it expire removes it (each recorded in the audit log).
One open offer per conversation at most. An open offer counts against the agent's chat
capacity, like a chat they hold.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from inbox.models.base import Base, BigId, UTCDateTime


class ChatOffer(Base):
    __tablename__ = "chat_offers"

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id"), primary_key=True
    )
    agent_id: Mapped[int] = mapped_column(BigId, ForeignKey("agents.id"), index=True)
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
