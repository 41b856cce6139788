"""From a fresh virtual environment, the README's first command starts a server on SQLite
with demo data, and /healthz answers 200.

The command is read from README.md (the ``sh`` block after ``<!-- guichet:first-command -->``)
and run as written in a copy of the project's files, as a new user would run it in a clone.
It builds its own ``.venv`` and installs Guichet (not editable) there.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests.browser.conftest import LAUNCH
from tests.conftest import IS_PG
from tests.e2e.conftest import Spawn, clean_env, free_port

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- guichet:first-command -->"
INSTALL_AND_START_SECONDS = 240

pytestmark = pytest.mark.skipif(
    IS_PG, reason="SQLite by nature (the first command uses no database URL): runs in the "
                  "SQLite pass"
)


def first_command(readme: str) -> str:
    lines = readme.splitlines()
    assert MARKER in lines, f"README.md has no {MARKER} line"
    start = lines.index(MARKER) + 1
    assert lines[start].strip() == "```sh", f"no ```sh block right after {MARKER}"
    end = lines.index("```", start + 1)
    command = "\n".join(lines[start + 1 : end]).strip()
    assert command, "the first-command block is empty"
    return command


def project_files() -> list[str]:
    def git(*args: str) -> list[str]:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", *args],
                             capture_output=True, check=True).stdout
        return [name for name in out.decode().split("\0") if name]

    return sorted(set(git()) | set(git("--others", "--exclude-standard")))


def copy_project(target: Path) -> None:
    for name in project_files():
        source = ROOT / name
        if not source.is_file():  # tracked but deleted in the work tree
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)


def test_first_command_is_the_documented_one() -> None:
    command = first_command((ROOT / "README.md").read_text())
    assert "guichet serve --demo" in command
    assert ".venv" in command


async def test_readme_first_command_serves_the_demo(processes: Spawn, tmp_path: Path) -> None:
    command = first_command((ROOT / "README.md").read_text())
    clone = tmp_path / "clone"
    clone.mkdir()
    copy_project(clone)
    assert not (clone / ".venv").exists()
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    server = processes(["bash", "-c", command], name="first-command", cwd=clone,
                       env=clean_env(GUICHET_HTTP=f"127.0.0.1:{port}"), group=True)
    await server.wait_healthy(base, seconds=INSTALL_AND_START_SECONDS)
    async with httpx.AsyncClient() as client:
        health = await client.get(base + "/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok"}

    # The installed copy, not this checkout, is what runs.
    assert (clone / ".venv" / "bin" / "guichet").exists()
    assert (clone / "data" / "guichet.db").exists(), "SQLite file not in ./data"
    login_line = re.search(
        rf"Demo data seeded\. Log in at {re.escape(base)}/login as agent@example\.com, "
        r"supervisor@example\.com or admin@example\.com, password guichet-demo",
        server.output(),
    )
    assert login_line, f"no demo login line in the output:\n{server.tail()}"

    async with async_playwright() as p:
        browser = await p.chromium.launch(**LAUNCH)  # type: ignore[arg-type]
        try:
            page = await browser.new_page(base_url=base)
            await page.goto("/login")
            await page.get_by_label("Email").fill("agent@example.com")
            await page.get_by_label("Password").fill("guichet-demo")
            await page.get_by_role("button", name="Log in").click()
            await expect(page).to_have_url(base + "/")
            rows = page.locator("#conversations tbody tr.conversation")
            for subject in ("Charged twice for my March invoice",
                            "API returns 502 since this morning"):
                await expect(rows.filter(has_text=subject)).to_have_count(1)
        finally:
            await browser.close()

    status = await server.stop(signal.SIGTERM)
    assert status == 0, f"SIGTERM: exit status {status}, expected 0\n{server.tail()}"
    assert "Traceback" not in server.output(), server.tail()
