"""The ``guichet`` command, run as a real subprocess against a fresh database (a SQLite
file, or a fresh PostgreSQL schema when GUICHET_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from inbox.auth import verify_login
from inbox.config import load_settings
from inbox.db import Store
from inbox.migrate import head_revision
from inbox.queries import agent_by_email, agent_view
from tests.conftest import IS_PG
from tests.web.conftest import make_client
from tests.web.support import PASSWORD, Person, csrf_from, free_port
from web.app import create_app
from web.demo import DEMO_PASSWORD
from web.server import build_services

GUICHET = str(Path(sys.executable).with_name("guichet"))
# The commands must not pick up the developer's own installation settings.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


async def guichet(*args: str, stdin: str | None = None) -> Run:
    process = await asyncio.create_subprocess_exec(
        GUICHET, *args, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(
        process.communicate(stdin.encode() if stdin is not None else b""), 60
    )
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def db_args(url: str, tmp_path: Path) -> list[str]:
    return ["--database", url, "--data-dir", str(tmp_path / "data")]


async def test_migrate_on_an_empty_database(empty_db_url: str, tmp_path: Path) -> None:
    run = await guichet("migrate", *db_args(empty_db_url, tmp_path))
    assert run.code == 0, run.stderr
    head = head_revision()
    assert run.stdout.strip() == f"database at revision {head} (was None)"
    again = await guichet("migrate", *db_args(empty_db_url, tmp_path))
    assert again.code == 0 and again.stdout.strip() == f"database at revision {head}"


async def test_agent_add_reads_the_password_from_stdin(
    empty_db_url: str, tmp_path: Path
) -> None:
    args = [
        "agent", "add", "Ada@Support.example", "--name", "Ada Lovelace", "--role", "agent",
        "--skills", "billing:3,tech:1", "--capacity", "chat=3,email=10", "--team", "Support",
        "--password-stdin", *db_args(empty_db_url, tmp_path),
    ]
    run = await guichet(*args, stdin=PASSWORD + "\n")
    assert run.code == 0, run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    store = Store(empty_db_url, tmp_path)
    try:
        async with store.read() as session:
            agent = await agent_by_email(session, "ada@support.example")
            assert agent is not None
            view = await agent_view(session, agent.id)
            assert await verify_login(session, "ada@support.example", PASSWORD) == agent.id
            assert await verify_login(session, "ada@support.example", PASSWORD + "\n") is None
    finally:
        await store.close()
    assert view is not None
    assert (view.name, view.role) == ("Ada Lovelace", "agent")
    assert dict(view.skills) == {"billing": 3, "tech": 1}
    assert dict(view.capacity) == {"chat": 3, "email": 10}
    assert len(view.team_ids) == 1


async def test_agent_add_usage_errors_exit_2_with_one_line(
    empty_db_url: str, tmp_path: Path
) -> None:
    cases = [
        ([], PASSWORD, "--password-stdin"),  # the flag is required
        (["--skills", "billing", "--password-stdin"], PASSWORD, "--skills"),
    ]
    runs = await asyncio.gather(*(
        guichet("agent", "add", "ada@support.example", "--name", "Ada", "--role", "agent",
                *extra, *db_args(empty_db_url, tmp_path), stdin=stdin)
        for extra, stdin, _ in cases
    ))
    for (extra, _, needle), run in zip(cases, runs, strict=True):
        assert run.code == 2, (extra, run)
        assert len(run.error_lines) == 1, (extra, run.stderr)
        assert run.stderr.startswith("guichet: error:") and needle in run.stderr, extra
        assert run.stdout == ""


async def test_bad_or_unreachable_database_exits_2_with_one_line(tmp_path: Path) -> None:
    urls = [
        "foo://x",
        # nothing listens on port 1; the password must never be echoed
        "postgresql://postgres:hunter2secret@127.0.0.1:1/guichet",
    ]
    runs = await asyncio.gather(*(
        guichet("migrate", "--database", url, "--data-dir", str(tmp_path)) for url in urls
    ))
    for url, run in zip(urls, runs, strict=True):
        assert run.code == 2, (url, run)
        assert len(run.error_lines) == 1, run.stderr
        assert run.stderr.startswith("guichet: error:")
        assert "hunter2secret" not in run.stderr
        assert run.stdout == ""
    assert "foo" in runs[0].stderr


async def test_token_create_prints_only_a_working_token(
    db_url: str, tmp_path: Path, agent: Person
) -> None:
    run = await guichet("token", "create", agent.email.upper(), *db_args(db_url, tmp_path))
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and run.stdout.endswith("\n")
    token = lines[0]
    assert token.startswith("gch_") and token == token.strip() and len(token) > 30

    settings = load_settings({"database_url": db_url, "data_dir": str(tmp_path)}, environ={})
    svc = build_services(settings)
    app = create_app(svc)
    try:
        async with app.router.lifespan_context(app), make_client(app) as client:
            me = await client.get("/api/v1/agents/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
            assert me.json()["id"] == agent.id
    finally:
        await svc.store.close()


async def test_token_create_for_unknown_email_fails_with_one_line(
    db_url: str, tmp_path: Path
) -> None:
    run = await guichet("token", "create", "nobody@example.com", *db_args(db_url, tmp_path))
    assert run.code != 0
    assert run.stdout == ""
    assert len(run.error_lines) == 1 and "nobody@example.com" in run.stderr


def read(path: Path) -> str:
    return path.read_text(errors="replace")


async def wait_healthy(base: str, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=base) as http:
        while True:
            assert process.returncode is None, read(log)[-3000:]
            try:
                response = await http.get("/healthz")
                if response.status_code == 200:
                    assert response.json() == {"status": "ok", "database": "ok"}
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become healthy"
            await asyncio.sleep(0.1)


async def test_serve_demo_answers_and_stops_cleanly_on_sigterm(
    empty_db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    data = tmp_path / "data"
    args = ["serve", "--http", f"127.0.0.1:{port}", "--data-dir", str(data), "--demo"]
    if IS_PG:
        args += ["--database", empty_db_url]
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            GUICHET, *args, env=ENV, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
        )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process, err)
        demo = [line for line in read(out).splitlines() if line.startswith("Demo")]
        assert len(demo) == 1, read(out)
        assert "agent@example.com" in demo[0] and DEMO_PASSWORD in demo[0]
        assert f"http://127.0.0.1:{port}/login" in demo[0]
        if not IS_PG:
            assert (data / "guichet.db").is_file()

        # the printed login works, and the demo inbox has conversations
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            page = await http.get("/login")
            login = await http.post("/login", data={
                "csrf_token": csrf_from(page.text), "email": "agent@example.com",
                "password": DEMO_PASSWORD,
            })
            assert login.status_code == 303
            inbox = await http.get("/")
            assert "Charged twice" in inbox.text

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
        assert time.monotonic() - started < 10
        assert code == 0, (code, read(err)[-2000:])
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


SCENARIO_S = Path(__file__).resolve().parents[2] / "routing" / "scenarios" / "s.json"


async def test_simulate_prints_the_fixed_json_keys(tmp_path: Path) -> None:
    scenario = SCENARIO_S
    chart = tmp_path / "day.svg"
    run = await guichet("simulate", str(scenario), "--json", "--no-progress",
                        "--chart", str(chart))
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    keys = {"chat_sl60", "chat_asa_s", "email_within_sla", "form_within_sla", "all_asa_s",
            "occupancy_cv", "duplicate_assignments", "never_assigned"}
    assert keys <= result["guichet"].keys() and keys <= result["baseline"].keys()
    assert {"chat_sl60", "all_asa_s"} <= result["bound"].keys()
    assert 0 <= result["gap_closed"] <= 1
    assert result["guichet"]["duplicate_assignments"] == 0
    assert (await asyncio.to_thread(chart.read_text)).lstrip().startswith("<svg")


async def test_simulate_with_a_missing_file_exits_2(tmp_path: Path) -> None:
    run = await guichet("simulate", str(tmp_path / "none.json"), "--json")
    assert run.code == 2
    assert "none.json" in run.stderr and run.stdout == ""
