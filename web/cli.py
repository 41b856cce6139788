"""The ``guichet`` command line. Its forms are fixed: operators and scripts depend on them.

    guichet serve [--http HOST:PORT] [--smtp HOST:PORT] [--database URL] [--data-dir DIR] [--demo]
    guichet migrate
    guichet agent add EMAIL --name NAME --role agent|supervisor|admin
                      [--skills billing:3,tech:1] [--capacity chat=3,email=10] --password-stdin
    guichet token create EMAIL

Every command that touches the database takes ``--database`` and ``--data-dir``. Bad flags
or a bad database URL print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from inbox.actions.agents import create_agent
from inbox.actions.conversations import ActionError
from inbox.auth import MAX_PASSWORD_CHARS, PasswordPolicyError, create_api_token
from inbox.config import ConfigError, Settings, load_settings
from inbox.db import Store
from inbox.migrate import upgrade
from inbox.queries import agent_by_email
from inbox.types import Channel, Role
from routing.simulate import main as simulate_main

EXIT_USAGE = 2


class CliError(Exception):
    """A problem the user can fix; printed as one line."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"guichet: error: {message} (see guichet --help)\n")


def _db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", metavar="URL",
                        help="sqlite:///PATH or postgresql://USER@HOST/DB "
                             "(env GUICHET_DATABASE_URL; default: DATA_DIR/guichet.db)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="data directory (env GUICHET_DATA_DIR; default ./data)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="guichet", description="Guichet: the omnichannel support inbox.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = commands.add_parser("serve", help="run HTTP, SMTP and background workers")
    serve.add_argument("--http", metavar="HOST:PORT", help="web address (default 127.0.0.1:8000)")
    serve.add_argument("--smtp", metavar="HOST:PORT", help="SMTP address (default 127.0.0.1:2525)")
    serve.add_argument("--demo", action="store_true", help="seed demo data and print the login")
    _db_options(serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    _db_options(migrate)

    agent = commands.add_parser("agent", help="manage agents")
    agent_commands = agent.add_subparsers(dest="agent_command", required=True, parser_class=Parser)
    add = agent_commands.add_parser("add", help="create an agent; the password is read from stdin")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--skills", default="", metavar="SKILL:LEVEL,...")
    add.add_argument("--capacity", default="", metavar="CHANNEL=N,...")
    add.add_argument("--team", action="append", default=[], metavar="NAME")
    add.add_argument("--password-stdin", action="store_true", required=True,
                     help="read the password from standard input (never from argv)")
    _db_options(add)

    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, parser_class=Parser)
    create = token_commands.add_parser("create", help="print a new API token for an agent")
    create.add_argument("email")
    _db_options(create)

    # Listed here for `guichet --help`; main() hands its arguments to routing.simulate.
    simulate = commands.add_parser(
        "simulate", add_help=False,
        help="simulate a routing scenario day: the real router, a naive one and the bound",
    )
    simulate.add_argument("simulate_args", nargs=argparse.REMAINDER)
    return parser


def parse_pairs(raw: str, sep: str, flag: str) -> dict[str, int]:
    pairs: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, found, number = item.partition(sep)
        if not found or not name or not number.strip().isdigit():
            raise CliError(f"{flag}: expected NAME{sep}NUMBER, got {item!r}", EXIT_USAGE)
        pairs[name.strip()] = int(number)
    return pairs


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {
        "database_url": getattr(args, "database", None),
        "data_dir": getattr(args, "data_dir", None),
        "http": getattr(args, "http", None),
        "smtp": getattr(args, "smtp", None),
    }
    try:
        return load_settings(flags)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def migrate_or_fail(settings: Settings) -> tuple[str | None, str | None]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return await upgrade(settings.database_url)
    except (OperationalError, DBAPIError, OSError) as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise CliError(
            f"cannot open database {safe_url(settings.database_url)}: {reason}", EXIT_USAGE
        ) from None


async def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    before, after = await migrate_or_fail(settings)
    print(f"database at revision {after}" + ("" if before == after else f" (was {before})"))
    return 0


def read_password() -> str:
    password = sys.stdin.read(MAX_PASSWORD_CHARS + 2).rstrip("\r\n")
    if not password:
        raise CliError("--password-stdin: no password on standard input", EXIT_USAGE)
    return password


async def cmd_agent_add(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    skills = parse_pairs(args.skills, ":", "--skills")
    capacity = parse_pairs(args.capacity, "=", "--capacity")
    unknown = set(capacity) - {c.value for c in Channel}
    if unknown:
        raise CliError(f"--capacity: unknown channel {sorted(unknown)[0]!r}", EXIT_USAGE)
    password = read_password()
    await migrate_or_fail(settings)
    store = Store.from_settings(settings)
    try:
        async with store.write() as session:
            agent_id = await create_agent(
                session, email=args.email, name=args.name, role=Role(args.role),
                password=password, skills=skills, capacity=capacity, teams=tuple(args.team),
            )
    except (ActionError, PasswordPolicyError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    finally:
        await store.close()
    print(f"agent {agent_id} created: {args.email.strip().lower()} ({args.role})", file=sys.stderr)
    return 0


async def cmd_token_create(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    await migrate_or_fail(settings)
    store = Store.from_settings(settings)
    try:
        async with store.write() as session:
            agent = await agent_by_email(session, args.email)
            if agent is None:
                raise CliError(f"no agent with email {args.email!r}")
            token = await create_api_token(session, agent.id)
    finally:
        await store.close()
    print(token)
    return 0


async def cmd_serve(args: argparse.Namespace) -> int:
    from web.demo import DEMO_PASSWORD, seed_demo
    from web.server import build_services, uvicorn_server, workers

    settings = settings_from(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    await migrate_or_fail(settings)
    svc = build_services(settings)
    try:
        if args.demo:
            seeded = await seed_demo(svc.store, svc.ingestor)
            print(
                f"Demo {'data seeded' if seeded else 'data already present'}. Log in at "
                f"{settings.public_url}/login as agent@example.com, supervisor@example.com or "
                f"admin@example.com, password {DEMO_PASSWORD}",
                flush=True,
            )
        server = uvicorn_server(svc, workers(svc))
        await server.serve()
    finally:
        await svc.store.close()
    return 0


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    ("serve",): cmd_serve,
    ("migrate",): cmd_migrate,
    ("agent", "add"): cmd_agent_add,
    ("token", "create"): cmd_token_create,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:  # its own parser, so its --help is its own
        return simulate_main(argv[1:], prog="guichet simulate")
    args = build_parser().parse_args(argv)
    key = tuple(
        v for v in (args.command, getattr(args, "agent_command", None),
                    getattr(args, "token_command", None)) if v
    )
    try:
        return asyncio.run(COMMANDS[key](args))
    except CliError as exc:
        print(f"guichet: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
