"""API tokens and account members in the graph (never a token's secret, but once)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from resolvers.access.records import AccountMemberRow, ApiTokenRow
from resolvers.access.viewer import ADMIN, READ, SUBMIT
from resolvers.common.ids import to_global_id

if TYPE_CHECKING:
    from graph.access.accounts import Account


@strawberry.enum(
    description="What a token may do: read (queries, subscriptions), submit (mutations on the account's own jobs and data), admin (every account, tokens, the audit log)."
)
class ApiScope(enum.Enum):
    READ = READ
    SUBMIT = SUBMIT
    ADMIN = ADMIN


@strawberry.type(description="An API token. Its secret is shown once, when it is created, and never again.")
class ApiToken:
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(description="The first characters of the secret, to tell tokens apart.")
    scopes: list[ApiScope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    row: strawberry.Private[ApiTokenRow]

    @classmethod
    def from_row(cls, row: ApiTokenRow) -> ApiToken:
        return cls(
            id=strawberry.ID(to_global_id("ApiToken", row.id)),
            name=row.name,
            prefix=row.prefix,
            scopes=[ApiScope(scope) for scope in row.scopes.split(",") if scope],
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            row=row,
        )

    @strawberry.field(description="Neither revoked nor expired.")
    def active(self) -> bool:
        return self.row.revoked_at is None and (self.row.expires_at is None or self.row.expires_at > datetime.now(UTC))

    @strawberry.field
    async def account(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")] | None:
        return await info.context.loaders.account.load(self.row.account_id)


@strawberry.type(description="A person (a user name or e-mail address) who belongs to an account.")
class AccountMember:
    name: str
    role: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: AccountMemberRow) -> AccountMember:
        return cls(name=row.name, role=row.role, created_at=row.created_at)
