"""Accounts: the tenant boundary."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from graph.access.quotas import Quota
from graph.access.tokens import AccountMember, ApiToken
from graph.billing.balances import balance_of, budget_of, low_balance_threshold_of
from graph.billing.lists import list_balance_entries, list_bills
from graph.billing.types import BalanceEntry, Bill, Budget
from graph.core.context import Context
from graph.core.money import Money
from graph.core.relay import Connection, Node
from graph.core.scalars import BigInt
from graph.jobs.inputs import JobFilter
from graph.jobs.lists import list_jobs
from graph.jobs.types import Job
from resolvers.access.records import AccountRow
from resolvers.common.errors import BadRequest
from resolvers.common.ids import to_global_id


@strawberry.type(description="An account (tenant): it owns jobs, datasets and models.")
class Account(Node):
    id: strawberry.ID
    name: str
    created_at: datetime
    key: strawberry.Private[int]
    row: strawberry.Private[AccountRow]
    max_storage: strawberry.Private[int | None] = None

    @classmethod
    def from_row(cls, row: AccountRow) -> Account:
        return cls(
            id=strawberry.ID(to_global_id("Account", row.id)),
            name=row.name,
            created_at=row.created_at,
            key=row.id,
            max_storage=row.max_storage_bytes,
            row=row,
        )

    @strawberry.field(description="The account's jobs, newest first.")
    async def jobs(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: JobFilter | None = None,
    ) -> Connection[Job]:
        return await list_jobs(info, first=first, after=after, filter=filter, owner_key=self.key)

    @strawberry.field(description="Prepaid money left; each job's charge is taken from it when the job ends.")
    async def balance(self, info: Info[Context, None]) -> Money:
        return await balance_of(info, self.key, "balance")

    @strawberry.field(description="What unfinished jobs hold: each the most it can cost (price x requested duration).")
    async def holds(self, info: Info[Context, None]) -> Money:
        return await balance_of(info, self.key, "holds")

    @strawberry.field(description="Balance minus holds: what a new submission may hold.")
    async def available(self, info: Info[Context, None]) -> Money:
        return await balance_of(info, self.key, "available")

    @strawberry.field(description="The account's monthly budget, if it set one.")
    async def budget(self, info: Info[Context, None]) -> Budget | None:
        return await budget_of(info, self.key)

    @strawberry.field(description="Bytes of the verified (and in-flight) copies of the account's datasets and models.")
    async def stored_bytes(self, info: Info[Context, None]) -> BigInt:
        return BigInt(await info.context.loaders.stored_bytes.load(self.key))

    @strawberry.field(description="The storage quota: at most this many stored bytes (null: no limit).")
    def max_storage_bytes(self) -> BigInt | None:
        return BigInt(self.max_storage) if self.max_storage is not None else None

    @strawberry.field(description="Below this, new submissions are refused (INSUFFICIENT_BALANCE) and a LOW_BALANCE alert is told.")
    async def low_balance_threshold(self, info: Info[Context, None]) -> Money | None:
        return await low_balance_threshold_of(info, self.key)

    @strawberry.field(description="How the balance moved: top-ups, usage charges, adjustments; newest first.")
    async def balance_history(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[BalanceEntry]:
        return await list_balance_entries(info, account_key=self.key, first=first, after=after)

    @strawberry.field(description="The cap on the standard units the account's jobs hold at once; null when it has none.")
    def quota(self, info: Info[Context, None]) -> Quota | None:
        return Quota.of(self.row, info.context.services.quotas)

    @strawberry.field(description="The account's bills, newest first.")
    async def bills(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[Bill]:
        return await list_bills(info, first=first, after=after, owner_key=self.key)

    @strawberry.field(description="The account's API tokens, without their secrets (admins, and the account itself).")
    async def tokens(self, info: Info[Context, None]) -> list[ApiToken]:
        self._only_admins_or_self(info)
        return await info.context.loaders.tokens.load(self.key)

    @strawberry.field(description="The people who belong to the account (admins, and the account itself).")
    async def members(self, info: Info[Context, None]) -> list[AccountMember]:
        self._only_admins_or_self(info)
        return await info.context.loaders.members.load(self.key)

    def _only_admins_or_self(self, info: Info[Context, None]) -> None:
        viewer = info.context.viewer
        if not (viewer.is_admin or viewer.account_id == self.key):
            raise BadRequest("only admins and the account itself see this", "FORBIDDEN")
