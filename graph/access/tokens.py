"""Accounts and API tokens in the graph: the admin mutations and the types they return."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.permissions import REQUIRES
from graph.core.relay import Connection, connection_from_page
from graph.jobs.mutations import UserError
from resolvers.access.viewer import ADMIN, READ, SUBMIT
from resolvers.common.errors import BadRequest, UserErrorData
from resolvers.common.ids import decode_cursor, int_key, page_size, to_global_id
from store import tenancy
from store.auth_tables import AccountMemberRow, ApiTokenRow
from store.types import utcnow

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
        return self.row.revoked_at is None and (self.row.expires_at is None or self.row.expires_at > utcnow())

    @strawberry.field
    async def account(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")] | None:
        from graph.access.accounts import Account

        found = await info.context.loaders.account.load(self.row.account_id)
        return Account.from_row(found) if found else None


@strawberry.type(description="A person (a user name or e-mail address) who belongs to an account.")
class AccountMember:
    name: str
    role: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: AccountMemberRow) -> AccountMember:
        return cls(name=row.name, role=row.role, created_at=row.created_at)


@strawberry.input
class CreateAccountInput:
    name: str
    members: list[str] | None = strawberry.field(default=None, description="User names or e-mail addresses; the first is the owner.")
    client_mutation_id: str | None = None


@strawberry.type
class CreateAccountPayload:
    account: Annotated[Account, strawberry.lazy("graph.access.accounts")] | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class CreateApiTokenInput:
    account_id: strawberry.ID
    name: str
    scopes: list[ApiScope]
    expires_in_days: int | None = strawberry.field(default=None, description="Absent: the token does not expire.")
    client_mutation_id: str | None = None


@strawberry.type
class CreateApiTokenPayload:
    token: ApiToken | None
    secret: str | None = strawberry.field(description="The token itself. Shown this once: store it now.")
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class RevokeApiTokenInput:
    token_id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.type
class RevokeApiTokenPayload:
    token: ApiToken | None
    user_errors: list[UserError]
    client_mutation_id: str | None


def _errors(errors: list[UserErrorData]) -> list[UserError]:
    return [UserError.from_data(error) for error in errors]


def _require_admin(info: Info[Context, None]) -> None:
    # the gate refuses these fields already; this keeps them safe wherever they are called from
    if not info.context.viewer.is_admin:
        raise BadRequest("this needs the admin scope", "FORBIDDEN")


@strawberry.type
class AccessMutation:
    @strawberry.mutation(description="Create an account (tenant). Admins only.", metadata={REQUIRES: ADMIN})
    async def create_account(self, info: Info[Context, None], input: CreateAccountInput) -> CreateAccountPayload:
        from graph.access.accounts import Account

        _require_admin(info)
        outcome = await info.context.runtime.access.create_account(input.name, input.members or [])
        return CreateAccountPayload(
            account=Account.from_row(outcome.account) if outcome.account else None,
            user_errors=_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Create an API token for an account; the payload's `secret` is shown once. Admins only.", metadata={REQUIRES: ADMIN}
    )
    async def create_api_token(self, info: Info[Context, None], input: CreateApiTokenInput) -> CreateApiTokenPayload:
        _require_admin(info)
        outcome = await info.context.runtime.access.create_token(
            int_key(input.account_id, "Account"), input.name, [scope.value for scope in input.scopes], input.expires_in_days
        )
        return CreateApiTokenPayload(
            token=ApiToken.from_row(outcome.token) if outcome.token else None,
            secret=outcome.secret,
            user_errors=_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Revoke an API token; it stops working from the next request. Admins only.", metadata={REQUIRES: ADMIN}
    )
    async def revoke_api_token(self, info: Info[Context, None], input: RevokeApiTokenInput) -> RevokeApiTokenPayload:
        _require_admin(info)
        outcome = await info.context.runtime.access.revoke_token(int_key(input.token_id, "ApiToken"))
        return RevokeApiTokenPayload(
            token=ApiToken.from_row(outcome.token) if outcome.token else None,
            user_errors=_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )


@strawberry.type
class AccessQuery:
    @strawberry.field(description="Every account, newest first. Admins only.", metadata={REQUIRES: ADMIN})
    async def accounts(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[Account, strawberry.lazy("graph.access.accounts")]]:
        from graph.access.accounts import Account

        _require_admin(info)
        size, cursor, db = page_size(first), decode_cursor(after), info.context.runtime.db
        async with db.read() as session:
            page = await tenancy.accounts_page(session, first=size, after=cursor)

        async def count() -> int:
            async with db.read() as session:
                return await tenancy.count_accounts(session)

        return connection_from_page(page, Account.from_row, lambda row: row.id, count)
