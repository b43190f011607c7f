"""The access root fields: the caller's own account, and every account (administrators)."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.access.accounts import Account
from graph.access.admins import require_admin
from graph.core.context import Context
from graph.core.permissions import REQUIRES
from graph.core.relay import Connection, connection_from_page
from resolvers.access.viewer import ADMIN
from resolvers.common.ids import decode_cursor, page_size


@strawberry.type
class ViewerQuery:
    @strawberry.field(description="The account of the caller.")
    async def viewer(self, info: Info[Context, None]) -> Account:
        account = await info.context.loaders.account.load(info.context.viewer.account_id)
        assert account is not None
        return account


@strawberry.type
class AccountQuery:
    @strawberry.field(description="Every account, newest first. Admins only.", metadata={REQUIRES: ADMIN})
    async def accounts(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[Account]:
        require_admin(info)
        listing = await info.context.services.account_reads.accounts(first=page_size(first), after=decode_cursor(after))
        return connection_from_page(listing.page, Account.from_row, lambda row: row.id, listing.count)
