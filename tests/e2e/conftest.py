"""End-to-end fixtures: real ``guichet`` processes on loopback, started and stopped by PID.

Every process a test starts goes through the ``processes`` fixture, whose teardown stops
whatever is still running (SIGTERM, then SIGKILL after 15 s), so a failing test never
leaves a server behind. Output goes to files in the test's temp dir and is quoted in
failure messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

# The console script installed next to the interpreter running the tests.
GUICHET = str(Path(sys.executable).parent / "guichet")
STOP_SECONDS = 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without Guichet settings or an active virtualenv, so a
    developer's own ``GUICHET_*`` variables never leak into the process under test."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("GUICHET_") and k not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")
    }
    env.update(extra)
    return env


@dataclass
class Process:
    """One started process, its log file and, if asked, its own process group."""

    popen: subprocess.Popen[bytes]
    log: Path
    group: bool

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]

    def send(self, sig: int) -> None:
        if self.popen.poll() is not None:
            return
        if self.group:
            os.killpg(self.popen.pid, sig)  # the group this fixture created for it
        else:
            self.popen.send_signal(sig)

    async def wait(self, seconds: float) -> int:
        return await asyncio.to_thread(self.popen.wait, seconds)

    async def stop(self, sig: int = signal.SIGTERM, seconds: float = STOP_SECONDS) -> int:
        """Send ``sig`` and return the exit status; fails if it does not exit in time."""
        started = time.monotonic()
        self.send(sig)
        try:
            return await self.wait(seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"pid {self.pid} still running {time.monotonic() - started:.1f}s after "
                f"{signal.Signals(sig).name}\n{self.tail()}"
            )

    async def wait_healthy(self, base_url: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    pytest.fail(f"exited with {self.popen.returncode} before /healthz answered:"
                                f"\n{self.tail()}")
                try:
                    response = await client.get(base_url + "/healthz")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        pytest.fail(f"/healthz did not answer 200 within {seconds}s:\n{self.tail()}")


Spawn = Callable[..., Process]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Spawn]:
    started: list[Process] = []

    def spawn(args: Sequence[str], *, name: str, cwd: Path | None = None,
              env: dict[str, str] | None = None, group: bool = False) -> Process:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(args), cwd=cwd or tmp_path, env=env or clean_env(),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=group,
            )
        process = Process(popen, log, group)
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.popen.poll() is None:
            process.send(signal.SIGTERM)
            try:
                process.popen.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.send(signal.SIGKILL)
                process.popen.wait(STOP_SECONDS)


async def cli(*args: str, stdin: str | None = None) -> str:
    """Run one ``guichet`` command to completion; returns its standard output."""
    done = await asyncio.to_thread(
        subprocess.run, [GUICHET, *args], input=stdin, capture_output=True, text=True,
        env=clean_env(), timeout=120,
    )
    assert done.returncode == 0, f"guichet {' '.join(args)} exited {done.returncode}:\n" \
        f"{done.stderr}"
    return done.stdout


@dataclass
class EventTap:
    """Reads an agent websocket in the background and stamps each frame on arrival, so
    latencies are measured when the frame arrived, not when the test looked."""

    ws: ClientConnection
    frames: asyncio.Queue[tuple[float, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    def start(self) -> EventTap:
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self.ws:
            self.frames.put_nowait((time.monotonic(), json.loads(raw)))

    async def next_event(
        self, kind: str, seconds: float = 5,
        where: Callable[[dict[str, Any]], bool] = lambda event: True, **match: Any,
    ) -> tuple[float, dict[str, Any]]:
        """The next event of ``kind`` whose top-level fields equal ``match`` and that
        satisfies ``where``; earlier frames are skipped."""
        async with asyncio.timeout(seconds):
            while True:
                at, frame = await self.frames.get()
                if frame.get("type") != "event":
                    continue
                event = frame["event"]
                if (event["kind"] == kind and all(event.get(k) == v for k, v in match.items())
                        and where(event)):
                    return at, event

    async def close(self) -> None:
        await self.ws.close()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


async def tap(ws: ClientConnection) -> EventTap:
    hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert hello["type"] == "hello" and hello["protocol"] == 1, hello
    return EventTap(ws).start()
