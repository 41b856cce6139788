"""Server-rendered pages: login, logout, the inbox list and one conversation.

Templates receive the small context dataclasses defined here, never ORM rows. Forms
carry a CSRF token; the reply form works without JavaScript, and ``static/inbox.js``
adds live updates from the agent websocket.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from inbox.actions.conversations import ActionError, NotFound, add_message
from inbox.auth import (
    create_session,
    end_session,
    login_throttled,
    record_login_failure,
    verify_login,
)
from inbox.listing import ConversationFilter, list_conversations
from inbox.queries import agent_view
from inbox.types import Status
from inbox.views import ConversationDetail, ConversationSummary
from web.api.body import read_form
from web.auth import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    Principal,
    check_csrf,
    csrf_token,
    principal,
    visible_conversation,
)
from web.errors import ApiError
from web.services import services

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

VIEWS = {
    "mine": ("Mine", "me"),
    "unassigned": ("Unassigned", "none"),
    "all": ("All open", "any"),
}


@dataclass(frozen=True)
class LoginContext:
    csrf_token: str
    email: str = ""
    error: str | None = None


@dataclass(frozen=True)
class AgentContext:
    id: int
    name: str
    email: str
    role: str
    presence: str
    csrf_token: str


@dataclass(frozen=True)
class InboxContext:
    agent: AgentContext
    view: str
    views: tuple[tuple[str, str], ...]
    conversations: tuple[ConversationSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class ConversationContext:
    agent: AgentContext
    detail: ConversationDetail
    error: str | None = None


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login_page(request: Request) -> Response:
    if await principal(request) is not None:
        return RedirectResponse("/", 303)
    return _render_login(request, LoginContext(""), 200)


def _render_login(request: Request, context: LoginContext, status: int) -> Response:
    binding = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(24)
    context = LoginContext(csrf_token(request, binding), context.email, context.error)
    response = templates.TemplateResponse(request, "login.html", {"page": context}, status)
    if request.cookies.get(PRESESSION_COOKIE) != binding:
        response.set_cookie(
            PRESESSION_COOKIE, binding, httponly=True, samesite="strict",
            secure=services(request).settings.secure_cookies,
        )
    return response


async def login_submit(request: Request) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"))
    email = form.get("email", "").strip()[:320]
    password = form.get("password", "")
    store = services(request).store
    ip = _client_ip(request)
    async with store.read() as session:
        throttled = await login_throttled(session, ip, email)
    if throttled:
        return _render_login(
            request, LoginContext("", email, "Too many failed logins. Wait 15 minutes."), 429
        )
    async with store.read() as session:
        agent_id = await verify_login(session, email, password)
    if agent_id is None:
        async with store.write() as session:
            await record_login_failure(session, ip, email)
        return _render_login(request, LoginContext("", email, "Wrong email or password."), 401)
    async with store.write() as session:
        token = await create_session(session, agent_id, services(request).settings.session_hours)
    response = RedirectResponse("/", 303)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=services(request).settings.session_hours * 3600,
        httponly=True, samesite="lax", secure=services(request).settings.secure_cookies,
    )
    response.delete_cookie(PRESESSION_COOKIE)
    return response


async def logout(request: Request) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"))
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with services(request).store.write() as session:
            await end_session(session, token[:200])
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE)
    return response


async def _agent_context(request: Request, who: Principal) -> AgentContext:
    async with services(request).store.read() as session:
        view = await agent_view(session, who.agent_id)
    assert view is not None
    return AgentContext(view.id, view.name, view.email, view.role, view.presence,
                        csrf_token(request))


async def inbox_page(request: Request) -> Response:
    who = await principal(request)
    if who is None:
        return RedirectResponse("/login", 303)
    view = request.query_params.get("view", "all")
    if view not in VIEWS:
        view = "all"
    assignee: Any = who.agent_id if VIEWS[view][1] == "me" else VIEWS[view][1]
    f = ConversationFilter(
        statuses=(Status.OPEN, Status.PENDING), assignee=assignee, order="recent"
    )
    async with services(request).store.read() as session:
        page = await list_conversations(session, who.viewer, f, limit=50)
    context = InboxContext(
        agent=await _agent_context(request, who), view=view,
        views=tuple((key, label) for key, (label, _) in VIEWS.items()),
        conversations=page.items, next_cursor=page.next_cursor,
    )
    return templates.TemplateResponse(request, "inbox.html", {"page": context})


async def conversation_page(request: Request) -> Response:
    who = await principal(request)
    if who is None:
        return RedirectResponse("/login", 303)
    detail = await visible_conversation(request, who)
    context = ConversationContext(await _agent_context(request, who), detail)
    return templates.TemplateResponse(request, "conversation.html", {"page": context})


async def reply_submit(request: Request) -> Response:
    who = await principal(request)
    if who is None:
        return RedirectResponse("/login", 303)
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"))
    detail = await visible_conversation(request, who)
    try:
        async with services(request).store.write() as session:
            await add_message(
                session, detail.conversation.id, who.agent_id, form.get("body", ""),
                internal=form.get("internal") == "1",
            )
    except ActionError as exc:
        context = ConversationContext(await _agent_context(request, who), detail, str(exc))
        return templates.TemplateResponse(request, "conversation.html", {"page": context}, 422)
    except NotFound:
        raise ApiError(404, "conversation not found") from None
    return RedirectResponse(f"/c/{detail.conversation.id}", 303)


ROUTES = [
    Route("/", inbox_page, methods=["GET"]),
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/c/{id:int}", conversation_page, methods=["GET"]),
    Route("/c/{id:int}/reply", reply_submit, methods=["POST"]),
]
