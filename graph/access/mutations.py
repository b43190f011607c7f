"""The access mutations: accounts and API tokens (administrators only)."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.access.accounts import Account
from graph.access.admins import require_admin
from graph.access.quotas import QuotaMode
from graph.access.tokens import ApiScope, ApiToken
from graph.core.context import Context
from graph.core.payloads import UserError, user_errors
from graph.core.permissions import REQUIRES
from graph.core.scalars import BigInt
from resolvers.access.viewer import ADMIN
from resolvers.common.ids import int_key


@strawberry.input
class CreateAccountInput:
    name: str
    members: list[str] | None = strawberry.field(default=None, description="User names or e-mail addresses; the first is the owner.")
    client_mutation_id: str | None = None


@strawberry.type
class CreateAccountPayload:
    account: Account | None
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


@strawberry.input
class SetStorageQuotaInput:
    account_id: strawberry.ID
    max_bytes: BigInt | None = strawberry.field(description="null: no limit")
    client_mutation_id: str | None = None


@strawberry.type
class SetStorageQuotaPayload:
    account: Account | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class SetQuotaInput:
    account_id: strawberry.ID
    max_standard_units: float | None = strawberry.field(
        description="Standard units the account's jobs may hold at once; null lifts the cap."
    )
    mode: QuotaMode | None = strawberry.field(default=None, description="Absent: the gateway's `quota_mode` setting.")
    client_mutation_id: str | None = None


@strawberry.type
class SetQuotaPayload:
    account: Account | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class AccessMutation:
    @strawberry.mutation(
        description="Limit the bytes of dataset and model copies an account keeps (replicas beyond it are refused). Admins only.",
        metadata={REQUIRES: ADMIN},
    )
    async def set_storage_quota(self, info: Info[Context, None], input: SetStorageQuotaInput) -> SetStorageQuotaPayload:
        require_admin(info)
        row, errors = await info.context.services.data.set_storage_quota(input.account_id, input.max_bytes)
        return SetStorageQuotaPayload(
            account=Account.from_row(row) if row else None, user_errors=user_errors(errors), client_mutation_id=input.client_mutation_id
        )

    @strawberry.mutation(
        description="Cap the standard units an account may use at once, and choose its mode. Admins only.", metadata={REQUIRES: ADMIN}
    )
    async def set_quota(self, info: Info[Context, None], input: SetQuotaInput) -> SetQuotaPayload:
        require_admin(info)
        mode = input.mode.name.lower() if input.mode is not None else None
        outcome = await info.context.services.quotas.set_quota(
            info.context.viewer, int_key(input.account_id, "Account"), input.max_standard_units, mode
        )
        return SetQuotaPayload(
            account=Account.from_row(outcome.account) if outcome.account else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(description="Create an account (tenant). Admins only.", metadata={REQUIRES: ADMIN})
    async def create_account(self, info: Info[Context, None], input: CreateAccountInput) -> CreateAccountPayload:
        require_admin(info)
        outcome = await info.context.services.access.create_account(input.name, input.members or [])
        return CreateAccountPayload(
            account=Account.from_row(outcome.account) if outcome.account else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Create an API token for an account; the payload's `secret` is shown once. Admins only.", metadata={REQUIRES: ADMIN}
    )
    async def create_api_token(self, info: Info[Context, None], input: CreateApiTokenInput) -> CreateApiTokenPayload:
        require_admin(info)
        outcome = await info.context.services.access.create_token(
            int_key(input.account_id, "Account"), input.name, [scope.value for scope in input.scopes], input.expires_in_days
        )
        return CreateApiTokenPayload(
            token=ApiToken.from_row(outcome.token) if outcome.token else None,
            secret=outcome.secret,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Revoke an API token; it stops working from the next request. Admins only.", metadata={REQUIRES: ADMIN}
    )
    async def revoke_api_token(self, info: Info[Context, None], input: RevokeApiTokenInput) -> RevokeApiTokenPayload:
        require_admin(info)
        outcome = await info.context.services.access.revoke_token(int_key(input.token_id, "ApiToken"))
        return RevokeApiTokenPayload(
            token=ApiToken.from_row(outcome.token) if outcome.token else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )
