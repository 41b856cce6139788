"""Server-rendered pages: the inbox views, one conversation, the no-JavaScript reply form,
escaping of customer text, and bounded form bodies."""

from __future__ import annotations

import httpx

from inbox.db import Store
from inbox.ingest import Ingestor
from inbox.models import OutboxItem
from tests.conftest import inbound
from tests.web.support import Person, count, csrf_from, login


async def test_inbox_views_and_escaping(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    mine = (await ingestor.ingest(inbound("m-1", subject="Assigned to Ada"))).conversation_id
    await ingestor.ingest(inbound("m-2", subject="<script>alert(1)</script>", name="<b>Eve</b>"))
    await login(client, agent.email)
    token = csrf_from((await client.get("/")).text)
    patched = await client.patch(f"/api/v1/conversations/{mine}", json={"assignee_id": agent.id},
                                 headers={"X-CSRF-Token": token})
    assert patched.status_code == 200

    everything = (await client.get("/?view=all")).text
    assert "Assigned to Ada" in everything
    assert "<script>alert(1)</script>" not in everything
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in everything
    assert "<b>Eve</b>" not in everything
    mine_page = (await client.get("/?view=mine")).text
    assert "Assigned to Ada" in mine_page and "alert(1)" not in mine_page
    unassigned = (await client.get("/?view=unassigned")).text
    assert "Assigned to Ada" not in unassigned and "alert(1)" in unassigned
    # an unknown view falls back to all rather than failing
    assert "Assigned to Ada" in (await client.get("/?view=bogus")).text


async def test_conversation_page_and_reply_form(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor, store: Store
) -> None:
    hostile = inbound("m-1", text="Hi <img src=x onerror=alert(1)>")
    cid = (await ingestor.ingest(hostile)).conversation_id
    assert (await client.get(f"/c/{cid}")).headers["location"] == "/login"
    await login(client, agent.email)

    page = await client.get(f"/c/{cid}")
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
    token = csrf_from(page.text)

    refused = await client.post(f"/c/{cid}/reply", data={"body": "no token"})
    assert refused.status_code == 403
    assert await count(store, OutboxItem) == 0

    reply = await client.post(f"/c/{cid}/reply", data={"csrf_token": token, "body": "Thanks!"})
    assert reply.status_code == 303 and reply.headers["location"] == f"/c/{cid}"
    note = await client.post(
        f"/c/{cid}/reply", data={"csrf_token": token, "body": "Private", "internal": "1"}
    )
    assert note.status_code == 303
    assert await count(store, OutboxItem) == 1

    empty = await client.post(f"/c/{cid}/reply", data={"csrf_token": token, "body": "  "})
    assert empty.status_code == 422 and "must not be empty" in empty.text

    thread = (await client.get(f"/c/{cid}")).text
    assert "Thanks!" in thread and "Private" in thread and "internal note" in thread
    assert "queued" in thread


async def test_conversation_page_hides_other_teams(
    client: httpx.AsyncClient, agent: Person, supervisor: Person, ingestor: Ingestor
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id
    sup = (await client.get("/api/v1/agents/me", headers=supervisor.auth)).json()["team_ids"]
    mine = (await client.get("/api/v1/agents/me", headers=agent.auth)).json()["team_ids"]
    (billing,) = set(sup) - set(mine)
    moved = await client.patch(f"/api/v1/conversations/{cid}", json={"team_id": billing},
                               headers=supervisor.auth)
    assert moved.status_code == 200
    await login(client, agent.email)
    assert (await client.get(f"/c/{cid}")).status_code == 404
    assert (await client.get(f"/c/{cid + 1000}")).status_code == 404
    token = csrf_from((await client.get("/")).text)
    sneaky = await client.post(f"/c/{cid}/reply", data={"csrf_token": token, "body": "hi"})
    assert sneaky.status_code == 404


async def test_form_bodies_are_bounded(client: httpx.AsyncClient, agent: Person) -> None:
    page = await client.get("/login")
    token = csrf_from(page.text)
    huge = await client.post("/login", data={
        "csrf_token": token, "email": agent.email, "password": "x" * 2_000_000,
    })
    assert huge.status_code == 413
    as_json = await client.post("/login", json={"csrf_token": token, "email": agent.email})
    assert as_json.status_code == 415
    many = {f"f{n}": "x" for n in range(100)}
    too_many = await client.post("/login", data={"csrf_token": token, **many})
    assert too_many.status_code == 400
