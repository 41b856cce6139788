"""Demo data for ``guichet serve --demo``: agents with skills, a supervisor, an admin,
teams, and sample conversations on every channel, all entered through the real ingest
path and action functions. Seeding twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from inbox.actions.agents import create_agent
from inbox.actions.conversations import ConversationChanges, add_message, update_conversation
from inbox.db import Store
from inbox.inbound import InboundMessage, RoutingHints, Sender, ThreadHeaders
from inbox.ingest import Ingestor
from inbox.queries import agent_by_email
from inbox.types import Channel, Priority, Role, Status

DEMO_PASSWORD = "guichet-demo"


@dataclass(frozen=True)
class DemoAgent:
    email: str
    name: str
    role: Role
    skills: dict[str, int]
    capacity: dict[str, int]
    teams: tuple[str, ...]


AGENTS = (
    DemoAgent("agent@example.com", "Ada Agent", Role.AGENT, {"billing": 3, "tech": 2},
              {"chat": 3, "email": 10, "form": 10}, ("Support",)),
    DemoAgent("bruno@example.com", "Bruno Agent", Role.AGENT, {"tech": 4, "french": 5},
              {"chat": 2, "email": 8, "form": 8}, ("Support",)),
    DemoAgent("supervisor@example.com", "Sam Supervisor", Role.SUPERVISOR, {"billing": 5},
              {"chat": 1, "email": 5, "form": 5}, ("Support", "Billing")),
    DemoAgent("admin@example.com", "Alex Admin", Role.ADMIN, {}, {}, ()),
)


def _messages(now: datetime) -> list[InboundMessage]:
    def at(minutes: int) -> datetime:
        return now - timedelta(minutes=minutes)

    return [
        InboundMessage(
            channel=Channel.EMAIL, external_id="<demo-1@customer.example>",
            sender=Sender("lena@customer.example", "Lena Fischer"),
            subject="Charged twice for my March invoice",
            text="Hello,\n\nmy card was charged twice for invoice 2026-0312. "
                 "Could you refund one of the payments?\n\nThanks, Lena",
            received_at=at(90), thread=ThreadHeaders(message_id="<demo-1@customer.example>"),
            routing=RoutingHints(skills=(("billing", 2),), priority=Priority.HIGH),
        ),
        InboundMessage(
            channel=Channel.EMAIL, external_id="<demo-2@shop.example>",
            sender=Sender("owen@shop.example", "Owen Price"),
            subject="API returns 502 since this morning",
            text="Our integration gets 502 Bad Gateway on every order sync since 08:10 UTC.",
            received_at=at(45), thread=ThreadHeaders(message_id="<demo-2@shop.example>"),
            routing=RoutingHints(skills=(("tech", 3),), priority=Priority.URGENT),
        ),
        InboundMessage(
            channel=Channel.CHAT, external_id="demo-chat-1",
            sender=Sender("visitor-7f3a", "Visitor", "mia@example.org"),
            subject="", text="Hi! Can I change the delivery address of my order?",
            received_at=at(5), routing=RoutingHints(skills=(("tech", 1),)),
        ),
        InboundMessage(
            channel=Channel.FORM, external_id="demo-form-1",
            sender=Sender("jules@example.net", "Jules Martin"),
            subject="Demande de remboursement",
            text="Bonjour, je souhaite être remboursé pour la commande 5521. Merci !",
            received_at=at(20), routing=RoutingHints(skills=(("french", 3),)),
        ),
        InboundMessage(
            channel=Channel.FORM, external_id="demo-form-2",
            sender=Sender("priya@example.com", "Priya Nair"),
            subject="Feature request: export to CSV",
            text="It would help us a lot to export the monthly report as CSV.",
            received_at=at(240), routing=RoutingHints(priority=Priority.LOW),
        ),
    ]


async def seed_demo(store: Store, ingestor: Ingestor) -> bool:
    """Seed the demo installation; returns False if it was already there."""
    async with store.read() as session:
        if await agent_by_email(session, AGENTS[0].email) is not None:
            return False
    ids = {}
    async with store.write() as session:
        for agent in AGENTS:
            ids[agent.email] = await create_agent(
                session, email=agent.email, name=agent.name, role=agent.role,
                password=DEMO_PASSWORD, skills=agent.skills, capacity=agent.capacity,
                teams=agent.teams,
            )
    results = [await ingestor.ingest(m) for m in _messages(datetime.now(UTC))]
    ada = ids["agent@example.com"]
    async with store.write() as session:
        await update_conversation(
            session, results[0].conversation_id, ada,
            ConversationChanges(assignee_id=ada, tags=("refund", "invoice"),
                                changed=frozenset({"assignee_id", "tags"})),
        )
        await add_message(
            session, results[0].conversation_id, ada,
            "Customer was double-charged; refund requested from the payment provider.",
            internal=True,
        )
        await update_conversation(
            session, results[4].conversation_id, ada,
            ConversationChanges(status=Status.PENDING, tags=("feature-request",),
                                changed=frozenset({"status", "tags"})),
        )
    return True
