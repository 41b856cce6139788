"""Helpers the web tests share: people with tokens, the documented error shape, logging in
through the real pages, and counting rows."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from inbox.actions.agents import create_agent
from inbox.auth import create_api_token
from inbox.db import Store
from inbox.types import Role

PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def new_person(
    store: Store, email: str, role: Role = Role.AGENT, teams: tuple[str, ...] = ()
) -> Person:
    async with store.write() as session:
        agent_id = await create_agent(
            session, email=email, name=email.split("@")[0].title(), role=role,
            password=PASSWORD, teams=teams,
        )
        token = await create_api_token(session, agent_id)
    return Person(agent_id, email, token)


async def count(store: Store, model: Any, *where: Any) -> int:
    async with store.read() as session:
        return (await session.scalar(select(func.count()).select_from(model).where(*where))) or 0


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The ``error`` object of a JSON API error answer, after checking status and shape."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert set(error) <= {"code", "message", "field"}, body
    return error


def csrf_from(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found is not None, "no csrf_token field in the page"
    return found.group(1)


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Log in through the login form; returns the CSRF token the inbox page renders."""
    page = await client.get("/login")
    assert page.status_code == 200
    response = await client.post(
        "/login",
        data={"csrf_token": csrf_from(page.text), "email": email, "password": password},
    )
    assert response.status_code == 303, response.text[:300]
    assert response.headers["location"] == "/"
    inbox = await client.get("/")
    assert inbox.status_code == 200
    return csrf_from(inbox.text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
