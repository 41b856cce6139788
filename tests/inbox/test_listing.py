"""Conversation lists: filters, visibility per viewer, and keyset pagination under writes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

import pytest

from inbox.access import Viewer
from inbox.actions.agents import ensure_team
from inbox.actions.conversations import ConversationChanges, update_conversation
from inbox.db import Store
from inbox.ingest import Ingestor
from inbox.listing import (
    BadCursor,
    ConversationFilter,
    Order,
    Page,
    encode_cursor,
    list_conversations,
)
from inbox.types import Channel, Role, Status
from tests.conftest import inbound
from tests.inbox.support import new_agent

SUPERVISOR = Viewer(agent_id=0, role=Role.SUPERVISOR, team_ids=frozenset())


@dataclass(frozen=True)
class Inbox:
    """Five conversations spread over channels, states, teams and agents."""

    ann: Viewer  # an agent in team one
    bob: Viewer  # an agent in no team
    sue: Viewer  # a supervisor (listing needs no row for the viewer)
    team_one: int
    team_two: int
    ids: dict[str, int]


@pytest.fixture
async def box(store: Store, ingestor: Ingestor) -> Inbox:
    ann = await new_agent(store, "ann@support.example", teams=("one",))
    bob = await new_agent(store, "bob@support.example")
    async with store.write() as session:
        one = await ensure_team(session, "one")
        two = await ensure_team(session, "two")
    specs = {
        # name: (channel, subject, text, changes)
        "order": (Channel.EMAIL, "Where is order 1000?", "It is late", ConversationChanges()),
        "vip": (Channel.CHAT, "", "Hello, I am important",
                ConversationChanges(team_id=one, assignee_id=ann, tags=("VIP",))),
        "refund": (Channel.FORM, "Money back", "Refund 100% please",
                   ConversationChanges(status=Status.RESOLVED, team_id=two)),
        "invoice": (Channel.EMAIL, "Invoice copy", "Send the PDF",
                    ConversationChanges(status=Status.PENDING, team_id=two, assignee_id=ann,
                                        tags=("billing",))),
        "wait": (Channel.CHAT, "", "call me tomorrow",
                 ConversationChanges(team_id=two, assignee_id=bob)),
    }
    ids = {}
    for name, (channel, subject, text, changes) in specs.items():
        result = await ingestor.ingest(
            inbound(name, channel=channel, subject=subject, text=text, sender=f"{name}@example.com")
        )
        ids[name] = result.conversation_id
        async with store.write() as session:
            await update_conversation(session, result.conversation_id, None, changes)
    return Inbox(
        ann=Viewer(ann, Role.AGENT, frozenset({one})),
        bob=Viewer(bob, Role.AGENT, frozenset()),
        sue=Viewer(bob + 1000, Role.SUPERVISOR, frozenset()),
        team_one=one, team_two=two, ids=ids,
    )


async def _names(store: Store, box: Inbox, viewer: Viewer, **filters: object) -> set[str]:
    async with store.read() as session:
        page = await list_conversations(
            session, viewer, ConversationFilter(**filters), limit=100  # type: ignore[arg-type]
        )
    by_id = {v: k for k, v in box.ids.items()}
    return {by_id[item.id] for item in page.items}


async def test_filters(store: Store, box: Inbox) -> None:
    sue = box.sue
    assert await _names(store, box, sue) == set(box.ids)
    assert await _names(store, box, sue, statuses=(Status.RESOLVED,)) == {"refund"}
    assert await _names(store, box, sue, statuses=(Status.OPEN, Status.PENDING)) == {
        "order", "vip", "invoice", "wait"
    }
    assert await _names(store, box, sue, channels=(Channel.CHAT,)) == {"vip", "wait"}
    assert await _names(store, box, sue, channels=(Channel.EMAIL, Channel.FORM)) == {
        "order", "refund", "invoice"
    }
    assert await _names(store, box, sue, assignee="none") == {"order", "refund"}
    assert await _names(store, box, box.ann, assignee=box.ann.agent_id) == {"vip", "invoice"}
    assert await _names(store, box, sue, assignee=box.bob.agent_id) == {"wait"}
    assert await _names(store, box, sue, team_id=box.team_two) == {"refund", "invoice", "wait"}
    assert await _names(store, box, sue, tag="vip") == {"vip"}
    assert await _names(store, box, sue, tag="billing", statuses=(Status.OPEN,)) == set()


async def test_query_matches_subject_and_body_case_insensitively(store: Store, box: Inbox) -> None:
    sue = box.sue
    assert await _names(store, box, sue, query="INVOICE") == {"invoice"}
    assert await _names(store, box, sue, query="refund") == {"refund"}
    # LIKE wildcards in the query are literal characters.
    assert await _names(store, box, sue, query="100%") == {"refund"}
    assert await _names(store, box, sue, query="1_00") == set()
    assert await _names(store, box, sue, query="%") == {"refund"}
    assert await _names(store, box, sue, query="nothing like this") == set()


async def test_agents_see_own_team_and_teamless_conversations(store: Store, box: Inbox) -> None:
    assert await _names(store, box, box.sue) == set(box.ids)
    # ann: no-team "order", her team's "vip", and "invoice" assigned to her in team two.
    assert await _names(store, box, box.ann) == {"order", "vip", "invoice"}
    assert await _names(store, box, box.bob) == {"order", "wait"}
    admin = Viewer(box.bob.agent_id, Role.ADMIN, frozenset())
    assert await _names(store, box, admin) == set(box.ids)
    # The rule the list applies is the rule single reads and the event fan-out apply.
    async with store.read() as session:
        page = await list_conversations(session, box.sue, ConversationFilter(), limit=100)
    for viewer in (box.ann, box.bob):
        listed = await _names(store, box, viewer)
        by_rule = {
            name for name, cid in box.ids.items()
            for item in page.items if item.id == cid and viewer.can_see_json(item.to_json())
        }
        assert by_rule == listed


async def _walk_while_writing(
    store: Store, ingestor: Ingestor, order: Order, new_total: int, per_gap: int
) -> tuple[list[int], list[int]]:
    """Walk pages of 7, ingesting ``per_gap`` conversations before each following page."""
    seen: list[int] = []
    added: list[int] = []
    cursor: str | None = None
    for _ in range(100):
        async with store.read() as session:
            page: Page = await list_conversations(
                session, SUPERVISOR, ConversationFilter(order=order), limit=7, cursor=cursor
            )
        assert len(page.items) <= 7
        seen.extend(item.id for item in page.items)
        if page.next_cursor is None:
            return seen, added
        assert len(page.items) == 7
        cursor = page.next_cursor
        for _ in range(min(per_gap, new_total - len(added))):
            n = len(added)
            result = await ingestor.ingest(inbound(f"new-{n}", text=f"new {n}"))
            added.append(result.conversation_id)
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("order", ["recent", "newest", "oldest"])
async def test_keyset_pagination_is_stable_while_conversations_arrive(
    store: Store, ingestor: Ingestor, order: Order
) -> None:
    original = [
        (await ingestor.ingest(inbound(f"old-{i}", text=f"old {i}"))).conversation_id
        for i in range(40)
    ]

    seen, added = await _walk_while_writing(store, ingestor, order, new_total=50, per_gap=10)

    assert len(added) == 50
    assert len(seen) == len(set(seen)), "a conversation appeared twice"
    assert set(original) <= set(seen), "an original conversation was skipped"
    if order == "oldest":
        assert seen == sorted(seen)
        assert set(seen) == set(original) | set(added)
    else:
        # New conversations sort before the cursor and never enter a walk under way.
        assert set(seen) == set(original)
        assert seen == sorted(original, reverse=True)


async def test_pages_follow_last_message_order(store: Store, ingestor: Ingestor) -> None:
    ids = [(await ingestor.ingest(inbound(f"m-{i}", text=f"m {i}"))).conversation_id
           for i in range(5)]
    # A new message on the oldest conversation brings it to the top of "recent".
    await ingestor.ingest(inbound("m-0-again", channel=Channel.EMAIL, text="again",
                                  conversation_id=ids[0]))
    async with store.read() as session:
        page = await list_conversations(session, SUPERVISOR, ConversationFilter(), limit=3)
        rest = await list_conversations(session, SUPERVISOR, ConversationFilter(), limit=3,
                                        cursor=page.next_cursor)
    assert [c.id for c in page.items] == [ids[0], ids[4], ids[3]]
    assert [c.id for c in rest.items] == [ids[2], ids[1]]
    assert rest.next_cursor is None


def _raw_cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_bad_cursor_is_refused(store: Store, subtests: pytest.Subtests) -> None:
    cases: list[tuple[str, Order]] = [
        ("not a cursor!", "recent"),
        ("bm90IGpzb24", "recent"),  # base64 of "not json"
        (_raw_cursor([]), "recent"),
        (_raw_cursor(["recent", "2026-01-01T00:00:00", 5]), "recent"),  # naive time
        (_raw_cursor(["recent", "yesterday", 5]), "recent"),
        (_raw_cursor(["recent", "2026-01-01T00:00:00+00:00", "5"]), "recent"),
        (_raw_cursor(["newest", "abc", 5]), "newest"),
        (encode_cursor("newest", 9, 9), "recent"),  # a cursor from another order
        (encode_cursor("recent", datetime.fromisoformat("2026-01-01T00:00:00+00:00"), 3), "oldest"),
    ]
    for cursor, order in cases:
        with subtests.test(cursor=cursor, order=order):
            with pytest.raises(BadCursor):
                async with store.read() as session:
                    await list_conversations(
                        session, SUPERVISOR, ConversationFilter(order=order), cursor=cursor
                    )


async def test_limit_is_clamped(store: Store, ingestor: Ingestor) -> None:
    for i in range(3):
        await ingestor.ingest(inbound(f"c-{i}", text=f"c {i}"))
    async with store.read() as session:
        one = await list_conversations(session, SUPERVISOR, ConversationFilter(), limit=0)
        empty = await list_conversations(
            session, SUPERVISOR, ConversationFilter(statuses=(Status.SNOOZED,))
        )
    assert len(one.items) == 1 and one.next_cursor is not None
    assert empty.items == () and empty.next_cursor is None
