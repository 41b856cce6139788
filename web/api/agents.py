"""``/api/v1/agents``: one's own profile and presence; supervisors list, admins create."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from inbox.actions.agents import create_agent, set_presence
from inbox.actions.conversations import ActionError, AlreadyExists
from inbox.auth import PasswordPolicyError
from inbox.models import Agent
from inbox.queries import agent_view
from inbox.types import Presence, Role
from web.api.body import get_enum, get_str, read_json, reject_unknown
from web.auth import require
from web.errors import ApiError
from web.services import services


async def me_endpoint(request: Request) -> JSONResponse:
    who = await require(request)
    async with services(request).store.read() as session:
        view = await agent_view(session, who.agent_id)
    assert view is not None
    return JSONResponse(view.to_json())


async def presence_endpoint(request: Request) -> JSONResponse:
    who = await require(request)
    data = await read_json(request)
    reject_unknown(data, {"presence"})
    presence = get_enum(data, "presence", Presence)
    if presence is None:
        raise ApiError(422, "presence is required", field="presence")
    async with services(request).store.write() as session:
        await set_presence(session, who.agent_id, presence)
    return JSONResponse({"agent_id": who.agent_id, "presence": presence.value})


async def list_endpoint(request: Request) -> JSONResponse:
    await require(request, Role.SUPERVISOR)
    async with services(request).store.read() as session:
        ids = list(await session.scalars(select(Agent.id).order_by(Agent.id).limit(1000)))
        views = [await agent_view(session, agent_id) for agent_id in ids]
    return JSONResponse({"items": [v.to_json() for v in views if v is not None]})


def _mapping(data: dict[str, Any], field: str) -> dict[str, int]:
    value = data.get(field) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise ApiError(422, f"{field} must be an object of name to integer", field=field)
    return value


async def create_endpoint(request: Request) -> JSONResponse:
    who = await require(request, Role.ADMIN)
    data = await read_json(request)
    reject_unknown(data, {"email", "name", "role", "password", "skills", "capacity"})
    role = get_enum(data, "role", Role) or Role.AGENT
    try:
        async with services(request).store.write() as session:
            agent_id = await create_agent(
                session,
                email=get_str(data, "email", required=True) or "",
                name=get_str(data, "name", required=True) or "",
                role=role,
                password=get_str(data, "password", required=True) or "",
                skills=_mapping(data, "skills"),
                capacity=_mapping(data, "capacity"),
                actor_id=who.agent_id,
            )
    except AlreadyExists as exc:
        raise ApiError(409, str(exc), field=exc.field) from None
    except ActionError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    except PasswordPolicyError as exc:
        raise ApiError(422, str(exc), field="password") from None
    except IntegrityError:
        raise ApiError(409, "an agent with this email exists", field="email") from None
    async with services(request).store.read() as session:
        view = await agent_view(session, agent_id)
    assert view is not None
    return JSONResponse(view.to_json(), status_code=201)


ROUTES = [
    Route("/agents", list_endpoint, methods=["GET"]),
    Route("/agents", create_endpoint, methods=["POST"]),
    Route("/agents/me", me_endpoint, methods=["GET"]),
    Route("/agents/me/presence", presence_endpoint, methods=["PUT"]),
]
