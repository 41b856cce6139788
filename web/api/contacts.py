"""``/api/v1/contacts``: merging two records of one person (supervisors and admins)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from inbox.contacts import ContactError, ContactNotFound, merge_contacts
from inbox.types import Role
from web.api.body import get_id, read_json, reject_unknown
from web.auth import MAX_ID, require
from web.errors import ApiError
from web.services import services


async def merge_endpoint(request: Request) -> JSONResponse:
    who = await require(request, Role.SUPERVISOR)
    data = await read_json(request)
    reject_unknown(data, {"merge_id"})
    merge_id = get_id(data, "merge_id")
    if merge_id is None:
        raise ApiError(422, "merge_id is required", field="merge_id")
    keep_id = int(request.path_params["id"])
    if keep_id > MAX_ID:
        raise ApiError(404, "no such contact")
    try:
        async with services(request).store.write() as session:
            await merge_contacts(session, keep_id=keep_id, merge_id=merge_id, actor_id=who.agent_id)
    except ContactNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except ContactError as exc:
        raise ApiError(422, str(exc), field="merge_id") from None
    return JSONResponse({"id": keep_id, "merged": merge_id})


ROUTES = [Route("/contacts/{id:int}/merge", merge_endpoint, methods=["POST"])]
