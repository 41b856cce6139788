"""``POST /api/v1/contacts/{id}/merge``: supervisors fold one person's two records into one."""

from __future__ import annotations

import httpx

from inbox.ingest import Ingestor
from tests.conftest import inbound
from tests.web.support import Person, error_of


async def contact_of(client: httpx.AsyncClient, person: Person, conversation_id: int) -> int:
    response = await client.get(f"/api/v1/conversations/{conversation_id}", headers=person.auth)
    assert response.status_code == 200
    contact_id: int = response.json()["contact"]["id"]
    return contact_id


async def test_supervisor_merges_two_contacts(
    client: httpx.AsyncClient, agent: Person, supervisor: Person, ingestor: Ingestor
) -> None:
    first = (await ingestor.ingest(inbound("m-1", sender="lena@home.example"))).conversation_id
    second = (await ingestor.ingest(inbound("m-2", sender="lena@work.example"))).conversation_id
    keep, merge = await contact_of(client, agent, first), await contact_of(client, agent, second)
    assert keep != merge
    url = f"/api/v1/contacts/{keep}/merge"

    forbidden = await client.post(url, json={"merge_id": merge}, headers=agent.auth)
    assert error_of(forbidden, 403)["code"] == "forbidden"
    assert await contact_of(client, agent, second) == merge

    for body, field in [({}, "merge_id"), ({"merge_id": "x"}, "merge_id"),
                        ({"merge_id": keep}, "merge_id"), ({"merge_id": merge, "x": 1}, "x")]:
        refused = await client.post(url, json=body, headers=supervisor.auth)
        assert error_of(refused, 422)["field"] == field, body
    missing = await client.post(url, json={"merge_id": merge + 1000}, headers=supervisor.auth)
    error_of(missing, 404)

    merged = await client.post(url, json={"merge_id": merge}, headers=supervisor.auth)
    assert merged.status_code == 200
    assert merged.json() == {"id": keep, "merged": merge}
    assert await contact_of(client, agent, second) == keep

    again = await client.post(url, json={"merge_id": merge}, headers=supervisor.auth)
    assert error_of(again, 422)["field"] == "merge_id"

    # the next message from the merged address lands on the kept contact
    later = (await ingestor.ingest(inbound("m-3", sender="lena@work.example"))).conversation_id
    assert await contact_of(client, agent, later) == keep
