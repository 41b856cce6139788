"""SQLAlchemy models of the conversation store.

Only ``inbox`` reads and writes these rows. Everything outside ``inbox`` works with the
frozen dataclasses that ``inbox.views`` and ``inbox.inbound`` define.
"""

from inbox.models.agents import Agent, AgentCapacity, AgentSkill, Team, TeamMember
from inbox.models.auth import ApiToken, AuthSession, InstanceSetting, LoginFailure
from inbox.models.base import Base
from inbox.models.contacts import Contact, ContactIdentity
from inbox.models.conversations import (
    Attachment,
    Conversation,
    ConversationSkill,
    ConversationTag,
    Message,
)
from inbox.models.log import AuditEntry, Event, OutboxItem
from inbox.models.offers import ChatOffer
from inbox.models.routing import RoutingRule

__all__ = [
    "Agent", "AgentCapacity", "AgentSkill", "ApiToken", "Attachment", "AuditEntry",
    "AuthSession", "Base", "ChatOffer", "Contact", "ContactIdentity", "Conversation",
    "ConversationSkill", "ConversationTag", "Event", "InstanceSetting", "LoginFailure",
    "Message", "OutboxItem", "RoutingRule", "Team", "TeamMember",
]
