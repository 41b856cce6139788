"""``python -m bench ingest``: throughput of ``inbox.ingest.Ingestor.ingest``.

Per backend, the same generated traffic is ingested twice into fresh databases: once one
message at a time, then by 8, 64 and 256 concurrent producers (like many SMTP sessions). Then a
sample of already-stored messages is ingested again, which must answer "duplicate".
Every commit is durable: the ``Store`` runs SQLite in WAL mode with synchronous=FULL.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text

from bench.common import (
    Progress,
    Report,
    TempDatabase,
    log,
    percentile,
    selected_backends,
    temp_database,
)
from bench.messages import Traffic, generate
from inbox.blobs import BlobStore
from inbox.db import Store
from inbox.inbound import InboundMessage
from inbox.ingest import Ingestor, IngestResult
from inbox.migrate import upgrade
from inbox.models import Conversation, Message

Figures = dict[str, Any]
DEFAULT_MESSAGES = 10_000
TARGET_SQLITE_MSGS_PER_S = 1500


class StatementCounter:
    """Counts SQL statements the store's writers send (on SQLite the async writer and
    the ingest thread's connection): BEGIN IMMEDIATE and pg_notify included, COMMIT not."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        event.listen(store.write_engine.sync_engine, "before_cursor_execute", self._seen)
        if store.sync_write_engine is not None:
            event.listen(store.sync_write_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


async def _timed(
    ingestor: Ingestor, message: InboundMessage, progress: Progress
) -> tuple[IngestResult, float]:
    start = time.perf_counter()
    result = await ingestor.ingest(message)
    elapsed = time.perf_counter() - start
    progress.tick()
    return result, elapsed


async def _sequential(ingestor: Ingestor, messages: Sequence[InboundMessage]) -> list[Any]:
    progress = Progress("ingested", len(messages))
    return [await _timed(ingestor, m, progress) for m in messages]


async def _concurrent(
    ingestor: Ingestor, messages: Sequence[InboundMessage], producers: int
) -> list[Any]:
    """``producers`` tasks take messages in order from one shared iterator."""
    results: list[Any] = [None] * len(messages)
    queue = iter(enumerate(messages))
    progress = Progress("ingested", len(messages))

    async def producer() -> None:
        for i, message in queue:
            results[i] = await _timed(ingestor, message, progress)

    await asyncio.gather(*(producer() for _ in range(producers)))
    return results


async def _measured(prefix: str, phase: Awaitable[list[Any]]) -> tuple[list[Any], Figures]:
    """Run a phase; its rate, latency percentiles and CPU time per message."""
    wall, cpu = time.perf_counter(), time.process_time()
    timings = await phase
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    latencies = [seconds * 1000 for _, seconds in timings]
    return timings, {
        f"{prefix}_msgs_per_s": round(len(timings) / wall, 1),
        f"{prefix}_latency_p50_ms": round(percentile(latencies, 50), 2),
        f"{prefix}_latency_p95_ms": round(percentile(latencies, 95), 2),
        f"{prefix}_latency_p99_ms": round(percentile(latencies, 99), 2),
        # CPU of this process (all threads) per message: what the code costs, apart from
        # waiting for the disk or the database server.
        f"{prefix}_cpu_ms_per_msg": round(cpu * 1000 / len(timings), 2),
    }


@contextmanager
def _profiled(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)


def _check(results: list[Any], traffic: Traffic, *, duplicates: bool) -> dict[str, int]:
    stored = [r for r, _ in results]
    if any(r.duplicate != duplicates for r in stored):
        raise AssertionError(f"expected every result to have duplicate={duplicates}")
    threaded = sum(not r.created_conversation for r in stored)
    return {"replies_sent": traffic.replies, "replies_threaded": threaded}


async def _counts(store: Store) -> dict[str, int]:
    async with store.read() as session:
        messages = await session.scalar(select(func.count()).select_from(Message))
        conversations = await session.scalar(select(func.count()).select_from(Conversation))
    return {"messages_stored": messages or 0, "conversations_stored": conversations or 0}


async def _sqlite_durability(store: Store) -> dict[str, str]:
    async with store.write() as session:
        mode = await session.scalar(text("PRAGMA journal_mode"))
        sync = await session.scalar(text("PRAGMA synchronous"))
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {"sqlite_journal_mode": str(mode), "sqlite_synchronous": names.get(sync, str(sync))}


def fsync_latency_ms(directory: Path, rounds: int = 200) -> dict[str, float]:
    """How long a 4 KiB append + fsync takes where the SQLite file lives."""
    fd, path = tempfile.mkstemp(dir=directory)
    timings = []
    try:
        for _ in range(rounds):
            os.write(fd, b"\0" * 4096)
            start = time.perf_counter()
            os.fsync(fd)
            timings.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    return {"fsync_4k_p50_ms": round(percentile(timings, 50), 3),
            "fsync_4k_p95_ms": round(percentile(timings, 95), 3)}


def _ingestor(db: TempDatabase) -> tuple[Store, Ingestor]:
    store = Store(db.url, db.data_dir)
    return store, Ingestor(store, BlobStore(db.data_dir / "attachments"))


async def _run_sequential(
    db: TempDatabase, traffic: Traffic, duplicates: int, profile: Path | None
) -> Figures:
    store, ingestor = _ingestor(db)
    counter = StatementCounter(store)
    try:
        log(f"{db.backend}: sequential ingest of {len(traffic.messages):,} messages")
        with _profiled(profile):
            timings, figures = await _measured(
                "sequential", _sequential(ingestor, traffic.messages)
            )
        figures["statements_per_msg"] = round(counter.count / len(timings), 2)
        figures.update(_check(timings, traffic, duplicates=False))
        figures.update(await _counts(store))

        sample = random.Random(7).sample(traffic.messages, min(duplicates, len(traffic.messages)))
        log(f"{db.backend}: re-ingest of {len(sample):,} stored messages")
        counter.count = 0
        again, duplicate_figures = await _measured("duplicate", _sequential(ingestor, sample))
        _check(again, traffic, duplicates=True)
        figures.update(duplicate_figures)
        figures["duplicate_statements_per_msg"] = round(counter.count / len(sample), 2)
        if db.backend == "sqlite":
            figures.update(await _sqlite_durability(store))
        return figures
    finally:
        await store.close()


async def _run_concurrent(db: TempDatabase, traffic: Traffic, producers: int) -> Figures:
    store, ingestor = _ingestor(db)
    prefix = f"concurrent_{producers}"
    try:
        log(f"{db.backend}: ingest of {len(traffic.messages):,} messages "
            f"by {producers} concurrent producers")
        timings, figures = await _measured(
            prefix, _concurrent(ingestor, traffic.messages, producers)
        )
        checked = _check(timings, traffic, duplicates=False)
        figures[f"{prefix}_replies_threaded"] = checked["replies_threaded"]
        figures[f"{prefix}_messages_stored"] = (await _counts(store))["messages_stored"]
        return figures
    finally:
        await store.close()


async def _one_backend(
    report: Report, backend: str, args: argparse.Namespace, traffic: Traffic
) -> None:
    # Each concurrent phase ingests the same traffic again, so it gets its own database.
    async with temp_database(backend, args.database_url) as db:
        await upgrade(db.url)
        result: Figures = {"messages": len(traffic.messages)}
        result.update(await _run_sequential(db, traffic, args.duplicates, args.profile))
        if backend == "sqlite":
            result.update(fsync_latency_ms(db.data_dir))
    for producers in args.concurrency:
        async with temp_database(backend, args.database_url) as db:
            await upgrade(db.url)
            result.update(await _run_concurrent(db, traffic, producers))
    if backend == "sqlite":
        target = TARGET_SQLITE_MSGS_PER_S
        result["target_msgs_per_s"] = target
        result["target_met_at_producers"] = [
            n for n in [1, *args.concurrency]
            if result[f"concurrent_{n}_msgs_per_s" if n > 1 else "sequential_msgs_per_s"] >= target
        ]
    report.add(db, result)


async def run(args: argparse.Namespace) -> Report:
    n = args.n or DEFAULT_MESSAGES
    log(f"generating {n:,} messages")
    traffic = generate(n, seed=args.seed, reply_gap=max(64, 2 * max(args.concurrency)))
    report = Report("ingest", {
        "messages": n, "concurrency": args.concurrency, "profiled": bool(args.profile),
    })
    for backend in selected_backends(args.backend):
        await _one_backend(report, backend, args, traffic)
    return report


def _counts_list(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or min(counts) < 2:
        raise argparse.ArgumentTypeError("each count of producers must be 2 or more")
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=_counts_list, default=(8, 64, 256),
                        metavar="N,N,...",
                        help="concurrent producers, one phase each (default 8,64,256)")
    parser.add_argument("--duplicates", type=int, default=1000,
                        help="stored messages to ingest again (default 1000)")
    parser.add_argument("--profile", type=Path, default=None, metavar="FILE",
                        help="run the sequential phase under cProfile, write stats to FILE "
                             "and the top functions to stderr (figures are then inflated)")
