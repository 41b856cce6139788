"""``python -m bench list``: first-page latency of ``GET /api/v1/conversations``.

Requests go in-process through ``httpx.ASGITransport`` to the real application from
``web.app.create_app`` (lifespan run, bearer-token authentication included), so a figure
is what the server spends on one request without the network. Each case is asked as an
agent (whose visibility filter applies) and as a supervisor (who sees everything).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.common import Report, log, percentile, selected_backends, temp_database
from bench.dataset import COMMON_WORD, RARE_WORD, Population, load
from bench.explain import explain
from inbox.actions.agents import create_agent, ensure_team
from inbox.auth import create_api_token
from inbox.config import load_settings
from inbox.migrate import upgrade
from inbox.types import Role
from web.app import create_app
from web.server import build_services
from web.services import Services

DEFAULT_SIZE = {"sqlite": 100_000, "postgresql": 1_000_000}
TARGET_P95_MS = {"sqlite": 30, "postgresql": 50}
TEAMS = ("billing", "logistics", "tech", "sales", "accounts")
PASSWORD = "bench-password-not-secret"
CASES: dict[str, dict[str, str]] = {
    "first_page": {},
    "status_open": {"status": "open"},
    "q_common": {"q": COMMON_WORD},  # matches about one subject in eight
    "q_rare": {"q": RARE_WORD},  # one message body in the whole store
}
# The targets are for the first page; a search is reported, not judged.
TARGET_CASES = ("first_page", "status_open")


async def _people(svc: Services) -> tuple[dict[str, str], tuple[int, ...], tuple[int, ...]]:
    """Bearer tokens for an agent of team billing and a supervisor, plus the ids of all
    agents (conversations get assigned to them) and teams."""
    tokens: dict[str, str] = {}
    agent_ids = []
    async with svc.store.write() as session:
        team_ids = tuple([await ensure_team(session, name) for name in TEAMS])
        for i, role in enumerate((Role.AGENT, Role.SUPERVISOR, Role.AGENT, Role.AGENT)):
            agent_id = await create_agent(
                session, email=f"{role.value}{i}@bench.example", name=f"Bench {role.value} {i}",
                role=role, password=PASSWORD, teams=(TEAMS[i % len(TEAMS)],),
            )
            agent_ids.append(agent_id)
            if i < 2:
                tokens[role.value] = await create_api_token(session, agent_id)
    return tokens, tuple(agent_ids), team_ids


def _lister(
    client: httpx.AsyncClient, token: str, params: dict[str, str]
) -> Callable[[], Awaitable[httpx.Response]]:
    """One first-page request of a case, ready to send again and again."""
    headers = {"Authorization": f"Bearer {token}"}
    return functools.partial(client.get, "/api/v1/conversations", params=params, headers=headers)


async def _measure(
    request: Callable[[], Awaitable[httpx.Response]], requests: int, budget_s: float
) -> list[float]:
    """Latencies in ms of up to ``requests`` requests, stopping early after ``budget_s``."""
    for _ in range(3):  # warm-up: statement caches, pool connections
        await request()
    latencies: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(latencies) < requests and time.perf_counter() < deadline:
        start = time.perf_counter()
        response = await request()
        latencies.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200 or not response.json()["items"]:
            raise AssertionError(f"{response.url}: {response.status_code} {response.text[:200]}")
    return latencies


async def _cases(svc: Services, tokens: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    app = create_app(svc)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for role, token in tokens.items():
                for case, params in CASES.items():
                    request = _lister(client, token, params)
                    ms = await _measure(request, args.requests, args.budget)
                    name = f"{role}_{case}"
                    figures[f"{name}_p50_ms"] = round(percentile(ms, 50), 2)
                    figures[f"{name}_p95_ms"] = round(percentile(ms, 95), 2)
                    if len(ms) < args.requests:
                        figures[f"{name}_requests"] = len(ms)
                    log(f"{name}: p50 {percentile(ms, 50):.1f} ms, "
                        f"p95 {percentile(ms, 95):.1f} ms over {len(ms)} requests")
            if args.explain:
                await _explain_all(svc, client, tokens)
    return figures


async def _explain_all(svc: Services, client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    for role, token in tokens.items():
        for case, params in CASES.items():
            await explain(svc.store, f"{role}_{case}", _lister(client, token, params))


def _judge(figures: dict[str, Any], backend: str) -> dict[str, Any]:
    target = TARGET_P95_MS[backend]
    judged = [f"{role}_{case}_p95_ms" for role in ("agent", "supervisor") for case in TARGET_CASES]
    over = [key for key, value in figures.items() if key.endswith("_p95_ms") and value > target]
    return {
        "target_p95_ms": target,
        "target_met": all(figures[key] <= target for key in judged),
        "over_target": over,
    }


async def _one_backend(report: Report, backend: str, args: argparse.Namespace) -> None:
    size = args.n or DEFAULT_SIZE[backend]
    async with temp_database(backend, args.database_url) as db:
        start = time.perf_counter()
        await upgrade(db.url)
        svc = build_services(load_settings(
            {"data_dir": str(db.data_dir), "database_url": db.url}, environ={}
        ))
        try:
            tokens, agent_ids, team_ids = await _people(svc)
            log(f"{backend}: generating {size:,} conversations")
            figures: dict[str, Any] = await load(
                db, Population(size, agent_ids, team_ids), args.seed
            )
            figures["setup_s"] = round(time.perf_counter() - start, 1)
            figures.update(await _cases(svc, tokens, args))
        finally:
            await svc.store.close()
        figures.update(_judge(figures, backend))
        report.add(db, figures)


async def run(args: argparse.Namespace) -> Report:
    report = Report("list", {"requests_per_case": args.requests, "page_size": 25})
    for backend in selected_backends(args.backend):
        await _one_backend(report, backend, args)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=200,
                        help="requests per case (default 200)")
    parser.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                        help="stop a case early after this many seconds (default 60)")
    parser.add_argument("--explain", action="store_true",
                        help="after measuring, print each case's slowest statement and its "
                             "query plan to stderr")
