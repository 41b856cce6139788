"""What a channel adapter hands to the store: one frozen, typed ``InboundMessage``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from inbox.types import MAX_SKILL_LEVEL, SKILL_NAME, Channel, Priority

MAX_SUBJECT_CHARS = 998
MAX_TEXT_CHARS = 1_000_000
MAX_ATTACHMENTS = 100


class InvalidInbound(ValueError):
    """The adapter built a message the store refuses; the message says which field."""


MAX_ADDRESS_CHARS = 320
MAX_HEADER_CHARS = 998


@dataclass(frozen=True)
class Sender:
    """Who wrote the message, as the channel knows them.

    ``address`` is the channel's identity: an email address, a chat visitor id, or the
    email a form submitter typed. ``email`` is set when the person's email is known, so
    that a chat visitor who gives their email joins the contact who mails us.
    """

    address: str
    name: str | None = None  # display only; ingest keeps its first 200 characters
    email: str | None = None

    def __post_init__(self) -> None:
        if not self.address or len(self.address) > MAX_ADDRESS_CHARS:
            raise InvalidInbound(f"sender address must be 1-{MAX_ADDRESS_CHARS} characters")
        if self.email is not None and len(self.email) > MAX_ADDRESS_CHARS:
            raise InvalidInbound(f"sender email is longer than {MAX_ADDRESS_CHARS} characters")


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    media_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ThreadHeaders:
    """Email-style threading data. Other channels may leave it empty."""

    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingHints:
    """What the channel knows about who should handle a new conversation."""

    skills: tuple[tuple[str, int], ...] = ()
    team: str | None = None
    priority: Priority = Priority.NORMAL

    def __post_init__(self) -> None:
        for skill, level in self.skills:
            if not SKILL_NAME.match(skill):
                raise InvalidInbound(f"skill {skill[:70]!r}: not a valid skill name")
            if not 1 <= level <= MAX_SKILL_LEVEL:
                raise InvalidInbound(f"skill {skill}: level must be 1-{MAX_SKILL_LEVEL}")


@dataclass(frozen=True)
class InboundMessage:
    channel: Channel
    external_id: str
    sender: Sender
    text: str
    received_at: datetime
    subject: str = ""
    html: str | None = None
    thread: ThreadHeaders = ThreadHeaders()
    attachments: tuple[InboundAttachment, ...] = ()
    routing: RoutingHints = RoutingHints()
    # A channel that already knows the conversation (a chat session, a portal reply).
    conversation_id: int | None = None
    meta: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.external_id or len(self.external_id) > 998:
            raise InvalidInbound("external_id must be 1-998 characters")
        if self.received_at.tzinfo is None:
            raise InvalidInbound("received_at must be timezone-aware")
        if len(self.text) > MAX_TEXT_CHARS or len(self.html or "") > MAX_TEXT_CHARS:
            raise InvalidInbound(f"body is longer than {MAX_TEXT_CHARS} characters")
        if len(self.attachments) > MAX_ATTACHMENTS:
            raise InvalidInbound(f"more than {MAX_ATTACHMENTS} attachments")

    @property
    def content_hash(self) -> str:
        """SHA-256 over what the sender wrote, so a reused external id is not a duplicate."""
        digest = hashlib.sha256()
        for part in (self.sender.address.lower(), self.subject, self.text, self.html or ""):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        for attachment in self.attachments:
            digest.update(attachment.sha256.encode())
        return digest.hexdigest()
