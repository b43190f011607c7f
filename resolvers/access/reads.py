"""What the face reads of accounts: accounts by id, their tokens and members, the account list."""

from __future__ import annotations

from collections.abc import Sequence

from resolvers.access.directory import AccountDirectory
from resolvers.common.reading import Listing, Reader
from store import tenancy
from store import tokens as token_store
from store.auth_tables import AccountMemberRow, ApiTokenRow
from store.db import Database
from store.tables import AccountRow


class AccountReads(Reader):
    def __init__(self, db: Database, directory: AccountDirectory | None = None) -> None:
        super().__init__(db)
        self.directory = directory or AccountDirectory(db)

    async def by_ids(self, ids: Sequence[int], scope: int | None) -> dict[int, AccountRow]:
        """Accounts by id; a scoped viewer sees only its own."""
        visible = [account_id for account_id in ids if scope is None or account_id == scope]
        return await self.directory.by_ids(visible) if visible else {}

    async def tokens(self, account_ids: Sequence[int]) -> dict[int, list[ApiTokenRow]]:
        return await self.read(lambda session: token_store.tokens_by_accounts(session, account_ids))

    async def members(self, account_ids: Sequence[int]) -> dict[int, list[AccountMemberRow]]:
        return await self.read(lambda session: tenancy.members_by_accounts(session, account_ids))

    async def accounts(self, *, first: int, after: int | None) -> Listing[AccountRow]:
        return await self.listing(
            lambda session: tenancy.accounts_page(session, first=first, after=after),
            tenancy.count_accounts,
        )
