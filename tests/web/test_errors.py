"""No answer carries a stack trace, and input the database cannot hold is refused at the
edge instead of failing inside it."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import text

from inbox.db import Store
from inbox.ingest import Ingestor
from tests.conftest import inbound
from tests.web.support import Person, error_of

HUGE = 10**30  # beyond any integer column on either backend


async def test_error_answers_never_carry_a_traceback(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id
    json_headers = {**agent.auth, "Content-Type": "application/json"}
    answers = [
        await client.get("/api/v1/conversations"),
        await client.get("/api/v1/agents", headers=agent.auth),
        await client.get("/api/v1/conversations?cursor=%00%ff", headers=agent.auth),
        await client.get(f"/api/v1/conversations/{cid + 99}", headers=agent.auth),
        await client.put("/api/v1/agents/me/presence", content=b"{", headers=json_headers),
        await client.put("/api/v1/agents/me/presence", content=b"[" * 50_000,
                         headers=json_headers),
        await client.patch(f"/api/v1/conversations/{cid}", content=b"\xff\xfe\x00",
                           headers=json_headers),
        await client.patch(f"/api/v1/conversations/{cid}", json={"assignee_id": HUGE},
                           headers=agent.auth),
        await client.get(f"/api/v1/conversations/{HUGE}", headers=agent.auth),
        await client.get("/c/999999", headers=agent.auth),
        await client.post("/login", content=b"\xff=\xff",
                          headers={"Content-Type": "application/x-www-form-urlencoded"}),
        await client.get("/no/such/page"),
        await client.request("TRACE", "/api/v1/conversations", headers=agent.auth),
    ]
    for response in answers:
        assert response.status_code >= 400, response.request.url
        assert "Traceback" not in response.text
        assert 'File "' not in response.text
        assert "sqlalchemy" not in response.text.lower()
        if response.request.url.path.startswith("/api/"):
            error_of(response, response.status_code)


async def test_an_unexpected_error_is_logged_and_answered_internal(
    client: httpx.AsyncClient, agent: Person, store: Store, ingestor: Ingestor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A table gone from under the app is an error no handler expects: the catch-all answers.
    await ingestor.ingest(inbound("m-1"))
    async with store.write() as session:
        await session.execute(text("DROP TABLE conversation_tags"))
    with caplog.at_level(logging.ERROR, logger="web.errors"):
        response = await client.get("/api/v1/conversations", headers=agent.auth)
    assert error_of(response, 500) == {"code": "internal", "message": "internal server error"}
    assert "conversation_tags" not in response.text
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


async def test_out_of_range_conversation_id_is_404_not_500(
    client: httpx.AsyncClient, agent: Person
) -> None:
    read = await client.get(f"/api/v1/conversations/{HUGE}", headers=agent.auth)
    assert error_of(read, 404)["code"] == "not_found"


async def test_out_of_range_contact_ids_are_refused_not_500(
    client: httpx.AsyncClient, supervisor: Person, ingestor: Ingestor
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id
    detail = await client.get(f"/api/v1/conversations/{cid}", headers=supervisor.auth)
    contact_id = detail.json()["contact"]["id"]
    in_path = await client.post(
        f"/api/v1/contacts/{HUGE}/merge", json={"merge_id": contact_id}, headers=supervisor.auth
    )
    assert error_of(in_path, 404)["code"] == "not_found"
    in_body = await client.post(
        f"/api/v1/contacts/{contact_id}/merge", json={"merge_id": HUGE}, headers=supervisor.auth
    )
    assert in_body.status_code in (404, 422)
    error_of(in_body, in_body.status_code)


@pytest.mark.parametrize("field", ["assignee_id", "team_id"])
async def test_out_of_range_ids_in_a_body_are_422_not_500(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor, field: str
) -> None:
    cid = (await ingestor.ingest(inbound("m-1"))).conversation_id
    response = await client.patch(
        f"/api/v1/conversations/{cid}", json={field: HUGE}, headers=agent.auth
    )
    assert error_of(response, 422)["field"] == field
