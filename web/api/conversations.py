"""``/api/v1/conversations``: list, read, change, reply and note."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inbox.actions.conversations import (
    UNSET,
    ActionError,
    ConversationChanges,
    NotFound,
    add_message,
    start_conversation,
    update_conversation,
)
from inbox.actions.routing import OfferGone, accept_offer, end_offer
from inbox.listing import MAX_QUERY_CHARS, BadCursor, ConversationFilter, list_conversations
from inbox.queries import conversation_detail
from inbox.types import Channel, Priority, Status
from routing.estimate import chat_estimate
from web.api.body import (
    get_bool,
    get_datetime,
    get_enum,
    get_id,
    get_str,
    parse_enum,
    read_json,
    reject_unknown,
)
from web.auth import MAX_ID, Principal, require, visible_conversation
from web.errors import ApiError
from web.services import services


def _csv(request: Request, name: str) -> list[str]:
    raw = request.query_params.get(name, "")
    return [part.strip() for part in raw.split(",") if part.strip()][:10]


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(422, f"{name} must be a positive integer", field=name)
    return int(raw)


def parse_filter(request: Request, who: Principal) -> ConversationFilter:
    assignee_raw = request.query_params.get("assignee", "any")
    assignee: Any
    if assignee_raw == "me":
        assignee = who.agent_id
    elif assignee_raw in ("none", "any"):
        assignee = assignee_raw
    else:
        assignee = _int_param(request, "assignee")
    query = request.query_params.get("q") or None
    if query is not None and len(query) > MAX_QUERY_CHARS:
        raise ApiError(422, f"q is longer than {MAX_QUERY_CHARS} characters", field="q")
    tag = request.query_params.get("tag") or None
    order = request.query_params.get("order", "recent")
    if order not in ("recent", "newest", "oldest"):
        raise ApiError(422, "order must be one of recent, newest, oldest", field="order")
    return ConversationFilter(
        statuses=tuple(parse_enum(s, "status", Status) for s in _csv(request, "status")),
        channels=tuple(parse_enum(c, "channel", Channel) for c in _csv(request, "channel")),
        assignee=assignee,
        team_id=_int_param(request, "team"),
        tag=tag.lower()[:64] if tag else None,
        query=query,
        order=order,  # type: ignore[arg-type]
    )


async def list_endpoint(request: Request) -> JSONResponse:
    who = await require(request)
    f = parse_filter(request, who)
    limit = _int_param(request, "limit")
    limit = 25 if limit is None else limit
    if not 1 <= limit <= 100:
        raise ApiError(422, "limit must be 1-100", field="limit")
    cursor = request.query_params.get("cursor") or None
    async with services(request).store.read() as session:
        try:
            page = await list_conversations(session, who.viewer, f, limit=limit, cursor=cursor)
        except BadCursor as exc:
            raise ApiError(422, str(exc), field="cursor") from None
    return JSONResponse(
        {"items": [c.to_json() for c in page.items], "next_cursor": page.next_cursor}
    )


async def get_endpoint(request: Request) -> JSONResponse:
    who = await require(request)
    return JSONResponse((await visible_conversation(request, who)).to_json())


async def queue_endpoint(request: Request) -> JSONResponse:
    """Where a waiting chat stands: position and expected wait (404 if it is not waiting)."""
    who = await require(request)
    conversation = await visible_conversation(request, who)
    async with services(request).store.read() as session:
        estimate = await chat_estimate(session, conversation.conversation.id)
    if estimate is None:
        raise ApiError(
            404, f"conversation {conversation.conversation.id} is not a chat waiting for an agent"
        )
    return JSONResponse(estimate.to_json())


def _offered_id(request: Request) -> int:
    conversation_id = int(request.path_params["id"])
    if conversation_id > MAX_ID:  # no such row; the database would refuse the number
        raise ApiError(409, f"conversation {conversation_id} is not on offer to you")
    return conversation_id


async def accept_endpoint(request: Request) -> JSONResponse:
    """The calling agent accepts the chat offered to them; 409 once the offer is gone."""
    who = await require(request)
    conversation_id = _offered_id(request)
    try:
        async with services(request).store.write() as session:
            await accept_offer(session, conversation_id, who.agent_id)
    except OfferGone as exc:
        raise ApiError(409, str(exc)) from None
    return JSONResponse((await visible_conversation(request, who)).to_json())


async def decline_endpoint(request: Request) -> Response:
    """The calling agent turns down the chat offered to them; it goes to someone else."""
    who = await require(request)
    conversation_id = _offered_id(request)
    async with services(request).store.write() as session:
        ended = await end_offer(session, conversation_id, who.agent_id, "declined")
    if not ended:
        raise ApiError(409, f"conversation {conversation_id} is not on offer to you")
    return Response(status_code=204)


PATCHABLE = {"status", "snoozed_until", "priority", "tags", "assignee_id", "team_id"}


def parse_changes(data: dict[str, Any]) -> ConversationChanges:
    reject_unknown(data, PATCHABLE)
    tags = _tags(data)
    return ConversationChanges(
        status=get_enum(data, "status", Status),
        snoozed_until=get_datetime(data, "snoozed_until"),
        priority=get_enum(data, "priority", Priority),
        tags=tags,
        assignee_id=get_id(data, "assignee_id") if "assignee_id" in data else UNSET,
        team_id=get_id(data, "team_id") if "team_id" in data else UNSET,
        changed=frozenset(data),
    )


async def patch_endpoint(request: Request) -> JSONResponse:
    who = await require(request)
    await visible_conversation(request, who)
    changes = parse_changes(await read_json(request))
    try:
        async with services(request).store.write() as session:
            await update_conversation(
                session, int(request.path_params["id"]), who.agent_id, changes
            )
    except ActionError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    # Read back without the visibility check: an agent who hands a conversation to a team
    # they are not in made a change that succeeded, and gets to see its result once.
    return JSONResponse(await _detail_json(request, int(request.path_params["id"])))


async def _detail_json(request: Request, conversation_id: int) -> dict[str, Any]:
    async with services(request).store.read() as session:
        detail = await conversation_detail(session, conversation_id)
    if detail is None:
        raise ApiError(404, f"conversation {conversation_id} not found")
    return detail.to_json()


CREATE_FIELDS = {"contact", "subject", "body", "priority", "tags", "assignee_id", "team_id"}


async def create_endpoint(request: Request) -> JSONResponse:
    """Start an email conversation with a customer; the first message is our reply."""
    who = await require(request)
    data = await read_json(request)
    reject_unknown(data, CREATE_FIELDS | {"channel"})
    if data.get("channel", "email") != "email":
        raise ApiError(422, "agents can start conversations by email only", field="channel")
    contact = data.get("contact")
    if not isinstance(contact, dict) or not isinstance(contact.get("email"), str):
        raise ApiError(422, "contact must be an object with an email", field="contact")
    name = contact.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise ApiError(422, "contact name must be a string of at most 200 characters",
                       field="contact")
    tags = _tags(data)
    try:
        async with services(request).store.write() as session:
            conversation_id = await start_conversation(
                session, who.agent_id,
                email=contact["email"], name=name,
                subject=get_str(data, "subject", required=True) or "",
                body=get_str(data, "body", required=True) or "",
                priority=get_enum(data, "priority", Priority) or Priority.NORMAL,
                tags=tags or (),
                assignee_id=get_id(data, "assignee_id"),
                team_id=get_id(data, "team_id"),
            )
    except ActionError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    return JSONResponse(await _detail_json(request, conversation_id), status_code=201)


def _tags(data: dict[str, Any]) -> tuple[str, ...] | None:
    tags = data.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ApiError(422, "tags must be a list of strings", field="tags")
    return tuple(tags)


async def post_message_endpoint(request: Request) -> JSONResponse:
    who = await require(request)
    await visible_conversation(request, who)
    data = await read_json(request)
    reject_unknown(data, {"body", "internal", "html"})
    body = get_str(data, "body", required=True)
    assert body is not None
    try:
        async with services(request).store.write() as session:
            message = await add_message(
                session, int(request.path_params["id"]), who.agent_id, body,
                internal=get_bool(data, "internal", False), html=get_str(data, "html"),
            )
    except ActionError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    return JSONResponse(message.to_json(), status_code=201)


ROUTES = [
    Route("/conversations", list_endpoint, methods=["GET"]),
    Route("/conversations", create_endpoint, methods=["POST"]),
    Route("/conversations/{id:int}", get_endpoint, methods=["GET"]),
    Route("/conversations/{id:int}", patch_endpoint, methods=["PATCH"]),
    Route("/conversations/{id:int}/messages", post_message_endpoint, methods=["POST"]),
    Route("/conversations/{id:int}/queue", queue_endpoint, methods=["GET"]),
    Route("/conversations/{id:int}/accept", accept_endpoint, methods=["POST"]),
    Route("/conversations/{id:int}/decline", decline_endpoint, methods=["POST"]),
]
