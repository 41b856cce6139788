"""``/api/v1/routing/rules``: supervisors change routing rules while the system runs.

Only supervisors and admins may touch them (an agent's token gets 403); a bad rule is
refused with the path of its problem; every change is versioned with who, when, before
and after; a dry-run tells what a change would have done to the latest conversations;
and a change re-routes a conversation that is already waiting, within a second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy import select

from inbox.actions.agents import set_presence
from inbox.db import Store
from inbox.ingest import Ingestor
from inbox.models import AgentCapacity, AgentSkill, Conversation
from inbox.types import Presence
from routing.service import RoutingService, RoutingSettings
from tests.conftest import inbound
from tests.routing.test_service import running
from tests.web.support import Person, error_of

RULES = "/api/v1/routing/rules"


def rule(name: str, skill: str, contains: str = "refund", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "conditions": [{"field": "subject", "op": "contains", "value": contains}],
        "actions": [{"type": "require_skill", "skill": skill}],
        **extra,
    }


async def test_agents_cannot_touch_rules(
    client: httpx.AsyncClient, agent: Person, supervisor: Person
) -> None:
    created = await client.post(RULES, json=rule("r", "billing"), headers=supervisor.auth)
    assert created.status_code == 201
    rule_id = created.json()["id"]
    for method, url, body in [
        ("GET", RULES, None), ("POST", RULES, rule("x", "tech")),
        ("PUT", f"{RULES}/{rule_id}", rule("x", "tech")), ("DELETE", f"{RULES}/{rule_id}", None),
        ("PUT", f"{RULES}/order", {"ids": [rule_id]}),
        ("POST", f"{RULES}/dry-run", {"rules": []}), ("GET", f"{RULES}/history", None),
    ]:
        response = await client.request(method, url, json=body, headers=agent.auth)
        assert error_of(response, 403)["code"] == "forbidden", (method, url)
    listed = await client.get(RULES, headers=supervisor.auth)
    assert [r["name"] for r in listed.json()["rules"]] == ["r"]


async def test_bad_rules_are_refused_with_the_path_of_the_problem(
    client: httpx.AsyncClient, supervisor: Person
) -> None:
    bad_pattern = rule("p", "billing")
    bad_pattern["conditions"] = [{"field": "body", "op": "matches", "value": "(unclosed"}]
    cases = [
        ({"name": "no actions", "actions": []}, "actions"),
        (rule("bad skill", "Not A Skill"), "actions[0].skill"),
        (bad_pattern, "conditions[0].value"),
        ({**rule("extra", "billing"), "colour": "red"}, "colour"),
        (rule("", "billing"), "name"),
    ]
    for body, field in cases:
        response = await client.post(RULES, json=body, headers=supervisor.auth)
        assert error_of(response, 422)["field"] == field, body
    assert (await client.get(RULES, headers=supervisor.auth)).json()["rules"] == []
    not_json = await client.post(RULES, content=b"{", headers={
        **supervisor.auth, "content-type": "application/json"})
    error_of(not_json, 400)


async def test_changes_are_versioned_with_who_before_and_after(
    client: httpx.AsyncClient, supervisor: Person
) -> None:
    first = (await client.post(RULES, json=rule("one", "billing"), headers=supervisor.auth)).json()
    second = (await client.post(RULES, json=rule("two", "tech"), headers=supervisor.auth)).json()
    top = await client.post(RULES, json={**rule("zero", "vip"), "position": 0},
                            headers=supervisor.auth)
    assert top.status_code == 201
    listed = (await client.get(RULES, headers=supervisor.auth)).json()
    assert [r["name"] for r in listed["rules"]] == ["zero", "one", "two"]
    assert listed["version"] == 3
    changed = await client.put(f"{RULES}/{first['id']}", json=rule("one", "billing-2"),
                               headers=supervisor.auth)
    assert changed.status_code == 200
    order = [second["id"], first["id"], top.json()["id"]]
    reordered = await client.put(f"{RULES}/order", json={"ids": order}, headers=supervisor.auth)
    assert [r["id"] for r in reordered.json()["rules"]] == order
    wrong_order = await client.put(f"{RULES}/order", json={"ids": order[:2]},
                                   headers=supervisor.auth)
    assert error_of(wrong_order, 422)["field"] == "ids"
    deleted = await client.delete(f"{RULES}/{second['id']}", headers=supervisor.auth)
    assert deleted.status_code == 204
    error_of(await client.delete(f"{RULES}/{second['id']}", headers=supervisor.auth), 404)
    error_of(await client.put(f"{RULES}/999999", json=rule("x", "y"), headers=supervisor.auth),
             404)

    history = (await client.get(f"{RULES}/history", headers=supervisor.auth)).json()["changes"]
    assert [c["action"] for c in history] == [
        "routing_rule.delete", "routing_rule.reorder", "routing_rule.update",
        "routing_rule.create", "routing_rule.create", "routing_rule.create",
    ]
    assert [c["version"] for c in history] == [6, 5, 4, 3, 2, 1]
    assert all(c["actor_id"] == supervisor.id and c["at"] for c in history)
    update = history[2]
    assert update["rule_id"] == str(first["id"])
    assert update["before"]["actions"][0]["skill"] == "billing"
    assert update["after"]["actions"][0]["skill"] == "billing-2"
    assert history[0]["before"]["name"] == "two" and history[0]["after"] is None


async def test_dry_run_tells_what_a_change_would_have_done(
    client: httpx.AsyncClient, supervisor: Person, ingestor: Ingestor
) -> None:
    for number, subject in enumerate(["Refund please", "Where is my parcel", "REFUND now"]):
        await ingestor.ingest(inbound(f"dry-{number}", subject=subject))
    await client.post(RULES, json=rule("parcels", "shipping", contains="parcel"),
                      headers=supervisor.auth)
    proposed = [rule("refunds", "billing")]
    result = await client.post(f"{RULES}/dry-run", json={"rules": proposed},
                               headers=supervisor.auth)
    assert result.status_code == 200
    body = result.json()
    assert body["conversations"] == 3 and body["changed"] == 3
    after = {c["conversation_id"]: c["after"]["skills"] for c in body["changes"]}
    assert sorted(s[0]["skill"] for s in after.values() if s) == ["billing", "billing"]
    bad = await client.post(f"{RULES}/dry-run", json={"rules": [{"name": "x"}]},
                            headers=supervisor.auth)
    assert error_of(bad, 422)["field"] == "rules[0].actions"  # missing
    # A dry-run changes nothing.
    listed = (await client.get(RULES, headers=supervisor.auth)).json()
    assert [r["name"] for r in listed["rules"]] == ["parcels"]


async def test_a_rule_change_reroutes_a_waiting_conversation_within_a_second(
    client: httpx.AsyncClient, store: Store, supervisor: Person, agent: Person,
    ingestor: Ingestor,
) -> None:
    async with store.write() as session:
        session.add(AgentSkill(agent_id=agent.id, skill="billing", level=1))
        session.add(AgentCapacity(agent_id=agent.id, channel="email", capacity=5))
    async with store.write() as session:
        await set_presence(session, agent.id, Presence.ONLINE)
    created = await client.post(RULES, json=rule("refunds", "finance"), headers=supervisor.auth)
    assert created.status_code == 201
    service = RoutingService(store, RoutingSettings(tick_s=0.5, resync_s=60))
    async with running(service):
        await asyncio.wait_for(service.leading.wait(), 10)
        conversation = (await ingestor.ingest(inbound("refund-1", subject="Refund for 42"))
                        ).conversation_id
        await asyncio.sleep(1.0)
        assert await _assignee(store, conversation) is None  # nobody has "finance"
        started = time.monotonic()
        changed = await client.put(f"{RULES}/{created.json()['id']}", json=rule("refunds",
                                   "billing"), headers=supervisor.auth)
        assert changed.status_code == 200
        while await _assignee(store, conversation) != agent.id:
            assert time.monotonic() - started < 1.0, "not re-routed within 1 s"
            await asyncio.sleep(0.01)
        print(f"re-routed {time.monotonic() - started:.3f} s after the rule change")


async def _assignee(store: Store, conversation_id: int) -> int | None:
    async with store.read() as session:
        return await session.scalar(
            select(Conversation.assignee_id).where(Conversation.id == conversation_id)
        )


async def test_the_whole_rule_set_is_checked_when_one_rule_is_saved(
    client: httpx.AsyncClient, supervisor: Person
) -> None:
    """Each pattern is small enough alone; together they pass the rule set's budget, so
    the save that would cross it is refused, naming the rule's place in the set."""
    def heavy(name: str) -> dict[str, Any]:
        return {"name": name, "actions": [{"type": "add_tags", "tags": ["x"]}],
                "conditions": [{"field": "body", "op": "matches", "value": "x{1990}"}]}

    saved = 0
    for number in range(40):
        response = await client.post(RULES, json=heavy(f"r{number}"), headers=supervisor.auth)
        if response.status_code != 201:
            assert error_of(response, 422)["field"] == f"[{number}].conditions[0].value"
            break
        saved += 1
    assert saved == 30  # 30 x 1,990 fits in 60,000; the 31st does not
    first = (await client.get(RULES, headers=supervisor.auth)).json()["rules"][0]["id"]
    light = rule("light", "billing")
    assert (await client.put(f"{RULES}/{first}", json=light, headers=supervisor.auth)
            ).status_code == 200
    assert (await client.post(RULES, json=heavy("r30"), headers=supervisor.auth)
            ).status_code == 201  # 30 heavy again, with the light one first
    refused = await client.put(f"{RULES}/{first}", json=heavy("back"), headers=supervisor.auth)
    assert error_of(refused, 422)["field"] == "[30].conditions[0].value"  # where it crosses
    listed = (await client.get(RULES, headers=supervisor.auth)).json()["rules"]
    assert listed[0]["name"] == "light" and len(listed) == 31  # nothing half-saved
    for bad in ("0", str(2**64)):
        error_of(await client.delete(f"{RULES}/{bad}", headers=supervisor.auth), 404)
