"""The ``aicn`` command: serve, migrate, export-schema, set-quota, bills, accounts and tokens for operators;
job, centers, offers and bill for users (aicn/client, a GraphQL client of any gateway)."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path

SCHEMA_FILE = Path("schema.graphql")
FEDERATION_SCHEMA_FILE = Path("schema.federation.graphql")


def export_schema_text(federation: bool = False) -> str:
    if federation:
        from graph.federation.schema import federated_schema

        return federated_schema.sdl
    from graph.schema import schema

    return schema.as_str().rstrip() + "\n"


#: how long a thread that runs Python holds the GIL while another thread waits for it (default 5 ms)
SWITCH_INTERVAL_SECONDS = 0.001


def tune_gc() -> None:
    """Fewer, larger young-generation collections: a request makes many short-lived objects,
    and collecting every 700 allocations showed up as tail latency (bench/fanout.py p95)."""
    import gc

    gc.set_threshold(50_000, 20, 100)


def tune_threads() -> None:
    """Hand the GIL over sooner: the database's worker thread (aiosqlite) and file reads in worker
    threads each need the GIL back after every statement or read, and with the event loop busy
    (thousands of subscribers' frames) the default 5 ms switch interval made each of those waits up
    to 5 ms, several per transaction (bench/subscriptions.py a: print to delivery)."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from aicn.runtime import Runtime
    from aicn.serving import server_config
    from aicn.settings import Settings
    from aicn.telemetry import TracingUnavailable, configure_tracing
    from connectors.errors import ConnectorError
    from graph.http import logs
    from graph.http.app import create_app

    settings = Settings()
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    logs.configure(settings.log_level, settings.log_format)
    try:
        configure_tracing(settings.telemetry)
    except TracingUnavailable as error:
        print(f"aicn: configuration: {error}", file=sys.stderr)
        return 2
    # bind before anything starts: a busy port must fail before a first start creates (and
    # prints) an admin token that would then be lost with the failed start
    try:
        listener = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        print(f"aicn: cannot listen on {host}:{port}: {reason} (set `port`, or --port)", file=sys.stderr)
        return 2
    port = listener.getsockname()[1]
    runtime = Runtime(settings)
    try:
        runtime.preflight()
    except ConnectorError as error:
        print(f"aicn: configuration: {error}", file=sys.stderr)
        return 2
    app = create_app(runtime)
    tune_gc()
    tune_threads()
    print(f"aicn: GraphiQL at http://{host}:{port}/graphql", flush=True)
    server = uvicorn.Server(
        server_config(
            app,
            log_level=settings.log_level,
            # JSON: uvicorn's own lines go through the root handler too, not its text formatters
            log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
        )
    )
    server.run(sockets=[listener])
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from aicn.settings import Settings
    from store.db import Database

    settings = Settings()

    async def run() -> None:
        db = Database(settings.resolved_database_url, schema=settings.database_schema)
        await db.migrate()
        await db.dispose()

    asyncio.run(run())
    print("aicn: database is at the newest migration")
    return 0


def _export_schema(args: argparse.Namespace) -> int:
    text = export_schema_text(args.federation)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"aicn: wrote {args.output}")
    return 0


def _set_quota(args: argparse.Namespace) -> int:
    from aicn.settings import Settings
    from resolvers.access.directory import AccountDirectory
    from resolvers.access.quotas import QuotaService
    from store.bus import RedisBus
    from store.db import Database

    settings = Settings()
    try:
        limit = None if args.units.lower() == "none" else float(args.units)
    except ValueError:
        limit = float("nan")

    async def run() -> list[str]:
        db = Database(settings.resolved_database_url, schema=settings.database_schema)
        # with a Redis bus, every gateway drops the account from its cache before this answers
        bus = RedisBus(settings.bus_url, settings.bus_prefix) if settings.bus_url else None
        try:
            await db.migrate()
            if bus is not None:
                await bus.start()
            quotas = QuotaService(db, settings.quota_mode, AccountDirectory(db, bus))
            outcome = await quotas.set_quota_by_name(args.account, limit, args.mode)
        finally:
            if bus is not None:
                await bus.close()
            await db.dispose()
        return [f"{error.code}: {error.message}" for error in outcome.errors]

    errors = asyncio.run(run())
    if errors:
        for line in errors:
            print(f"aicn: {line}", file=sys.stderr)
        return 1 if any(line.startswith("ACCOUNT_NOT_FOUND") for line in errors) else 2
    mode = args.mode or f"the default ({settings.quota_mode})"
    print(f"aicn: {args.account} may use {'any number of' if limit is None else limit} standard units at once; mode {mode}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aicn", description="The aicn GraphQL gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the gateway (GraphiQL at /graphql)")
    serve.add_argument("--host", help="address to listen on (default: the `host` setting, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: the `port` setting, 8000)")
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=_migrate)
    export = commands.add_parser("export-schema", help="write the schema SDL")
    export.add_argument("--federation", action="store_true", help=f"the federation subgraph SDL (write it to {FEDERATION_SCHEMA_FILE})")
    export.add_argument("--output", "-o", default=str(SCHEMA_FILE), help="file to write, or - for stdout")
    export.set_defaults(run=_export_schema)
    quota = commands.add_parser("set-quota", help="cap the standard units an account may use at once")
    quota.add_argument("account", help="the account's name")
    quota.add_argument("units", help="a number of standard units, or none to lift the cap")
    quota.add_argument(
        "--mode", choices=["queue", "refuse"], default=None, help="a job over the quota waits or is refused (default: quota_mode)"
    )
    quota.set_defaults(run=_set_quota)
    from aicn.bills_cli import add_bills_commands

    add_bills_commands(commands)
    from aicn.access_cli import register as register_access_commands

    register_access_commands(commands)
    from aicn.operations_cli import register as register_operation_commands

    register_operation_commands(commands)
    for name, summary in USER_COMMANDS.items():  # listed here, run by main() through aicn/client
        commands.add_parser(name, help=summary, add_help=False)
    return parser


#: the commands for users (aicn/client): a GraphQL client of any gateway, built with typer
USER_COMMANDS = {
    "job": "submit, list, show, watch, follow the logs of and cancel your jobs on a gateway (aicn job --help)",
    "centers": "the network's compute centers, their status, free devices and prices",
    "offers": "every center's quote for a job of a given size",
    "bill": "your bill for a month (aicn bill show --month YYYY-MM)",
}


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments and arguments[0] in USER_COMMANDS:
        from aicn.client.app import run_user_command

        return run_user_command(arguments)
    args = build_parser().parse_args(arguments)
    from aicn.config_errors import CONFIG_ERRORS, describe

    try:
        return int(args.run(args))
    except CONFIG_ERRORS as error:
        for line in describe(error):
            print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
