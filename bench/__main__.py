"""``python -m bench [NAME] [options]``: run Guichet's benchmarks from the repository root.

Without NAME it lists the benchmarks. Each benchmark prints one JSON object on one line
of stdout; ``all`` runs every benchmark in turn and so prints one line per benchmark.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bench import ingest, listing, routing
from bench.common import DEFAULT_PG_URL, Report, emit


@dataclass(frozen=True)
class Benchmark:
    name: str
    summary: str
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, Report]]
    add_arguments: Callable[[argparse.ArgumentParser], None]


BENCHMARKS = (
    Benchmark("ingest", "messages/s through Ingestor.ingest: sequential, concurrent, "
              "duplicates (default n=10,000)", ingest.run, ingest.add_arguments),
    Benchmark("list", "GET /api/v1/conversations first-page latency p50/p95 "
              "(default n=100,000 on SQLite, 1,000,000 on PostgreSQL)",
              listing.run, listing.add_arguments),
    Benchmark("routing", "routing core at scenario L scale: decision latency p50/p99, "
              "rule change re-evaluating 10,000 waiting", routing.run, routing.add_arguments),
)


def _subcommand(names: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                summary: str, chosen: tuple[Benchmark, ...]) -> None:
    sub = names.add_parser(name, help=summary, description=summary)
    sub.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    sub.add_argument("--n", type=int, default=None,
                     help="size: messages to ingest, or conversations to list from")
    sub.add_argument("--database-url", default=DEFAULT_PG_URL,
                     help="PostgreSQL server and database to create a temporary schema in "
                          f"(default {DEFAULT_PG_URL})")
    sub.add_argument("--seed", type=int, default=42, help="seed of the generated data")
    for bench in chosen:
        bench.add_arguments(sub)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    names = top.add_subparsers(dest="name", metavar="NAME")
    for bench in BENCHMARKS:
        _subcommand(names, bench.name, bench.summary, (bench,))
    _subcommand(names, "all", "every benchmark in turn, one JSON line each", BENCHMARKS)
    return top


def list_benchmarks() -> None:
    print("benchmarks (python -m bench NAME --help for options):")
    for bench in BENCHMARKS:
        print(f"  {bench.name:8} {bench.summary}")
    print(f"  {'all':8} every benchmark in turn, one JSON line each")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.name is None:
        list_benchmarks()
        return 0
    chosen = BENCHMARKS if args.name == "all" else [b for b in BENCHMARKS if b.name == args.name]
    for bench in chosen:
        emit(asyncio.run(bench.run(args)).to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
