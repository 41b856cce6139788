"""Realistic, deterministic inbound traffic for the ingest benchmark.

``generate`` returns distinct ``InboundMessage`` values as channel adapters would build
them: mostly new requests on email, chat and web forms, and about 30% email replies that
name an earlier message in In-Reply-To (a tenth only in References, as when a customer
answers the agent's reply). Bodies range from one line to tens of kilobytes; a few carry
small attachments. A reply's parent is at least ``reply_gap`` messages earlier, so with
fewer concurrent producers than that the parent is always stored before the reply.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from inbox.inbound import (
    InboundAttachment,
    InboundMessage,
    RoutingHints,
    Sender,
    ThreadHeaders,
)
from inbox.types import Channel, Priority

FIRST = ("Alice", "Bruno", "Chloé", "Dmitri", "Elif", "Femi", "Greta", "Hamid", "Ingrid",
         "Jun", "Kasia", "Luis", "Maëlle", "Nikhil", "Oona", "Pavel", "Rania", "Søren")
LAST = ("Adams", "Bianchi", "Chen", "Dupont", "Eriksen", "Fischer", "González", "Haddad",
        "Ito", "Jovanović", "Kowalczyk", "Lambert", "Mensah", "Nakamura", "O'Brien")
DOMAINS = ("mail.example", "corp.example", "shop.example", "uni.example", "isp.example")
TOPICS = (
    ("Order {n} has not arrived", "shipping",
     "I ordered {n} ten days ago and the tracking page has not changed since Monday."),
    ("Refund for order {n}", "billing",
     "I sent order {n} back last week. When will the refund reach my card?"),
    ("Cannot reset my password", "account",
     "The reset link in your email says it has expired, every time I click it."),
    ("Invoice {n}: wrong company address", "billing",
     "Invoice {n} still shows our old address. Please send a corrected copy."),
    ("App crashes when uploading photos", "technical",
     "Since the last update the app closes as soon as I pick a photo to upload."),
    ("Question about the premium plan", "sales",
     "Does the premium plan include phone support and more than five users?"),
)
FILLER = ("I have attached what I could find. ", "My customer number is {n}. ",
          "This is quite urgent for us. ", "I already tried logging out and in again. ",
          "Thank you for looking into it. ", "It happens on both my phone and my laptop. ")
REPLIES = ("Thanks, but it still does not work.", "Any news on this?",
           "Here is the screenshot you asked for.", "That solved it, thank you!")
SKILLS = {"shipping": "logistics", "billing": "billing", "account": "accounts",
          "technical": "tech", "sales": "sales"}
REPLY_SHARE = 0.30
REFS_ONLY_SHARE = 0.10
ATTACHMENT_SHARE = 0.04
HTML_SHARE = 0.30
START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Traffic:
    messages: tuple[InboundMessage, ...]
    replies: int  # how many of them should thread onto an earlier conversation


def _person(rng: random.Random, i: int) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = "".join(c for c in f"{first}.{last}".lower() if c.isascii() and c not in "'")
    return f"{first} {last}", f"{local}.{i}@{rng.choice(DOMAINS)}"


def _body(rng: random.Random, opening: str, n: int) -> str:
    # Most messages are a few lines; one in twenty is a long, pasted log or thread.
    paragraphs = rng.randint(20, 120) if rng.random() < 0.05 else rng.randint(0, 4)
    text = [opening]
    for _ in range(paragraphs):
        text.append("".join(rng.choice(FILLER).format(n=n) for _ in range(rng.randint(1, 5))))
    return "Hello,\n\n" + "\n\n".join(text) + "\n\nBest regards"


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in text.replace("&", "&amp;").split("\n\n"))
    return f'<div dir="ltr" style="font-family:Arial">{paragraphs}<script>x()</script></div>'


def _attachments(rng: random.Random, i: int) -> tuple[InboundAttachment, ...]:
    if rng.random() >= ATTACHMENT_SHARE:
        return ()
    size = rng.randint(500, 40_000)
    kind = rng.choice((("log.txt", "text/plain"), ("photo.png", "image/png"),
                       ("invoice.pdf", "application/pdf")))
    return (InboundAttachment(f"{i}-{kind[0]}", kind[1], rng.randbytes(size)),)


def _new(rng: random.Random, i: int, at: datetime) -> InboundMessage:
    channel = rng.choices((Channel.EMAIL, Channel.CHAT, Channel.FORM), (50, 30, 20))[0]
    name, address = _person(rng, i)
    n = 100_000 + i
    subject_tpl, topic, opening = rng.choice(TOPICS)
    text = _body(rng, opening.format(n=n), n)
    routing = RoutingHints(
        skills=((SKILLS[topic], rng.randint(1, 5)),) if rng.random() < 0.5 else (),
        priority=rng.choices(tuple(Priority), (10, 70, 15, 5))[0],
    )
    if channel is Channel.CHAT:
        visitor = f"visitor-{rng.getrandbits(64):016x}"
        email = address if rng.random() < 0.3 else None
        return InboundMessage(
            channel=channel, external_id=f"chat-{i}", sender=Sender(visitor, name, email),
            text=text[:2000], received_at=at, routing=routing,
        )
    subject = subject_tpl.format(n=n)
    if channel is Channel.FORM:
        return InboundMessage(
            channel=channel, external_id=f"form-{i}", sender=Sender(address, name),
            text=text, subject=subject, received_at=at, routing=routing,
            attachments=_attachments(rng, i),
        )
    message_id = f"<{i}.{rng.getrandbits(48):x}@{address.rpartition('@')[2]}>"
    return InboundMessage(
        channel=channel, external_id=message_id, sender=Sender(address, name), text=text,
        subject=subject, html=_html(text) if rng.random() < HTML_SHARE else None,
        received_at=at, thread=ThreadHeaders(message_id=message_id), routing=routing,
        attachments=_attachments(rng, i), meta=(("mailer", "Bench Mail 1.0"),),
    )


def _reply(rng: random.Random, i: int, at: datetime, parent: InboundMessage) -> InboundMessage:
    message_id = f"<{i}.{rng.getrandbits(48):x}@reply.example>"
    chain = (*parent.thread.references, parent.thread.message_id or "")[-20:]
    in_reply_to = parent.thread.message_id
    if rng.random() < REFS_ONLY_SHARE:
        # The customer answers our outbound reply, which ingest never saw.
        in_reply_to = f"<agent-{i}@helpdesk.example>"
    quoted = "\n".join("> " + line for line in parent.text.splitlines()[:40])
    text = f"{rng.choice(REPLIES)}\n\nOn {parent.received_at:%c}, you wrote:\n{quoted}"
    return InboundMessage(
        channel=Channel.EMAIL, external_id=message_id, sender=parent.sender, text=text,
        subject="Re: " + parent.subject.removeprefix("Re: "), received_at=at,
        thread=ThreadHeaders(message_id, in_reply_to, tuple(h for h in chain if h)),
        attachments=_attachments(rng, i), meta=(("mailer", "Bench Mail 1.0"),),
    )


def generate(n: int, *, seed: int = 42, reply_gap: int = 64) -> Traffic:
    rng = random.Random(seed)
    messages: list[InboundMessage] = []
    emails: list[int] = []  # positions of email messages, replies included
    replies = 0
    for i in range(n):
        at = START + timedelta(seconds=3 * i)
        # Customers answer recent threads: the parent is one of the last 2,000 emails
        # that are at least reply_gap messages old.
        ready = bisect.bisect_right(emails, i - reply_gap)
        if ready and rng.random() < REPLY_SHARE:
            parent = messages[emails[rng.randrange(max(0, ready - 2000), ready)]]
            messages.append(_reply(rng, i, at, parent))
            replies += 1
        else:
            messages.append(_new(rng, i, at))
        if messages[-1].channel is Channel.EMAIL:
            emails.append(i)
    return Traffic(tuple(messages), replies)
