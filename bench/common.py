"""What every benchmark shares: the machine and library versions it ran on, throwaway
databases that are always removed afterwards, percentiles, and progress on stderr.

Benchmarks print exactly one JSON object on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from inbox.config import parse_database_url

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
_START = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _START:8.1f}s] {message}", file=sys.stderr, flush=True)


class Progress:
    """Logs "label: done of total" at every tenth of the way."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0

    def tick(self) -> None:
        self.done += 1
        if self.done % max(1, self.total // 10) == 0:
            log(f"{self.label}: {self.done:,} of {self.total:,}")


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine(load_at_start: float) -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        # Other work on the machine skews every figure; these say how busy it was.
        "load_avg_1m_start": round(load_at_start, 2),
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
    }


def versions(pg_server: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        name: version(name) for name in ("sqlalchemy", "aiosqlite", "asyncpg", "starlette")
    }
    found["sqlite_library"] = sqlite3.sqlite_version
    if pg_server is not None:
        found["postgresql_server"] = pg_server
    return found


def selected_backends(choice: str) -> tuple[str, ...]:
    return BACKENDS if choice == "both" else (choice,)


@dataclass(frozen=True)
class TempDatabase:
    """An empty database (no schema yet) and a data directory for attachments."""

    backend: str
    url: str
    data_dir: Path
    # PostgreSQL only: the schema the URL points into, and how to reach the server.
    schema: str | None = None
    admin_dsn: str | None = None
    server_version: str | None = None
    server_settings: dict[str, str] | None = None


def _admin_dsn(database_url: str) -> str:
    url = make_url(parse_database_url(database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


PG_SETTINGS = ("fsync", "synchronous_commit", "shared_buffers", "work_mem", "max_connections")


async def _pg_info(conn: asyncpg.Connection) -> tuple[str, dict[str, str]]:
    server = str(await conn.fetchval("SHOW server_version"))
    settings = {name: str(await conn.fetchval(f"SHOW {name}")) for name in PG_SETTINGS}
    return server, settings


@asynccontextmanager
async def temp_database(backend: str, pg_url: str = DEFAULT_PG_URL) -> AsyncIterator[TempDatabase]:
    """A fresh database, removed on exit: a SQLite file in a temp dir, or a new schema
    in the PostgreSQL database of ``pg_url`` (dropped with everything in it)."""
    with tempfile.TemporaryDirectory(prefix="guichet-bench-") as tmp:
        data_dir = Path(tmp)
        if backend == "sqlite":
            yield TempDatabase(backend, f"sqlite+aiosqlite:///{data_dir / 'bench.db'}", data_dir)
            return
        schema = "bench_" + secrets.token_hex(6)
        admin = _admin_dsn(pg_url)
        conn = await asyncpg.connect(admin)
        try:
            server, settings = await _pg_info(conn)
            await conn.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await conn.close()
        base = parse_database_url(pg_url)
        url = base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"
        log(f"postgresql: created schema {schema}")
        try:
            yield TempDatabase(backend, url, data_dir, schema, admin, server, settings)
        finally:
            conn = await asyncpg.connect(admin)
            try:
                await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            finally:
                await conn.close()
            log(f"postgresql: dropped schema {schema}")


@dataclass
class Report:
    """What one benchmark measured: its parameters, figures per backend, and where."""

    benchmark: str
    params: dict[str, Any]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    pg_server_version: str | None = None
    _started: tuple[float, float, float] = field(
        default_factory=lambda: (time.perf_counter(), time.process_time(), os.getloadavg()[0])
    )

    def add(self, db: TempDatabase, figures: dict[str, Any]) -> None:
        if db.server_version is not None:
            self.pg_server_version = db.server_version
            figures["postgresql_settings"] = db.server_settings
        self.results[db.backend] = figures

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            **self.params,
            "results": self.results,
            "wall_s": round(time.perf_counter() - self._started[0], 1),
            "process_cpu_s": round(time.process_time() - self._started[1], 1),
            "machine": machine(self._started[2]),
            "versions": versions(self.pg_server_version),
        }
