"""Bad request bodies are refused at the edge with the documented status, code and field."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from inbox.config import Settings
from inbox.ingest import Ingestor
from tests.conftest import inbound
from tests.web.support import Person, error_of

PRESENCE = "/api/v1/agents/me/presence"


def json_headers(person: Person) -> dict[str, str]:
    return {**person.auth, "Content-Type": "application/json"}


async def test_malformed_json_is_400_malformed_json(
    client: httpx.AsyncClient, agent: Person
) -> None:
    for raw in (b'{"presence": ', b"not json", b"", b'{"presence": "\xff\xfe"}', b"{'a': 1}"):
        response = await client.put(PRESENCE, content=raw, headers=json_headers(agent))
        error = error_of(response, 400)
        assert error["code"] == "malformed_json", raw


async def test_json_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, agent: Person
) -> None:
    for raw in (b"[1, 2]", b'"online"', b"42", b"null", b"true"):
        response = await client.put(PRESENCE, content=raw, headers=json_headers(agent))
        assert error_of(response, 400)["code"] == "malformed_json", raw


async def test_deeply_nested_json_is_400_not_500(
    client: httpx.AsyncClient, agent: Person
) -> None:
    # Well under the size limit, but deeper than the parser's recursion limit.
    raw = b"[" * 100_000
    response = await client.put(PRESENCE, content=raw, headers=json_headers(agent))
    assert error_of(response, response.status_code)["code"] == "malformed_json"
    assert response.status_code == 400


async def test_wrong_content_type_is_415(client: httpx.AsyncClient, agent: Person) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = dict(agent.auth)
        if content_type:
            headers["Content-Type"] = content_type
        response = await client.put(PRESENCE, content=b'{"presence": "away"}', headers=headers)
        assert error_of(response, 415)["code"] == "unsupported_media_type", content_type
    # parameters on the right media type are fine
    ok = await client.put(PRESENCE, content=b'{"presence": "away"}', headers={
        **agent.auth, "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


async def test_body_over_the_limit_is_413(
    client: httpx.AsyncClient, agent: Person, settings: Settings
) -> None:
    limit = settings.max_body_bytes
    oversized = b'{"presence": "' + b"a" * limit + b'"}'
    declared = await client.put(PRESENCE, content=oversized, headers=json_headers(agent))
    assert error_of(declared, 413)["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the stream is counted
        for start in range(0, len(oversized), 65_536):
            yield oversized[start:start + 65_536]

    streamed = await client.put(PRESENCE, content=chunks(), headers=json_headers(agent))
    assert "content-length" not in streamed.request.headers
    assert error_of(streamed, 413)["code"] == "payload_too_large"


async def test_body_at_the_limit_is_read(
    client: httpx.AsyncClient, agent: Person, settings: Settings
) -> None:
    head, tail = b'{"presence": "online", "x": "', b'"}'
    body = head + b"a" * (settings.max_body_bytes - len(head) - len(tail)) + tail
    assert len(body) == settings.max_body_bytes
    response = await client.put(PRESENCE, content=body, headers=json_headers(agent))
    # read and parsed: refused for its unknown field, not for its size
    assert error_of(response, 422)["field"] == "x"


async def test_unknown_field_is_422_naming_it(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    response = await client.put(
        PRESENCE, json={"presence": "online", "mood": "happy"}, headers=agent.auth
    )
    error = error_of(response, 422)
    assert error["code"] == "invalid" and error["field"] == "mood"

    conversation_id = (await ingestor.ingest(inbound("m-1"))).conversation_id
    patch = await client.patch(
        f"/api/v1/conversations/{conversation_id}", json={"subject": "x"}, headers=agent.auth
    )
    assert error_of(patch, 422)["field"] == "subject"
    post = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"body": "hi", "cc": "boss@example.com"}, headers=agent.auth,
    )
    assert error_of(post, 422)["field"] == "cc"


async def test_invalid_enum_is_422_naming_the_field(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    presence = await client.put(PRESENCE, json={"presence": "busy"}, headers=agent.auth)
    error = error_of(presence, 422)
    assert error["field"] == "presence" and "online" in error["message"]

    conversation_id = (await ingestor.ingest(inbound("m-1"))).conversation_id
    url = f"/api/v1/conversations/{conversation_id}"
    for body, field in [
        ({"status": "closed"}, "status"),
        ({"priority": "critical"}, "priority"),
        ({"status": 3}, "status"),
        ({"tags": "billing"}, "tags"),
        ({"tags": [1, 2]}, "tags"),
        ({"assignee_id": "me"}, "assignee_id"),
        ({"assignee_id": True}, "assignee_id"),
        ({"team_id": -1}, "team_id"),
        ({"snoozed_until": "tomorrow", "status": "snoozed"}, "snoozed_until"),
    ]:
        response = await client.patch(url, json=body, headers=agent.auth)
        assert error_of(response, 422)["field"] == field, body

    listing = await client.get("/api/v1/conversations?status=closed", headers=agent.auth)
    assert error_of(listing, 422)["field"] == "status"
    listing = await client.get("/api/v1/conversations?channel=fax", headers=agent.auth)
    assert error_of(listing, 422)["field"] == "channel"
