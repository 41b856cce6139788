"""The application shell: health check, security headers, the API's 404 and its OpenAPI
document checked against the routes actually served."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from tests.web.support import Person, error_of, login
from web.api import agents as agents_api
from web.api import conversations as conversations_api

SECURITY = {
    "content-security-policy": "frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
}


async def test_healthz_reports_database_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok", "database": "ok"}


def assert_security_headers(response: httpx.Response) -> None:
    for name, expected in SECURITY.items():
        assert expected in response.headers.get(name, ""), (name, response.headers.get(name))
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp


async def test_pages_carry_security_headers(client: httpx.AsyncClient, agent: Person) -> None:
    login_page = await client.get("/login")
    assert login_page.status_code == 200
    assert_security_headers(login_page)
    await login(client, agent.email)
    inbox = await client.get("/")
    assert inbox.status_code == 200 and "text/html" in inbox.headers["content-type"]
    assert_security_headers(inbox)


async def test_error_and_api_answers_carry_security_headers(
    client: httpx.AsyncClient, agent: Person
) -> None:
    assert_security_headers(await client.get("/api/v1/conversations"))  # 401
    assert_security_headers(await client.get("/api/v1/conversations", headers=agent.auth))
    assert_security_headers(await client.get("/no-such-page"))


async def test_unknown_api_path_answers_404_in_error_shape(
    client: httpx.AsyncClient, agent: Person
) -> None:
    for method, path in [
        ("GET", "/api/v1/nothing-here"),
        ("POST", "/api/v1/conversations/1/frobnicate"),
        ("DELETE", "/api/v1/agents/me"),
        ("GET", "/api/v1/"),
    ]:
        response = await client.request(method, path, headers=agent.auth)
        error = error_of(response, 404)
        assert error["code"] == "not_found"


# --- OpenAPI -------------------------------------------------------------------------------


def spelled(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    """(path in OpenAPI spelling, lower-case method) for each route."""
    found = set()
    for route in routes:
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in route.methods or ():
            if method != "HEAD":
                found.add((path, method.lower()))
    return found


def routed(app: Starlette) -> set[tuple[str, str]]:
    """Every endpoint the app serves under ``/api/v1``, but the document and the 404."""
    (api,) = [r for r in app.routes if isinstance(r, Mount) and r.path == "/api/v1"]
    endpoints = [
        r for r in api.routes
        if isinstance(r, Route) and r.path not in ("/openapi.json", "/{rest:path}")
    ]
    return spelled(endpoints)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


async def test_openapi_document_covers_every_routed_path(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    response = await client.get("/api/v1/openapi.json")  # public: no credentials
    assert response.status_code == 200
    document = json.loads(response.text)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] and document["info"]["version"]
    documented = {
        (path, method) for path, item in document["paths"].items() for method in item
    }
    served = routed(app)
    assert spelled([*conversations_api.ROUTES, *agents_api.ROUTES]) <= served
    assert served - documented == set(), "routes missing from OpenAPI"
    assert documented - served == set(), "OpenAPI documents paths that are not routed"
    for path, method in documented:
        operation = document["paths"][path][method]
        assert operation["summary"] and operation["responses"], (path, method)
        for status in operation["responses"]:
            assert re.fullmatch(r"[1-5]\d\d", status), (path, method, status)


async def test_openapi_references_resolve(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    schemas = document["components"]["schemas"]
    found = refs(document)
    assert found
    for ref in found:
        prefix = "#/components/schemas/"
        assert ref.startswith(prefix) and ref[len(prefix):] in schemas, ref
