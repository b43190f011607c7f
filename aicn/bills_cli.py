"""``aicn bills ...``: the operator's billing commands, run straight against the database."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from resolvers.billing.service import BillingService

T = TypeVar("T")


def _with_billing(work: Callable[[BillingService], Awaitable[T]]) -> T:
    from aicn.settings import Settings
    from connectors.catalog import Catalog
    from resolvers.billing.bills import BillBook, BillingPolicy
    from resolvers.billing.periods import Calendar
    from resolvers.billing.service import BillingService
    from store.bus import InMemoryBus
    from store.db import Database

    settings = Settings()

    async def run() -> T:
        db = Database(settings.resolved_database_url, schema=settings.database_schema)
        try:
            await db.migrate()
            policy = BillingPolicy(settings.currency, settings.default_account_balance, Calendar(settings.billing_timezone))
            # budget alerts crossed from here are recorded; no live subscriber hears this bus
            billing = BillingService(db, InMemoryBus(), BillBook(policy), Catalog.with_overrides(settings.catalog))
            return await work(billing)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _finalize(args: argparse.Namespace) -> int:
    try:
        bill = _with_billing(lambda billing: billing.finalize_period(args.account, args.period))
    except (LookupError, ValueError) as error:
        print(f"aicn: {error}")
        return 2
    print(f"aicn: bill {bill.period} of {args.account} is {bill.status}: {bill.line_count} line(s), total {bill.total} {bill.currency}")
    return 0


def _adjust(args: argparse.Namespace) -> int:
    try:
        outcome = _with_billing(lambda billing: billing.adjust_account(args.account, args.amount, args.description))
    except LookupError as error:
        print(f"aicn: {error}")
        return 2
    if outcome.errors or outcome.bill is None:
        print("aicn: " + "; ".join(error.message for error in outcome.errors))
        return 2
    bill = outcome.bill
    print(f"aicn: adjustment of {args.amount} on bill {bill.period} of {args.account}; total now {bill.total} {bill.currency}")
    return 0


def add_bills_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bills = commands.add_parser("bills", help="finalize and adjust bills")
    actions = bills.add_subparsers(dest="bills_command", required=True)
    finalize = actions.add_parser("finalize", help="freeze an account's bill for a month")
    finalize.add_argument("--account", required=True, help="account name")
    finalize.add_argument("--period", required=True, help="YYYY-MM, in the billing time zone")
    finalize.set_defaults(run=_finalize)
    adjust = actions.add_parser("adjust", help="add an adjustment line to the account's current OPEN bill")
    adjust.add_argument("--account", required=True, help="account name")
    adjust.add_argument("--amount", required=True, help="exact decimal; negative for a credit")
    adjust.add_argument("--description", required=True, help="what the line says on the bill (and in the FOCUS export)")
    adjust.set_defaults(run=_adjust)
