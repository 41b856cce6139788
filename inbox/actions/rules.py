"""Writes to the routing rules: create, replace, delete, reorder.

The definitions arrive already checked and in canonical form (``routing.rule_store``
checks them with ``routing.rules``; the store does not interpret them). Every change
takes the rule-set version row's lock first, so concurrent edits apply one after the
other, bumps the version, and records who changed what (before and after) in the audit
log and a ``routing.rules`` event that makes the router re-evaluate waiting work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.actions.conversations import ActionError, NotFound
from inbox.audit import audit
from inbox.events import record_event
from inbox.models import InstanceSetting, RoutingRule
from inbox.models.base import utcnow

VERSION_KEY = "routing_rules_version"

# Checks a whole rule set (definitions in order) before it is saved; raises to refuse it.
SetCheck = Callable[[list[dict[str, Any]]], None]


def _no_check(definitions: list[dict[str, Any]]) -> None:
    return None


@dataclass(frozen=True)
class StoredRule:
    id: int
    position: int
    definition: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "position": self.position, **self.definition}


async def rules_version(session: AsyncSession) -> int:
    value = await session.scalar(
        select(InstanceSetting.value).where(InstanceSetting.key == VERSION_KEY)
    )
    return int(value or 0)


async def list_rules(session: AsyncSession) -> list[StoredRule]:
    rows = await session.scalars(select(RoutingRule).order_by(RoutingRule.position))
    return [StoredRule(r.id, r.position, r.definition) for r in rows]


async def _next_version(session: AsyncSession) -> int:
    """Lock the version row (creating it the first time) and return the next version."""
    row = await session.get(InstanceSetting, VERSION_KEY, with_for_update=True)
    if row is None:
        row = InstanceSetting(key=VERSION_KEY, value="0")
        session.add(row)
        await session.flush()
    version = int(row.value) + 1
    row.value = str(version)
    return version


async def _changed(
    session: AsyncSession, version: int, actor_id: int | None, action: str, rule_id: int | str,
    before: Any, after: Any,
) -> None:
    await audit(
        session, actor_id, action, "routing_rule", rule_id,
        {"version": version, "before": before, "after": after},
    )
    await record_event(session, "routing.rules", {"version": version})


async def _renumber(session: AsyncSession, ordered: list[RoutingRule]) -> None:
    for position, rule in enumerate(ordered):
        rule.position = position


async def create_rule(
    session: AsyncSession, definition: dict[str, Any], actor_id: int | None,
    position: int | None = None, limit: int = 200, check: SetCheck = _no_check,
) -> StoredRule:
    """Insert a rule at ``position`` (last by default). ``check`` sees the whole new set,
    in order, under the rule-set lock, and raises to refuse it."""
    version = await _next_version(session)
    rules = list(await session.scalars(select(RoutingRule).order_by(RoutingRule.position)))
    if len(rules) >= limit:
        raise ActionError(f"at most {limit} rules", "rules")
    at = len(rules) if position is None else max(0, min(position, len(rules)))
    definitions = [r.definition for r in rules]
    definitions.insert(at, definition)
    check(definitions)
    now = utcnow()
    rule = RoutingRule(position=0, definition=definition, created_at=now, updated_at=now)
    session.add(rule)
    rules.insert(at, rule)
    await _renumber(session, rules)
    await session.flush()
    await _changed(session, version, actor_id, "routing_rule.create", rule.id, None,
                   {"position": rule.position, **definition})
    return StoredRule(rule.id, rule.position, definition)


async def update_rule(
    session: AsyncSession, rule_id: int, definition: dict[str, Any], actor_id: int | None,
    check: SetCheck = _no_check,
) -> StoredRule:
    version = await _next_version(session)
    rule = await session.get(RoutingRule, rule_id, with_for_update=True)
    if rule is None:
        raise NotFound(f"routing rule {rule_id} does not exist")
    rules = list(await session.scalars(select(RoutingRule).order_by(RoutingRule.position)))
    check([definition if r.id == rule_id else r.definition for r in rules])
    before = rule.definition
    rule.definition = definition
    rule.updated_at = utcnow()
    await session.flush()
    await _changed(session, version, actor_id, "routing_rule.update", rule_id, before, definition)
    return StoredRule(rule.id, rule.position, definition)


async def delete_rule(session: AsyncSession, rule_id: int, actor_id: int | None) -> None:
    version = await _next_version(session)
    rule = await session.get(RoutingRule, rule_id, with_for_update=True)
    if rule is None:
        raise NotFound(f"routing rule {rule_id} does not exist")
    before = {"position": rule.position, **rule.definition}
    await session.delete(rule)
    await session.flush()
    rest = list(await session.scalars(select(RoutingRule).order_by(RoutingRule.position)))
    await _renumber(session, rest)
    await _changed(session, version, actor_id, "routing_rule.delete", rule_id, before, None)


async def reorder_rules(
    session: AsyncSession, ids: list[int], actor_id: int | None
) -> list[StoredRule]:
    version = await _next_version(session)
    rules = {r.id: r for r in await session.scalars(select(RoutingRule))}
    if sorted(ids) != sorted(rules):
        raise ActionError("ids must list every rule exactly once", "ids")
    before = [r.id for r in sorted(rules.values(), key=lambda r: r.position)]
    await _renumber(session, [rules[i] for i in ids])
    await session.flush()
    await _changed(session, version, actor_id, "routing_rule.reorder", "order", before, ids)
    return [StoredRule(rules[i].id, rules[i].position, rules[i].definition) for i in ids]

