"""``/api/v1/conversations``: listing with filters and keyset paging, reading, changing,
replying, notes, starting a conversation, and what an agent may see."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from inbox.db import Store
from inbox.ingest import Ingestor
from inbox.models import OutboxItem
from inbox.types import Channel
from tests.conftest import inbound
from tests.web.support import Person, count, error_of

API = "/api/v1/conversations"
SUMMARY_KEYS = {
    "id", "channel", "subject", "status", "snoozed_until", "priority", "assignee_id", "team_id",
    "contact", "tags", "skills", "created_at", "updated_at", "first_response_at",
    "last_customer_message_at", "last_message_at", "resolved_at",
}


async def ids(client: httpx.AsyncClient, person: Person, query: str = "") -> list[int]:
    response = await client.get(f"{API}?limit=100&{query}", headers=person.auth)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def patch(
    client: httpx.AsyncClient, person: Person, conversation_id: int, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"{API}/{conversation_id}", json=body, headers=person.auth)


async def team_only_supervisor_has(
    client: httpx.AsyncClient, supervisor: Person, agent: Person
) -> int:
    sup = (await client.get("/api/v1/agents/me", headers=supervisor.auth)).json()["team_ids"]
    mine = (await client.get("/api/v1/agents/me", headers=agent.auth)).json()["team_ids"]
    (billing,) = set(sup) - set(mine)
    return int(billing)


# --- listing -------------------------------------------------------------------------------


async def test_list_returns_items_and_cursor(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(inbound("m-1", sender="lena@customer.example", name="Lena"))
    second = await ingestor.ingest(inbound("m-2", subject="Second"))
    response = await client.get(API, headers=agent.auth)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    assert body["next_cursor"] is None
    # most recent activity first
    assert [c["id"] for c in body["items"]] == [second.conversation_id, first.conversation_id]
    item = body["items"][1]
    assert set(item) >= SUMMARY_KEYS
    assert item["channel"] == "email" and item["subject"] == "Where is my order?"
    assert item["status"] == "open" and item["priority"] == "normal"
    assert item["assignee_id"] is None
    assert item["contact"]["email"] == "lena@customer.example"
    assert item["contact"]["name"] == "Lena"
    assert datetime.fromisoformat(item["last_message_at"].replace("Z", "+00:00")).tzinfo


async def test_list_filters(
    client: httpx.AsyncClient, agent: Person, supervisor: Person, ingestor: Ingestor
) -> None:
    refund = (await ingestor.ingest(inbound("m-1", subject="Refund please"))).conversation_id
    chat = (await ingestor.ingest(inbound(
        "m-2", channel=Channel.CHAT, sender="visitor-9", subject="",
        text="My printer is on fire (100% sure)",
    ))).conversation_id
    form = (await ingestor.ingest(inbound(
        "m-3", channel=Channel.FORM, sender="jo@example.net", subject="Invoice copy",
        text="Please send a copy of invoice_7",
    ))).conversation_id
    assert (await patch(client, agent, refund, {"assignee_id": agent.id,
                                                "tags": ["Billing"]})).status_code == 200
    assert (await patch(client, agent, chat, {"status": "pending"})).status_code == 200

    assert await ids(client, agent, "status=pending") == [chat]
    assert set(await ids(client, agent, "status=open")) == {refund, form}
    assert set(await ids(client, agent, "status=open,pending")) == {refund, chat, form}
    assert await ids(client, agent, "status=resolved") == []
    assert await ids(client, agent, "channel=chat") == [chat]
    assert set(await ids(client, agent, "channel=email,form")) == {refund, form}
    assert await ids(client, agent, "assignee=me") == [refund]
    assert await ids(client, supervisor, "assignee=me") == []
    assert await ids(client, supervisor, f"assignee={agent.id}") == [refund]
    assert set(await ids(client, agent, "assignee=none")) == {chat, form}
    assert await ids(client, agent, "tag=billing") == [refund]
    assert await ids(client, agent, "tag=BILLING") == [refund]
    assert await ids(client, agent, "tag=refund") == []
    assert await ids(client, agent, "q=REFUND") == [refund]  # subject, any case
    assert await ids(client, agent, "q=printer") == [chat]  # message text
    assert await ids(client, agent, "q=100%25") == [chat]
    # LIKE wildcards are literal characters, not patterns
    assert await ids(client, agent, "q=%25") == [chat]
    assert await ids(client, agent, "q=e_7") == [form]
    assert await ids(client, agent, "q=_") == [form]
    assert await ids(client, agent, "q=nothing+matches+this") == []
    assert await ids(client, agent, "status=open&channel=email&assignee=me&tag=billing") == [
        refund
    ]


async def test_list_orders(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor, store: Store
) -> None:
    created = [(await ingestor.ingest(inbound(f"m-{n}"))).conversation_id for n in range(3)]
    # a reply moves the oldest conversation to the top of "recent" only
    reply = await client.post(
        f"{API}/{created[0]}/messages", json={"body": "Looking"}, headers=agent.auth
    )
    assert reply.status_code == 201
    assert await ids(client, agent) == [created[0], created[2], created[1]]
    assert await ids(client, agent, "order=newest") == created[::-1]
    assert await ids(client, agent, "order=oldest") == created
    error_of(await client.get(f"{API}?order=random", headers=agent.auth), 422)


async def walk(client: httpx.AsyncClient, person: Person, query: str, between: Any) -> list[int]:
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        url = f"{API}?{query}" + (f"&cursor={cursor}" if cursor else "")
        body = (await client.get(url, headers=person.auth)).json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        pages += 1
        assert pages < 100
        if cursor is None:
            return seen
        await between(pages)


async def test_keyset_walk_is_stable_while_conversations_arrive(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    seeded = [(await ingestor.ingest(inbound(f"seed-{n}"))).conversation_id for n in range(40)]
    arrived: list[int] = []
    batches = [8, 7, 7, 7, 7, 7, 7]  # 50 arrivals over the 7 gaps between 8 pages of 5

    async def ingest_some(page: int) -> None:
        for n in range(batches[page - 1] if page <= len(batches) else 0):
            result = await ingestor.ingest(inbound(f"new-{page}-{n}", subject=f"New {page}"))
            arrived.append(result.conversation_id)

    walked = await walk(client, agent, "limit=5", ingest_some)
    assert len(arrived) == 50
    assert len(walked) == len(set(walked)), "a conversation appeared on two pages"
    assert sorted(walked) == sorted(seeded), "the walk skipped or invented conversations"
    assert walked == seeded[::-1]  # last activity first, and the seed arrived in id order


async def test_keyset_walk_by_oldest_reaches_new_arrivals(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    seeded = [(await ingestor.ingest(inbound(f"seed-{n}"))).conversation_id for n in range(12)]
    arrived: list[int] = []

    async def ingest_one(page: int) -> None:
        arrived.append((await ingestor.ingest(inbound(f"new-{page}"))).conversation_id)

    walked = await walk(client, agent, "limit=5&order=oldest", ingest_one)
    assert len(walked) == len(set(walked))
    assert walked == sorted(walked)
    assert walked[: len(seeded)] == seeded
    assert set(walked) <= set(seeded) | set(arrived)


async def test_bad_cursor_and_bad_parameters_are_422(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    for n in range(3):
        await ingestor.ingest(inbound(f"m-{n}"))
    recent_cursor = (await client.get(f"{API}?limit=1", headers=agent.auth)).json()["next_cursor"]
    assert recent_cursor
    foreign = base64.urlsafe_b64encode(json.dumps(["recent", "yesterday", 3]).encode()).decode()
    naive = base64.urlsafe_b64encode(
        json.dumps(["recent", "2026-01-01T00:00:00", 3]).encode()
    ).decode()
    for cursor in ("garbage", "!!!", foreign, naive, "W10", "e30"):
        response = await client.get(f"{API}?cursor={cursor}", headers=agent.auth)
        assert error_of(response, 422)["field"] == "cursor", cursor
    # a cursor of one order is not valid for another
    response = await client.get(f"{API}?order=newest&cursor={recent_cursor}", headers=agent.auth)
    assert error_of(response, 422)["field"] == "cursor"

    for query, field in [
        ("limit=101", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"),
        ("assignee=someone", "assignee"), ("team=x", "team"), ("q=" + "a" * 201, "q"),
    ]:
        response = await client.get(f"{API}?{query}", headers=agent.auth)
        assert error_of(response, 422)["field"] == field, query


async def test_limit_zero_is_refused(client: httpx.AsyncClient, agent: Person) -> None:
    response = await client.get(f"{API}?limit=0", headers=agent.auth)
    assert error_of(response, 422)["field"] == "limit"


# --- one conversation ----------------------------------------------------------------------


async def test_get_one_includes_messages(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    result = await ingestor.ingest(inbound("m-1", text="First words"))
    response = await client.get(f"{API}/{result.conversation_id}", headers=agent.auth)
    assert response.status_code == 200
    detail = response.json()
    assert set(detail) >= SUMMARY_KEYS | {"messages"}
    assert detail["id"] == result.conversation_id
    (message,) = detail["messages"]
    assert message["id"] == result.message_id
    assert message["direction"] == "inbound" and message["internal"] is False
    assert message["body_text"] == "First words"
    assert message["conversation_id"] == result.conversation_id

    missing = await client.get(f"{API}/{result.conversation_id + 1000}", headers=agent.auth)
    assert error_of(missing, 404)["code"] == "not_found"


async def test_agent_cannot_see_another_teams_conversation(
    client: httpx.AsyncClient, agent: Person, supervisor: Person, ingestor: Ingestor
) -> None:
    conversation_id = (await ingestor.ingest(inbound("m-1"))).conversation_id
    url = f"{API}/{conversation_id}"
    assert (await client.get(url, headers=agent.auth)).status_code == 200
    billing = await team_only_supervisor_has(client, supervisor, agent)

    moved = await patch(client, supervisor, conversation_id, {"team_id": billing})
    assert moved.status_code == 200 and moved.json()["team_id"] == billing

    hidden = await client.get(url, headers=agent.auth)
    assert error_of(hidden, 404)["code"] == "not_found"
    assert conversation_id not in await ids(client, agent)
    error_of(await patch(client, agent, conversation_id, {"priority": "high"}), 404)
    note = await client.post(f"{url}/messages", json={"body": "x"}, headers=agent.auth)
    error_of(note, 404)
    assert (await client.get(url, headers=supervisor.auth)).json()["priority"] == "normal"
    assert conversation_id in await ids(client, supervisor)

    # assigned to them, the agent sees it again, whatever its team
    assert (await patch(client, supervisor, conversation_id,
                        {"assignee_id": agent.id})).status_code == 200
    assert (await client.get(url, headers=agent.auth)).status_code == 200
    assert conversation_id in await ids(client, agent)


async def test_patch_changes_and_validates(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id

    async def ok(body: dict[str, Any]) -> dict[str, Any]:
        response = await patch(client, agent, cid, body)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        assert data == (await client.get(f"{API}/{cid}", headers=agent.auth)).json()
        return data

    assert (await ok({"status": "pending"}))["status"] == "pending"
    assert (await ok({"priority": "urgent"}))["priority"] == "urgent"
    assert (await ok({"tags": ["Billing", " refund ", "billing"]}))["tags"] == [
        "billing", "refund"
    ]
    assert (await ok({"tags": []}))["tags"] == []
    assert (await ok({"assignee_id": agent.id}))["assignee_id"] == agent.id
    assert (await ok({"assignee_id": None}))["assignee_id"] is None
    resolved = await ok({"status": "resolved"})
    assert resolved["status"] == "resolved" and resolved["resolved_at"]

    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    snoozed = await ok({"status": "snoozed", "snoozed_until": later})
    assert snoozed["status"] == "snoozed" and snoozed["snoozed_until"]
    assert snoozed["resolved_at"] is None
    reopened = await ok({"status": "open"})
    assert reopened["snoozed_until"] is None

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body, field in [
        ({"status": "snoozed"}, "snoozed_until"),
        ({"status": "snoozed", "snoozed_until": past}, "snoozed_until"),
        ({"status": "snoozed", "snoozed_until": "2099-01-01T00:00:00"}, "snoozed_until"),
        ({"snoozed_until": later}, "snoozed_until"),
        ({"status": "open", "snoozed_until": later}, "snoozed_until"),
        ({"assignee_id": 987654}, "assignee_id"),
        ({"team_id": 987654}, "team_id"),
        ({"tags": ["x" * 65]}, "tags"),
        ({"tags": [f"t{n}" for n in range(51)]}, "tags"),
    ]:
        response = await patch(client, agent, cid, body)
        assert error_of(response, 422)["field"] == field, body
    # nothing of the refused changes stuck
    assert (await client.get(f"{API}/{cid}", headers=agent.auth)).json()["status"] == "open"

    error_of(await patch(client, agent, cid + 1000, {"status": "open"}), 404)


async def test_reply_is_queued_with_an_outbox_row(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor, store: Store
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id
    response = await client.post(
        f"{API}/{cid}/messages", json={"body": "We are on it", "internal": False},
        headers=agent.auth,
    )
    assert response.status_code == 201
    message = response.json()
    assert message["direction"] == "outbound" and message["internal"] is False
    assert message["delivery_status"] == "queued"
    assert message["author_agent_id"] == agent.id and message["body_text"] == "We are on it"
    assert message["channel"] == "email" and message["conversation_id"] == cid
    async with store.read() as session:
        rows = list(await session.scalars(
            select(OutboxItem).where(OutboxItem.message_id == message["id"])
        ))
    assert [(r.status, r.channel) for r in rows] == [("pending", "email")]

    detail = (await client.get(f"{API}/{cid}", headers=agent.auth)).json()
    assert [m["id"] for m in detail["messages"]][-1] == message["id"]
    assert detail["first_response_at"]


async def test_internal_note_is_not_queued(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor, store: Store
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id
    response = await client.post(
        f"{API}/{cid}/messages", json={"body": "VIP customer", "internal": True},
        headers=agent.auth,
    )
    assert response.status_code == 201
    note = response.json()
    assert note["direction"] == "note" and note["internal"] is True
    assert note["delivery_status"] is None
    assert await count(store, OutboxItem) == 0
    detail = (await client.get(f"{API}/{cid}", headers=agent.auth)).json()
    assert detail["first_response_at"] is None  # a note is not a response
    assert detail["messages"][-1]["id"] == note["id"]


async def test_message_body_is_validated(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor, store: Store
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id
    for body, field in [
        ({}, "body"), ({"body": "   "}, "body"), ({"body": 5}, "body"),
        ({"body": "x" * 100_001}, "body"), ({"body": "hi", "internal": "yes"}, "internal"),
    ]:
        response = await client.post(f"{API}/{cid}/messages", json=body, headers=agent.auth)
        assert error_of(response, 422)["field"] == field, str(body)[:50]
    assert await count(store, OutboxItem) == 0
    missing = await client.post(f"{API}/{cid + 1000}/messages", json={"body": "hi"},
                                headers=agent.auth)
    error_of(missing, 404)


async def test_start_conversation_queues_the_first_reply(
    client: httpx.AsyncClient, agent: Person, store: Store
) -> None:
    response = await client.post(API, headers=agent.auth, json={
        "contact": {"email": "Lena@Customer.example", "name": "Lena"},
        "subject": "Your refund", "body": "Your refund was sent today.", "tags": ["refund"],
    })
    assert response.status_code == 201, response.text
    detail = response.json()
    assert detail["channel"] == "email" and detail["subject"] == "Your refund"
    assert detail["contact"]["email"] == "lena@customer.example"
    assert detail["tags"] == ["refund"]
    (message,) = detail["messages"]
    assert message["direction"] == "outbound" and message["delivery_status"] == "queued"
    assert await count(store, OutboxItem, OutboxItem.message_id == message["id"]) == 1
    assert detail["id"] in await ids(client, agent)

    for body, field in [
        ({"subject": "s", "body": "b"}, "contact"),
        ({"contact": "lena@customer.example", "subject": "s", "body": "b"}, "contact"),
        ({"contact": {"email": "not-an-address"}, "subject": "s", "body": "b"}, "email"),
        ({"contact": {"email": "a@b.example"}, "body": "b"}, "subject"),
        ({"contact": {"email": "a@b.example"}, "subject": "s"}, "body"),
        ({"contact": {"email": "a@b.example"}, "subject": "s", "body": "b", "channel": "chat"},
         "channel"),
    ]:
        refused = await client.post(API, headers=agent.auth, json=body)
        assert error_of(refused, 422)["field"] == field, body
    assert len(await ids(client, agent)) == 1


# --- presence ------------------------------------------------------------------------------


async def test_presence_is_set_and_validated(client: httpx.AsyncClient, agent: Person) -> None:
    for presence in ("online", "away", "offline", "online"):
        response = await client.put(
            "/api/v1/agents/me/presence", json={"presence": presence}, headers=agent.auth
        )
        assert response.status_code == 200
        assert response.json() == {"agent_id": agent.id, "presence": presence}
    me = (await client.get("/api/v1/agents/me", headers=agent.auth)).json()
    assert me["presence"] == "online" and me["id"] == agent.id

    for body in ({"presence": "busy"}, {}, {"presence": None}, {"presence": 1},
                 {"presence": "ONLINE"}):
        response = await client.put("/api/v1/agents/me/presence", json=body, headers=agent.auth)
        assert error_of(response, 422)["field"] == "presence", body
    assert (await client.get("/api/v1/agents/me", headers=agent.auth)).json()[
        "presence"] == "online"


async def test_a_patch_that_moves_a_conversation_out_of_view_does_not_answer_404(
    client: httpx.AsyncClient, agent: Person, supervisor: Person, ingestor: Ingestor
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id
    billing = await team_only_supervisor_has(client, supervisor, agent)
    response = await patch(client, agent, cid, {"team_id": billing})
    after = (await client.get(f"{API}/{cid}", headers=supervisor.auth)).json()
    # Either the change is refused and nothing happens, or it is made and reported;
    # a committed change must never be answered "not found".
    if response.status_code == 200:
        assert after["team_id"] == billing
    else:
        assert response.status_code in (403, 422), (response.status_code, after["team_id"])
        assert after["team_id"] is None
