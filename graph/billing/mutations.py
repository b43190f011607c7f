"""The billing mutations: finalize a bill, adjust one, set a budget."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.billing.types import Bill, BillLine
from graph.core.context import Context
from graph.core.payloads import UserError, user_errors
from graph.core.permissions import REQUIRES
from resolvers.access.viewer import ADMIN
from resolvers.billing.service import BudgetOutcome

if TYPE_CHECKING:
    from graph.access.accounts import Account


@strawberry.input
class FinalizeBillInput:
    bill_id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.type
class FinalizeBillPayload:
    bill: Bill | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class AddBillAdjustmentInput:
    bill_id: strawberry.ID = strawberry.field(description="The bill being corrected.")
    amount: Decimal = strawberry.field(description="Positive: a charge; negative: a credit. At most 6 decimal places.")
    description: str
    client_mutation_id: str | None = None


@strawberry.type
class AddBillAdjustmentPayload:
    bill: Bill | None = strawberry.field(description="The bill the line went on: the corrected bill if OPEN, else the next OPEN one.")
    line: BillLine | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class SetBudgetInput:
    amount: Decimal | None = strawberry.field(description="The monthly budget; null removes it.")
    account_id: strawberry.ID | None = strawberry.field(
        default=None, description="Absent: the caller's account; others need an administrator."
    )
    hard: bool = strawberry.field(default=False, description="Refuse submissions whose hold would cross the budget (BUDGET_EXCEEDED).")
    client_mutation_id: str | None = None


@strawberry.type
class SetBudgetPayload:
    account: Annotated[Account, strawberry.lazy("graph.access.accounts")] | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class TopUpInput:
    account_id: strawberry.ID
    amount: Decimal = strawberry.field(description="Positive, at most 6 decimal places.")
    reference: str = strawberry.field(description="Your reference of the payment: the same reference twice credits once.")
    client_mutation_id: str | None = None


@strawberry.type
class TopUpPayload:
    account: Annotated[Account, strawberry.lazy("graph.access.accounts")] | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class SetLowBalanceThresholdInput:
    account_id: strawberry.ID
    amount: Decimal | None = strawberry.field(description="At least 0; null removes the threshold.")
    client_mutation_id: str | None = None


@strawberry.type
class SetLowBalanceThresholdPayload:
    account: Annotated[Account, strawberry.lazy("graph.access.accounts")] | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class BillingMutation:
    @strawberry.mutation(description="Freeze a bill (administrators). Later corrections go on the next OPEN bill.")
    async def finalize_bill(self, info: Info[Context, None], input: FinalizeBillInput) -> FinalizeBillPayload:
        outcome = await info.context.services.billing.finalize(info.context.viewer, input.bill_id)
        return FinalizeBillPayload(
            bill=Bill.from_row(outcome.bill) if outcome.bill else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(description="Correct a bill with an adjustment line (administrators); a finalized bill is never edited.")
    async def add_bill_adjustment(self, info: Info[Context, None], input: AddBillAdjustmentInput) -> AddBillAdjustmentPayload:
        outcome = await info.context.services.billing.adjust(info.context.viewer, input.bill_id, input.amount, input.description)
        currency = outcome.bill.currency if outcome.bill else info.context.services.billing.currency
        return AddBillAdjustmentPayload(
            bill=Bill.from_row(outcome.bill) if outcome.bill else None,
            line=BillLine.from_row(outcome.line, currency) if outcome.line else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(description="Set or remove an account's monthly budget; `budgetAlerts` tells when 50, 80 and 100 % are crossed.")
    async def set_budget(self, info: Info[Context, None], input: SetBudgetInput) -> SetBudgetPayload:
        outcome = await info.context.services.billing.set_budget(info.context.viewer, input.amount, input.account_id, hard=input.hard)
        account = await _account(info, outcome)
        return SetBudgetPayload(account=account, user_errors=user_errors(outcome.errors), client_mutation_id=input.client_mutation_id)

    @strawberry.mutation(
        description="Credit an account's balance (administrators); the same reference twice credits once.", metadata={REQUIRES: ADMIN}
    )
    async def top_up(self, info: Info[Context, None], input: TopUpInput) -> TopUpPayload:
        outcome = await info.context.services.billing.top_up(info.context.viewer, input.account_id, input.amount, input.reference)
        account = await _account(info, outcome)
        return TopUpPayload(account=account, user_errors=user_errors(outcome.errors), client_mutation_id=input.client_mutation_id)

    @strawberry.mutation(
        description="Refuse an account's new submissions while they would leave less than this available (administrators).",
        metadata={REQUIRES: ADMIN},
    )
    async def set_low_balance_threshold(
        self, info: Info[Context, None], input: SetLowBalanceThresholdInput
    ) -> SetLowBalanceThresholdPayload:
        outcome = await info.context.services.billing.set_low_balance_threshold(info.context.viewer, input.account_id, input.amount)
        account = await _account(info, outcome)
        return SetLowBalanceThresholdPayload(
            account=account, user_errors=user_errors(outcome.errors), client_mutation_id=input.client_mutation_id
        )


async def _account(info: Info[Context, None], outcome: BudgetOutcome) -> Account | None:
    if outcome.account_id is None:
        return None
    info.context.loaders.billing.balance.clear_all()  # the mutation changed it (several may run in one document)
    return await info.context.loaders.account.load(outcome.account_id)
