"""The billing mutations: finalize a bill, adjust one, set a budget."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.billing.types import Bill, BillLine
from graph.core.context import Context
from graph.core.payloads import UserError, user_errors

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
    client_mutation_id: str | None = None


@strawberry.type
class SetBudgetPayload:
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
        outcome = await info.context.services.billing.set_budget(info.context.viewer, input.amount, input.account_id)
        account = await info.context.loaders.account.load(outcome.account_id) if outcome.account_id is not None else None
        return SetBudgetPayload(account=account, user_errors=user_errors(outcome.errors), client_mutation_id=input.client_mutation_id)
