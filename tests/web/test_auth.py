"""Who may do what: bearer tokens, roles, the login form and its throttle, sessions and
CSRF on every cookie-authenticated write."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from inbox.db import Store
from inbox.ingest import Ingestor
from tests.conftest import inbound
from tests.web.conftest import make_client
from tests.web.support import PASSWORD, Person, csrf_from, error_of, login
from web.auth import PRESESSION_COOKIE, SESSION_COOKIE

# --- credentials and roles -----------------------------------------------------------------


async def test_no_credentials_is_401_in_error_shape(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/conversations", "/api/v1/agents/me", "/api/v1/agents"):
        response = await client.get(path)
        error = error_of(response, 401)
        assert error["code"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_unknown_or_malformed_token_is_401(
    client: httpx.AsyncClient, agent: Person
) -> None:
    for header in (
        "Bearer gch_not-a-real-token",
        "Bearer " + agent.token + "x",
        "Bearer " + "a" * 5000,
        "Basic " + agent.token,
        "Bearer ",
    ):
        response = await client.get("/api/v1/agents/me", headers={"Authorization": header})
        assert error_of(response, 401)["code"] == "unauthenticated", header
    # the genuine token, by contrast, works
    me = await client.get("/api/v1/agents/me", headers=agent.auth)
    assert me.status_code == 200 and me.json()["email"] == agent.email


async def test_agent_role_cannot_list_or_create_agents(
    client: httpx.AsyncClient, agent: Person
) -> None:
    listing = await client.get("/api/v1/agents", headers=agent.auth)
    assert error_of(listing, 403)["code"] == "forbidden"
    created = await client.post(
        "/api/v1/agents", headers=agent.auth,
        json={"email": "eve@support.example", "name": "Eve", "password": PASSWORD},
    )
    assert error_of(created, 403)["code"] == "forbidden"


async def test_supervisor_lists_agents_but_cannot_create_them(
    client: httpx.AsyncClient, supervisor: Person, agent: Person, admin: Person
) -> None:
    listing = await client.get("/api/v1/agents", headers=supervisor.auth)
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert {item["email"] for item in items} == {agent.email, supervisor.email, admin.email}
    roles = {item["email"]: item["role"] for item in items}
    assert roles[agent.email] == "agent" and roles[admin.email] == "admin"
    created = await client.post(
        "/api/v1/agents", headers=supervisor.auth,
        json={"email": "eve@support.example", "name": "Eve", "password": PASSWORD},
    )
    assert error_of(created, 403)["code"] == "forbidden"


async def test_admin_creates_agent_and_duplicate_email_is_refused(
    client: httpx.AsyncClient, admin: Person
) -> None:
    body = {
        "email": "Eve@Support.Example", "name": "Eve", "role": "supervisor",
        "password": PASSWORD, "skills": {"billing": 3}, "capacity": {"chat": 2},
    }
    created = await client.post("/api/v1/agents", headers=admin.auth, json=body)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["email"] == "eve@support.example"
    assert agent["role"] == "supervisor"
    assert agent["skills"] == {"billing": 3} and agent["capacity"] == {"chat": 2}
    assert "password" not in created.text and "argon2" not in created.text

    listing = (await client.get("/api/v1/agents", headers=admin.auth)).json()["items"]
    assert agent["id"] in {item["id"] for item in listing}

    again = await client.post(
        "/api/v1/agents", headers=admin.auth, json={**body, "email": "eve@support.example"}
    )
    assert error_of(again, 409) == {
        "code": "conflict", "message": "an agent with email eve@support.example exists",
        "field": "email",
    }


async def test_created_agent_can_log_in(client: httpx.AsyncClient, admin: Person) -> None:
    created = await client.post(
        "/api/v1/agents", headers=admin.auth,
        json={"email": "new@support.example", "name": "New", "password": "s3cret-enough"},
    )
    assert created.status_code == 201
    await login(client, "new@support.example", "s3cret-enough")
    me = await client.get("/api/v1/agents/me")
    assert me.status_code == 200 and me.json()["id"] == created.json()["id"]


# --- login, sessions, logout ---------------------------------------------------------------


async def test_login_page_sets_presession_cookie_and_form_token(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/login")
    assert response.status_code == 200
    assert PRESESSION_COOKIE in response.cookies
    set_cookie = response.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert len(csrf_from(response.text)) >= 32


async def test_login_redirects_with_session_and_inbox_lists_conversations(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    await ingestor.ingest(inbound("m-1", subject="Parcel lost in Lyon"))
    assert (await client.get("/")).headers["location"] == "/login"

    page = await client.get("/login")
    response = await client.post("/login", data={
        "csrf_token": csrf_from(page.text), "email": agent.email.upper(), "password": PASSWORD,
    })
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    session_cookie = response.cookies.get(SESSION_COOKIE)
    assert session_cookie
    set_cookie = [v.lower() for v in response.headers.get_list("set-cookie")
                  if v.startswith(SESSION_COOKIE)]
    assert set_cookie and "httponly" in set_cookie[0]

    inbox = await client.get("/")
    assert inbox.status_code == 200
    assert "Parcel lost in Lyon" in inbox.text
    assert "Ada" in inbox.text  # the logged-in agent's name in the header
    # already logged in: the login page sends you to the inbox
    assert (await client.get("/login")).headers["location"] == "/"


async def test_wrong_password_answers_401_page(
    client: httpx.AsyncClient, agent: Person
) -> None:
    page = await client.get("/login")
    response = await client.post("/login", data={
        "csrf_token": csrf_from(page.text), "email": agent.email, "password": "wrong password",
    })
    assert response.status_code == 401
    assert "text/html" in response.headers["content-type"]
    assert "Wrong email or password" in response.text
    assert SESSION_COOKIE not in response.cookies
    # the re-rendered form still works
    retry = await client.post("/login", data={
        "csrf_token": csrf_from(response.text), "email": agent.email, "password": PASSWORD,
    })
    assert retry.status_code == 303


async def attempt_login(app: Starlette, ip: str, email: str, password: str) -> httpx.Response:
    async with make_client(app, ip) as client:
        page = await client.get("/login")
        return await client.post("/login", data={
            "csrf_token": csrf_from(page.text), "email": email, "password": password,
        })


async def test_eleventh_failure_for_one_email_is_throttled(
    app: Starlette, agent: Person, supervisor: Person
) -> None:
    # Every attempt from a different address, the email in any case: the throttle must
    # hold per email.
    for n in range(10):
        email = agent.email.upper() if n % 2 else agent.email
        response = await attempt_login(app, f"10.0.0.{n + 1}", email, "nope nope")
        assert response.status_code == 401, n
    eleventh = await attempt_login(app, "10.0.0.11", agent.email, "nope nope")
    assert eleventh.status_code == 429
    assert "Too many failed logins" in eleventh.text
    # while throttled even the right password is refused...
    locked = await attempt_login(app, "10.0.0.12", agent.email, PASSWORD)
    assert locked.status_code == 429
    assert SESSION_COOKIE not in locked.cookies
    # ...but other agents are not locked out
    other = await attempt_login(app, "10.0.0.13", supervisor.email, PASSWORD)
    assert other.status_code == 303


async def test_logout_ends_the_session_server_side(
    client: httpx.AsyncClient, agent: Person, store: Store
) -> None:
    token = await login(client, agent.email)
    old_cookie = client.cookies[SESSION_COOKIE]
    assert (await client.get("/api/v1/agents/me")).status_code == 200

    response = await client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"

    # Replaying the old cookie, as a thief who copied it would, no longer works.
    client.cookies.clear()
    replay = {"Cookie": f"{SESSION_COOKIE}={old_cookie}"}
    error_of(await client.get("/api/v1/agents/me", headers=replay), 401)
    assert (await client.get("/", headers=replay)).headers["location"] == "/login"


# --- CSRF ----------------------------------------------------------------------------------


async def test_login_without_csrf_token_is_403(
    client: httpx.AsyncClient, agent: Person
) -> None:
    await client.get("/login")  # has the pre-session cookie, but sends no token
    response = await client.post("/login", data={"email": agent.email, "password": PASSWORD})
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.cookies
    forged = await client.post(
        "/login", data={"csrf_token": "0" * 64, "email": agent.email, "password": PASSWORD}
    )
    assert forged.status_code == 403


async def test_login_token_is_bound_to_its_presession_cookie(
    app: Starlette, agent: Person
) -> None:
    async with make_client(app) as victim, make_client(app) as attacker:
        token = csrf_from((await attacker.get("/login")).text)
        await victim.get("/login")
        # the attacker's token with the victim's cookie: refused
        response = await victim.post(
            "/login", data={"csrf_token": token, "email": agent.email, "password": PASSWORD}
        )
        assert response.status_code == 403


async def test_logout_without_csrf_token_is_403_and_keeps_the_session(
    client: httpx.AsyncClient, agent: Person
) -> None:
    await login(client, agent.email)
    response = await client.post("/logout", data={"csrf_token": ""})
    assert response.status_code == 403
    response = await client.post("/logout", data={"next": "/"})
    assert response.status_code == 403
    assert (await client.get("/api/v1/agents/me")).status_code == 200


async def test_cookie_api_writes_need_the_csrf_header(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    conversation_id = (await ingestor.ingest(inbound("m-1"))).conversation_id
    login_token = csrf_from((await client.get("/login")).text)
    token = await login(client, agent.email)
    url = f"/api/v1/conversations/{conversation_id}"

    # reads need no token
    assert (await client.get(url)).status_code == 200
    # writes without, with a wrong, or with the pre-login token are refused
    for headers in ({}, {"X-CSRF-Token": "f" * 64}, {"X-CSRF-Token": login_token}):
        patch = await client.patch(url, json={"priority": "high"}, headers=headers)
        assert error_of(patch, 403)["code"] == "csrf_failed"
        post = await client.post(f"{url}/messages", json={"body": "hi"}, headers=headers)
        assert error_of(post, 403)["code"] == "csrf_failed"
        presence = await client.put(
            "/api/v1/agents/me/presence", json={"presence": "away"}, headers=headers
        )
        assert error_of(presence, 403)["code"] == "csrf_failed"
    assert (await client.get(url)).json()["priority"] == "normal"

    # the token the inbox page renders works
    ok = {"X-CSRF-Token": token}
    patch = await client.patch(url, json={"priority": "high"}, headers=ok)
    assert patch.status_code == 200 and patch.json()["priority"] == "high"
    post = await client.post(f"{url}/messages", json={"body": "On it"}, headers=ok)
    assert post.status_code == 201
    presence = await client.put(
        "/api/v1/agents/me/presence", json={"presence": "away"}, headers=ok
    )
    assert presence.status_code == 200


async def test_bearer_requests_need_no_csrf_token(
    client: httpx.AsyncClient, agent: Person, ingestor: Ingestor
) -> None:
    conversation_id = (await ingestor.ingest(inbound("m-1"))).conversation_id
    response = await client.patch(
        f"/api/v1/conversations/{conversation_id}", json={"priority": "urgent"},
        headers=agent.auth,
    )
    assert response.status_code == 200 and response.json()["priority"] == "urgent"
