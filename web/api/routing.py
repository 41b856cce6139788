"""``/api/v1/routing/rules``: supervisors' routing rules (supervisors and admins only).

    GET    /routing/rules            the rules in order, with the rule-set version
    POST   /routing/rules            a new rule (``position`` optional: where to insert it)
    PUT    /routing/rules/{id}       replace a rule
    DELETE /routing/rules/{id}       remove a rule
    PUT    /routing/rules/order      ``{"ids": [...]}``: the new order, every rule once
    POST   /routing/rules/dry-run    ``{"rules": [...]}``: what that rule set would have
                                     decided for the last 500 conversations, against now
    GET    /routing/rules/history    the changes: who, when, before and after

A rule that does not check out is refused with 422 and ``field`` set to the path of the
first problem (``conditions[2].value``). Every change is versioned in the audit log and
reaches the router at once: conversations already waiting are evaluated again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inbox.actions.conversations import ActionError, NotFound
from inbox.actions.rules import (
    create_rule,
    delete_rule,
    list_rules,
    reorder_rules,
    rules_version,
    update_rule,
)
from inbox.models import AuditEntry
from inbox.types import Role
from inbox.views import iso
from routing.rule_store import check_definition, dry_run
from routing.rules import MAX_RULES, parse_rules
from web.api.body import read_json
from web.auth import MAX_ID, require
from web.errors import ApiError
from web.services import services

HISTORY_LIMIT = 200


def _definition(data: dict[str, Any]) -> dict[str, Any]:
    try:
        return check_definition(data)
    except ValueError as exc:  # RuleError: the path of the problem and what it is
        raise ApiError(422, str(exc), field=getattr(exc, "path", None) or None) from None


def _check_set(definitions: list[dict[str, Any]]) -> None:
    """The whole new rule set checks out together (its rules' patterns share one size
    budget); a problem is named by the rule's place in the set, ``[3].conditions[0]``."""
    try:
        parse_rules(definitions)
    except ValueError as exc:
        raise ApiError(422, str(exc), field=getattr(exc, "path", None) or "rules") from None


def _rule_id(request: Request) -> int:
    try:
        rule_id = int(request.path_params["rule_id"])
    except ValueError:
        raise ApiError(404, "no such routing rule") from None
    if not 0 < rule_id <= MAX_ID:
        raise ApiError(404, f"routing rule {rule_id} does not exist")
    return rule_id


async def list_endpoint(request: Request) -> JSONResponse:
    await require(request, Role.SUPERVISOR)
    async with services(request).store.read() as session:
        rules = await list_rules(session)
        version = await rules_version(session)
    return JSONResponse({"version": version, "rules": [r.to_json() for r in rules]})


async def create_endpoint(request: Request) -> JSONResponse:
    who = await require(request, Role.SUPERVISOR)
    data = await read_json(request)
    position = data.pop("position", None)
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)):
        raise ApiError(422, "position must be a whole number", field="position")
    definition = _definition(data)
    try:
        async with services(request).store.write() as session:
            rule = await create_rule(
                session, definition, who.agent_id, position, MAX_RULES, _check_set
            )
    except ActionError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    return JSONResponse(rule.to_json(), status_code=201)


async def update_endpoint(request: Request) -> JSONResponse:
    who = await require(request, Role.SUPERVISOR)
    rule_id = _rule_id(request)
    definition = _definition(await read_json(request))
    try:
        async with services(request).store.write() as session:
            rule = await update_rule(session, rule_id, definition, who.agent_id, _check_set)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    return JSONResponse(rule.to_json())


async def delete_endpoint(request: Request) -> Response:
    who = await require(request, Role.SUPERVISOR)
    rule_id = _rule_id(request)
    try:
        async with services(request).store.write() as session:
            await delete_rule(session, rule_id, who.agent_id)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    return Response(status_code=204)


async def order_endpoint(request: Request) -> JSONResponse:
    who = await require(request, Role.SUPERVISOR)
    ids = (await read_json(request)).get("ids")
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids
    ):
        raise ApiError(422, "ids must be a list of rule ids", field="ids")
    try:
        async with services(request).store.write() as session:
            rules = await reorder_rules(session, ids, who.agent_id)
    except ActionError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    return JSONResponse({"rules": [r.to_json() for r in rules]})


async def dry_run_endpoint(request: Request) -> JSONResponse:
    await require(request, Role.SUPERVISOR)
    data = await read_json(request)
    if set(data) != {"rules"}:
        raise ApiError(422, 'send {"rules": [...]}: the whole rule set to try', field="rules")
    try:
        proposed = parse_rules(data["rules"])
    except ValueError as exc:
        path = getattr(exc, "path", "")
        raise ApiError(422, str(exc), field=f"rules{path}" if path else "rules") from None
    async with services(request).store.read() as session:
        return JSONResponse(await dry_run(session, proposed))


async def history_endpoint(request: Request) -> JSONResponse:
    await require(request, Role.SUPERVISOR)
    async with services(request).store.read() as session:
        rows = (await session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "routing_rule")
            .order_by(AuditEntry.id.desc()).limit(HISTORY_LIMIT)
        )).all()
    return JSONResponse({"changes": [
        {"at": iso(r.at), "actor_id": r.actor_id, "action": r.action,
         "rule_id": r.entity_id, **r.changes}
        for r in rows
    ]})


ROUTES = [
    Route("/routing/rules", list_endpoint, methods=["GET"]),
    Route("/routing/rules", create_endpoint, methods=["POST"]),
    Route("/routing/rules/order", order_endpoint, methods=["PUT"]),
    Route("/routing/rules/dry-run", dry_run_endpoint, methods=["POST"]),
    Route("/routing/rules/history", history_endpoint, methods=["GET"]),
    Route("/routing/rules/{rule_id}", update_endpoint, methods=["PUT"]),
    Route("/routing/rules/{rule_id}", delete_endpoint, methods=["DELETE"]),
]
