"""`aicn accounts ...` and `aicn tokens ...`: tenant and token administration from the shell.

These talk to the database directly (after migrating it), so they work before the first
`aicn serve` and when every token is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aicn.settings import Settings
from resolvers.access.service import AccessService, parse_scopes
from resolvers.common.errors import UserErrorData
from resolvers.common.ids import int_key, parse_key, to_global_id
from store import tenancy
from store import tokens as token_store
from store.bus import RedisBus
from store.db import Database


def register(commands: Any) -> None:
    accounts = commands.add_parser("accounts", help="create and list accounts (tenants)")
    account_commands = accounts.add_subparsers(dest="accounts_command", required=True)
    create = account_commands.add_parser("create", help="create an account")
    create.add_argument("name", help="the new account's name")
    create.add_argument("--member", action="append", default=[], help="a user name or e-mail; repeat; the first is the owner")
    create.set_defaults(run=_run(_create_account))
    listing = account_commands.add_parser("list", help="list accounts")
    listing.set_defaults(run=_run(_list_accounts))

    tokens = commands.add_parser("tokens", help="create, list and revoke API tokens")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create_token = token_commands.add_parser("create", help="create a token; its secret is printed once")
    create_token.add_argument("--account", required=True, help="the account's name")
    create_token.add_argument("--scopes", default="read,submit", help="comma-separated: read, submit, admin (default read,submit)")
    create_token.add_argument("--expires-in-days", type=int, default=None, help="days until the token expires (default: never)")
    create_token.add_argument("--name", default="cli", help="a label to tell the token apart")
    create_token.set_defaults(run=_run(_create_token))
    revoke = token_commands.add_parser("revoke", help="revoke a token (by its number or its id)")
    revoke.add_argument("id", help="the token's number (from tokens list) or its ApiToken id")
    revoke.set_defaults(run=_run(_revoke_token))
    list_tokens = token_commands.add_parser("list", help="list tokens (never their secrets)")
    list_tokens.add_argument("--account", default=None, help="only this account's tokens (default: all)")
    list_tokens.set_defaults(run=_run(_list_tokens))


def _run(command: Callable[[AccessService, argparse.Namespace], Awaitable[int]]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            settings = Settings()
            db = Database(settings.resolved_database_url, schema=settings.database_schema)
            # with a Redis bus, a revocation from the shell reaches every gateway's token cache at once
            bus = RedisBus(settings.bus_url, settings.bus_prefix) if settings.bus_url else None
            try:
                await db.migrate()
                if bus is not None:
                    await bus.start()
                return await command(AccessService(db, bus), args)
            finally:
                if bus is not None:
                    await bus.close()
                await db.dispose()

        return asyncio.run(main())

    return run


def _fail(errors: list[UserErrorData]) -> int:
    for error in errors:
        print(f"aicn: {error.code}: {error.message}", file=sys.stderr)
    return 1


async def _create_account(access: AccessService, args: argparse.Namespace) -> int:
    outcome = await access.create_account(args.name, args.member)
    if outcome.account is None:
        return _fail(outcome.errors)
    print(f"aicn: created account {outcome.account.name} ({to_global_id('Account', outcome.account.id)})")
    return 0


async def _list_accounts(access: AccessService, _args: argparse.Namespace) -> int:
    async with access.db.read() as session:
        page = await tenancy.accounts_page(session, first=1000, after=None)
    for account in reversed(page.rows):
        print(f"{account.id}\t{to_global_id('Account', account.id)}\t{account.name}")
    return 0


async def _create_token(access: AccessService, args: argparse.Namespace) -> int:
    account = await access.account_by_name(args.account)
    if account is None:
        return _fail([UserErrorData(f"no account named {args.account}", "ACCOUNT_NOT_FOUND")])
    outcome = await access.create_token(account.id, args.name, parse_scopes(args.scopes), args.expires_in_days)
    if outcome.token is None:
        return _fail(outcome.errors)
    token = outcome.token
    expiry = f", expires {token.expires_at:%Y-%m-%d}" if token.expires_at else ""
    print(
        f"aicn: token {token.id} ({to_global_id('ApiToken', token.id)}) for {account.name}, scopes {token.scopes}{expiry}.", file=sys.stderr
    )
    print("aicn: shown this once:", file=sys.stderr)
    print(outcome.secret)
    return 0


async def _revoke_token(access: AccessService, args: argparse.Namespace) -> int:
    key = parse_key(args.id)
    if key is None:
        key = int_key(args.id, "ApiToken")
    outcome = await access.revoke_token(key)
    if outcome.token is None:
        return _fail(outcome.errors)
    print(f"aicn: token {outcome.token.id} ({outcome.token.prefix}…) is revoked")
    return 0


async def _list_tokens(access: AccessService, args: argparse.Namespace) -> int:
    async with access.db.read() as session:
        if args.account is not None:
            account = await tenancy.account_by_name(session, args.account)
            if account is None:
                return _fail([UserErrorData(f"no account named {args.account}", "ACCOUNT_NOT_FOUND")])
            ids = [account.id]
        else:
            ids = [row.id for row in (await tenancy.accounts_page(session, first=1000, after=None)).rows]
        grouped = await token_store.tokens_by_accounts(session, ids)
    for rows in grouped.values():
        for token in rows:
            state = "revoked" if token.revoked_at else "active"
            print(f"{token.id}\t{token.prefix}…\taccount {token.account_id}\t{token.scopes}\t{state}\t{token.name}")
    return 0
