"""Bulk data for the list benchmark: contacts, conversations, messages and tags.

The action functions write one conversation per transaction, which would take hours for
a million rows, so this module writes rows in bulk instead: SQLAlchemy Core executemany
on SQLite, ``COPY`` (asyncpg ``copy_records_to_table``) on PostgreSQL. Both get the same
rows from one deterministic generator. Agents and teams are made beforehand through the
action functions; conversations refer to them by id.

The shape follows a support desk a few years old: most conversations are resolved, the
recent ones are open or pending; 40% belong to no team; a conversation has one to three
messages. One message body holds ``RARE_WORD``, like an order number an agent searches for.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import insert

from bench.common import TempDatabase, log
from inbox.db import create_engine
from inbox.models import Contact, Conversation, ConversationTag, Message

CHUNK = 50_000
SPAN = timedelta(days=3 * 365)
NOW = datetime(2026, 11, 1, tzinfo=UTC)
COMMON_WORD = "refund"
RARE_WORD = "ord-zq81k7x"
SUBJECTS = ("Refund for order {n}", "Order {n} has not arrived", "Cannot log in",
            "Invoice {n} is wrong", "App crashes on upload", "Question about my plan",
            "Change of delivery address for {n}", "Cancel subscription {n}")
BODIES = ("I returned order {n} two weeks ago and I am still waiting.",
          "The tracking page for {n} has not changed since Monday.",
          "The reset link says it has expired every time I click it.",
          "Our invoice {n} shows the old company address; please correct it.")
TAGS = ("vip", "refund", "bug", "escalated", "follow-up", "spam")
CHANNELS = ("email", "chat", "form")
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Population:
    """Who the generated conversations may belong to: ids made by the action functions."""

    conversations: int
    agent_ids: tuple[int, ...]
    team_ids: tuple[int, ...]

    @property
    def contacts(self) -> int:
        return max(1, self.conversations // 4)

    @property
    def rare_id(self) -> int:
        """The conversation whose first message holds ``RARE_WORD``; in no team, so that
        every agent can find it."""
        return self.conversations // 2 + 1


@dataclass
class Rows:
    contacts: list[dict[str, Any]]
    conversations: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    tags: list[dict[str, Any]]


def _status(rng: random.Random, age: float) -> str:
    # age: 0 for the newest conversation, 1 for the oldest.
    weights = (50, 20, 10, 20) if age < 0.05 else (3, 2, 1, 94)
    return rng.choices(("open", "pending", "snoozed", "resolved"), weights)[0]


def _conversation(rng: random.Random, cid: int, pop: Population) -> dict[str, Any]:
    age = 1 - cid / pop.conversations
    created = NOW - SPAN * age
    last = created + timedelta(minutes=rng.expovariate(1 / 600))
    status = _status(rng, age)
    assigned = status != "open" or rng.random() < 0.5
    return {
        "id": cid, "channel": rng.choice(CHANNELS),
        "subject": rng.choice(SUBJECTS).format(n=200_000 + cid),
        "status": status,
        "snoozed_until": NOW + timedelta(days=2) if status == "snoozed" else None,
        "priority": rng.choices(PRIORITIES, (10, 70, 15, 5))[0],
        "contact_id": rng.randint(1, pop.contacts),
        "assignee_id": rng.choice(pop.agent_ids) if assigned else None,
        "team_id": (
            rng.choice(pop.team_ids) if rng.random() < 0.6 and cid != pop.rare_id else None
        ),
        "created_at": created, "updated_at": last,
        "first_response_at": last if assigned else None,
        "last_customer_message_at": created, "last_message_at": last,
        "resolved_at": last if status == "resolved" else None,
    }


def _messages(rng: random.Random, conv: dict[str, Any], rare: bool) -> Iterator[dict[str, Any]]:
    count = 1 + (rng.random() < 0.5) + (rng.random() < 0.2)
    for k in range(count):
        inbound = k % 2 == 0
        text = rng.choice(BODIES).format(n=200_000 + conv["id"]) * rng.randint(1, 4)
        if rare and k == 0:
            text += f" My order number is {RARE_WORD.upper()}."
        external = f"<{conv['id']}.{k}@bench.example>" if inbound else None
        yield {
            "conversation_id": conv["id"], "direction": "inbound" if inbound else "outbound",
            "channel": conv["channel"],
            "author_agent_id": None if inbound else (conv["assignee_id"] or None),
            "author_contact_id": conv["contact_id"] if inbound else None,
            "body_text": text, "body_html": None, "external_id": external,
            "content_hash": f"{conv['id']:032x}{k:032x}" if inbound else None,
            "message_id_header": external, "in_reply_to": None, "references": None,
            "meta": {}, "delivery_status": None if inbound else "sent", "delivery_error": None,
            "created_at": conv["created_at"] if k == 0 else conv["last_message_at"],
        }


def contact_rows(start: int, stop: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"Customer {i}", "email": f"customer{i}@bench.example",
         "created_at": NOW - SPAN, "merged_into_id": None}
        for i in range(start, stop)
    ]


def conversation_rows(pop: Population, start: int, stop: int, seed: int) -> Rows:
    """Conversations ``start..stop-1`` (ids from 1) with their messages and tags;
    deterministic for a given seed and chunk."""
    rng = random.Random(seed * 1_000_003 + start)
    conversations = [_conversation(rng, cid, pop) for cid in range(start, stop)]
    messages = [m for c in conversations for m in _messages(rng, c, c["id"] == pop.rare_id)]
    tags = [
        {"conversation_id": c["id"], "tag": tag}
        for c in conversations if rng.random() < 0.15
        for tag in rng.sample(TAGS, rng.randint(1, 2))
    ]
    return Rows([], conversations, messages, tags)


def _chunks(pop: Population, seed: int) -> Iterator[Rows]:
    """Contacts first, so that every conversation's contact exists when it is written."""
    for start in range(1, pop.contacts + 1, CHUNK):
        yield Rows(contact_rows(start, min(start + CHUNK, pop.contacts + 1)), [], [], [])
    for start in range(1, pop.conversations + 1, CHUNK):
        stop = min(start + CHUNK, pop.conversations + 1)
        yield conversation_rows(pop, start, stop, seed)
        log(f"loaded {stop - 1:,} of {pop.conversations:,} conversations")


TABLES = (("contacts", Contact), ("conversations", Conversation), ("messages", Message),
          ("tags", ConversationTag))


async def _load_sqlite(db: TempDatabase, pop: Population, seed: int) -> Counter[str]:
    engine = create_engine(db.url)
    counts: Counter[str] = Counter()
    try:
        for chunk in _chunks(pop, seed):
            async with engine.begin() as conn:
                for field, model in TABLES:
                    batch = getattr(chunk, field)
                    if batch:
                        await conn.execute(insert(model), batch)
                        counts[field] += len(batch)
    finally:
        await engine.dispose()
    return counts


def _records(model: Any, batch: list[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    columns = [c.name for c in model.__table__.columns if c.name in batch[0]]
    json_columns = {"meta"} & set(columns)
    return columns, [
        tuple(json.dumps(row[c]) if c in json_columns else row[c] for c in columns)
        for row in batch
    ]


async def _load_postgresql(db: TempDatabase, pop: Population, seed: int) -> Counter[str]:
    assert db.admin_dsn is not None and db.schema is not None
    conn = await asyncpg.connect(db.admin_dsn)
    counts: Counter[str] = Counter()
    try:
        for chunk in _chunks(pop, seed):
            async with conn.transaction():
                for field, model in TABLES:
                    batch = getattr(chunk, field)
                    if batch:
                        columns, records = _records(model, batch)
                        await conn.copy_records_to_table(
                            model.__tablename__, records=records, columns=columns,
                            schema_name=db.schema,
                        )
                        counts[field] += len(batch)
        # Rows came with explicit ids: move the sequences past them.
        for table in ("contacts", "conversations"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{db.schema}\".{table}', 'id'), "
                f"(SELECT max(id) FROM \"{db.schema}\".{table}))"
            )
        log("postgresql: VACUUM ANALYZE (what autovacuum would have done by now)")
        for _, model in TABLES:
            await conn.execute(f'VACUUM ANALYZE "{db.schema}".{model.__tablename__}')
    finally:
        await conn.close()
    return counts


async def load(db: TempDatabase, pop: Population, seed: int) -> dict[str, float]:
    """Write the population's rows; how many rows each table got."""
    start = time.perf_counter()
    if db.backend == "sqlite":
        counts = await _load_sqlite(db, pop, seed)
    else:
        counts = await _load_postgresql(db, pop, seed)
    return {
        **{f"{field}_rows": counts[field] for field, _ in TABLES},
        "load_s": round(time.perf_counter() - start, 1),
    }
