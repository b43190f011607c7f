"""Accounts: the tenant boundary."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection, Node
from resolvers.common.errors import BadRequest
from resolvers.common.ids import to_global_id
from store.tables import AccountRow

if TYPE_CHECKING:
    from graph.access.tokens import AccountMember, ApiToken
    from graph.billing.types import Bill, Budget
    from graph.centers.types import Money
    from graph.jobs.types import Job, JobFilter


@strawberry.type(description="An account (tenant): it owns jobs, datasets and models.")
class Account(Node):
    id: strawberry.ID
    name: str
    created_at: datetime
    key: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: AccountRow) -> Account:
        return cls(id=strawberry.ID(to_global_id("Account", row.id)), name=row.name, created_at=row.created_at, key=row.id)

    @strawberry.field(description="The account's jobs, newest first.")
    async def jobs(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: Annotated[JobFilter, strawberry.lazy("graph.jobs.types")] | None = None,
    ) -> Connection[Annotated[Job, strawberry.lazy("graph.jobs.types")]]:
        from graph.jobs.types import list_jobs

        return await list_jobs(info, first=first, after=after, filter=filter, owner_key=self.key)

    @strawberry.field(description="Prepaid money left; each job's charge is taken from it when the job ends.")
    async def balance(self, info: Info[Context, None]) -> Annotated[Money, strawberry.lazy("graph.centers.types")]:
        from graph.billing.types import balance_of

        return await balance_of(info, self.key, "balance")

    @strawberry.field(description="What unfinished jobs hold: each the most it can cost (price x requested duration).")
    async def holds(self, info: Info[Context, None]) -> Annotated[Money, strawberry.lazy("graph.centers.types")]:
        from graph.billing.types import balance_of

        return await balance_of(info, self.key, "holds")

    @strawberry.field(description="Balance minus holds: what a new submission may hold.")
    async def available(self, info: Info[Context, None]) -> Annotated[Money, strawberry.lazy("graph.centers.types")]:
        from graph.billing.types import balance_of

        return await balance_of(info, self.key, "available")

    @strawberry.field(description="The account's monthly budget, if it set one.")
    async def budget(self, info: Info[Context, None]) -> Annotated[Budget, strawberry.lazy("graph.billing.types")] | None:
        from graph.billing.types import budget_of

        return await budget_of(info, self.key)

    @strawberry.field(description="The account's bills, newest first.")
    async def bills(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[Bill, strawberry.lazy("graph.billing.types")]]:
        from graph.billing.types import list_bills

        return await list_bills(info, first=first, after=after, owner_key=self.key)

    @strawberry.field(description="The account's API tokens, without their secrets (admins, and the account itself).")
    async def tokens(self, info: Info[Context, None]) -> list[Annotated[ApiToken, strawberry.lazy("graph.access.tokens")]]:
        from graph.access.tokens import ApiToken

        self._only_admins_or_self(info)
        return [ApiToken.from_row(row) for row in await info.context.loaders.tokens.load(self.key)]

    @strawberry.field(description="The people who belong to the account (admins, and the account itself).")
    async def members(self, info: Info[Context, None]) -> list[Annotated[AccountMember, strawberry.lazy("graph.access.tokens")]]:
        from graph.access.tokens import AccountMember

        self._only_admins_or_self(info)
        return [AccountMember.from_row(row) for row in await info.context.loaders.members.load(self.key)]

    def _only_admins_or_self(self, info: Info[Context, None]) -> None:
        viewer = info.context.viewer
        if not (viewer.is_admin or viewer.account_id == self.key):
            raise BadRequest("only admins and the account itself see this", "FORBIDDEN")
