"""Lists of bills (the caller's, an administrator's: everyone's, or one account's) and of an account's balance entries, newest first."""

from __future__ import annotations

from strawberry.types import Info

from graph.billing.types import BalanceEntry, Bill
from graph.core.context import Context
from graph.core.relay import Connection, connection_from_page
from resolvers.billing.records import BalanceEntryRow, BillRow
from resolvers.common.ids import decode_cursor, page_size


async def list_bills(info: Info[Context, None], *, first: int | None, after: str | None, owner_key: int | None = None) -> Connection[Bill]:
    scope = owner_key if owner_key is not None else info.context.viewer.scope
    listing = await info.context.services.billing_reads.bills(scope, first=page_size(first), after=decode_cursor(after))
    loader = info.context.loaders.billing.bill

    def node(row: BillRow) -> Bill:
        bill = Bill.from_row(row)
        loader.prime(row.id, bill)
        return bill

    return connection_from_page(listing.page, node, lambda row: row.id, listing.count)


async def list_balance_entries(
    info: Info[Context, None], *, account_key: int, first: int | None, after: str | None
) -> Connection[BalanceEntry]:
    reads = info.context.services.billing_reads
    listing = await reads.balance_entries(account_key, first=page_size(first), after=decode_cursor(after))
    currency = (await info.context.loaders.billing.balance.load(account_key)).currency

    def node(row: BalanceEntryRow) -> BalanceEntry:
        return BalanceEntry.from_row(row, currency)

    return connection_from_page(listing.page, node, lambda row: row.id, listing.count)
