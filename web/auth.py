"""Who is asking: bearer tokens and session cookies, roles, and CSRF tokens.

A request is authenticated by ``Authorization: Bearer <token>`` or by the session cookie.
Cookie-authenticated requests that change state must carry a CSRF token (form field
``csrf_token`` or header ``X-CSRF-Token``). The token is an HMAC of the session cookie
(or, before login, of a random pre-session cookie) under the installation's secret, so it
cannot be forged without reading the victim's cookies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from inbox.access import Viewer
from inbox.auth import agent_for_credential
from inbox.queries import conversation_detail
from inbox.types import Role
from inbox.views import ConversationDetail
from web.errors import ApiError
from web.services import services

SESSION_COOKIE = "guichet_session"
PRESESSION_COOKIE = "guichet_csrf"
MAX_CREDENTIAL_CHARS = 200
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_ID = 2**63 - 1  # the largest id either database can hold


@dataclass(frozen=True)
class Principal:
    viewer: Viewer
    session_id: int | None  # set when authenticated by the login session cookie

    @property
    def via_cookie(self) -> bool:
        return self.session_id is not None

    @property
    def agent_id(self) -> int:
        return self.viewer.agent_id

    @property
    def role(self) -> Role:
        return self.viewer.role


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()[:MAX_CREDENTIAL_CHARS]


async def principal(conn: HTTPConnection) -> Principal | None:
    token = bearer_token(conn)
    cookie = conn.cookies.get(SESSION_COOKIE)
    if token is None and not cookie:
        return None
    async with services(conn).store.read() as session:
        if token is not None:
            found = await agent_for_credential(session, api_token=token)
        else:
            found = await agent_for_credential(
                session, session_token=(cookie or "")[:MAX_CREDENTIAL_CHARS]
            )
    if found is None:
        return None
    return Principal(Viewer(found.agent_id, found.role, found.team_ids), found.session_id)


async def require(request: Request, role: Role = Role.AGENT) -> Principal:
    """The caller, who must hold ``role``; 401 without credentials, 403 below the role."""
    who = await principal(request)
    if who is None:
        raise ApiError(
            401, "authentication required: send a bearer token or log in",
            headers={"WWW-Authenticate": 'Bearer realm="guichet"'},
        )
    if not who.role.at_least(role):
        raise ApiError(403, f"this needs the {role.value} role")
    if who.via_cookie and request.method not in SAFE_METHODS:
        check_csrf(request, request.headers.get("x-csrf-token"))
    return who


async def visible_conversation(conn: HTTPConnection, who: Principal) -> ConversationDetail:
    """The conversation named by the path, if ``who`` may see it; else 404 (not 403: an
    agent must not learn which ids exist outside their view)."""
    conversation_id = int(conn.path_params["id"])
    if conversation_id > MAX_ID:
        raise ApiError(404, "conversation not found")
    async with services(conn).store.read() as session:
        detail = await conversation_detail(session, conversation_id)
    if detail is None or not who.viewer.can_see(
        detail.conversation.team_id, detail.conversation.assignee_id
    ):
        raise ApiError(404, f"conversation {conversation_id} not found")
    return detail


def _csrf_binding(conn: HTTPConnection) -> str | None:
    return conn.cookies.get(SESSION_COOKIE) or conn.cookies.get(PRESESSION_COOKIE)


def csrf_token(conn: HTTPConnection, binding: str | None = None) -> str:
    binding = binding or _csrf_binding(conn) or ""
    secret = services(conn).secret.encode()
    return hmac.new(secret, b"csrf|" + binding.encode(), hashlib.sha256).hexdigest()


def check_csrf(conn: HTTPConnection, submitted: str | None) -> None:
    binding = _csrf_binding(conn)
    if not binding or not submitted or not hmac.compare_digest(
        csrf_token(conn, binding), submitted[:200]
    ):
        raise ApiError(403, "CSRF token missing or invalid; reload the page and try again",
                       code="csrf_failed")


def ensure_presession(request: Request, response: Response) -> str:
    """Give an anonymous visitor a pre-session cookie to bind the login form's CSRF token."""
    existing = request.cookies.get(PRESESSION_COOKIE)
    if existing:
        return existing
    value = secrets.token_urlsafe(24)
    response.set_cookie(
        PRESESSION_COOKIE, value, httponly=True, samesite="strict",
        secure=services(request).settings.secure_cookies,
    )
    return value
