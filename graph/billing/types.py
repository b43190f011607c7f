"""Metering and billing types: UsageRecord, Bill, BillLine, balances and budgets."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.centers.types import ComputeCenter, ComputeUnit
from graph.core.context import Context
from graph.core.money import QUANTITY_SCALE, Money
from graph.core.relay import Connection, Node, connection_from_page
from graph.core.scalars import BigInt
from resolvers.billing.budgets import AlertRecord
from resolvers.billing.records import BalanceEntryRow, BillLineRow, BillRow, UsageRecordRow
from resolvers.common.ids import decode_cursor, page_size, to_global_id

if TYPE_CHECKING:
    from graph.access.accounts import Account
    from graph.jobs.types import Job
    from graph.services.types import InferenceService


def csv_path(bill_key: int) -> str:
    return f"/bills/{to_global_id('Bill', bill_key)}/focus.csv"


@strawberry.enum
class BillStatus(enum.Enum):
    OPEN = "OPEN"
    FINALIZED = "FINALIZED"


@strawberry.enum
class BillLineKind(enum.Enum):
    USAGE = "USAGE"
    ADJUSTMENT = "ADJUSTMENT"
    STORAGE = "STORAGE"
    TOKENS = strawberry.enum_value("TOKENS", description="Tokens an OPENAI service's servers reported, at its price per million.")


@strawberry.enum(description="What moved an account's balance.")
class BalanceEntryKind(enum.Enum):
    TOP_UP = "TOP_UP"
    USAGE = "USAGE"
    ADJUSTMENT = "ADJUSTMENT"
    STORAGE = "STORAGE"
    TOKENS = "TOKENS"


@strawberry.enum
class BudgetAlertKind(enum.Enum):
    BUDGET = strawberry.enum_value("BUDGET", description="The month's spending crossed `threshold` percent of the budget.")
    LOW_BALANCE = strawberry.enum_value(
        "LOW_BALANCE", description="What is available fell below the low-balance threshold (`budget`); `spent` is what was available."
    )


@strawberry.type(description="One movement of an account's balance, in the order they happened.")
class BalanceEntry:
    kind: BalanceEntryKind
    amount: Money = strawberry.field(description="How the balance moved: positive for a top-up or credit, negative for a charge.")
    balance_after: Money
    reference: str | None = strawberry.field(description="A top-up's reference.")
    description: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: BalanceEntryRow, currency: str) -> BalanceEntry:
        return cls(
            kind=BalanceEntryKind[row.kind],
            amount=Money(amount=row.amount, currency=currency),
            balance_after=Money(amount=row.balance_after, currency=currency),
            reference=row.reference,
            description=row.description,
            created_at=row.created_at,
        )


async def _bill(info: Info[Context, None], key: int | None) -> Bill | None:
    return await info.context.loaders.billing.bill.load(key) if key is not None else None


@strawberry.type(description="What one job that ran used and cost; written once, in the transaction that ended the job.")
class UsageRecord(Node):
    id: strawberry.ID
    started_at: datetime
    ended_at: datetime
    seconds: int = strawberry.field(description="Seconds billed: each started second, at most the requested duration.")
    accelerator: str
    devices: int
    standard_units_per_device: Decimal
    standard_unit_hours: Decimal = strawberry.field(description="units per device x devices x seconds / 3600, to 9 places.")
    unit_price: Money = strawberry.field(description="Per standard-unit-hour, as quoted when the job was submitted.")
    amount: Money = strawberry.field(description="standard-unit-seconds x unit price / 3600, to 6 places.")
    row: strawberry.Private[UsageRecordRow]

    @classmethod
    def from_row(cls, row: UsageRecordRow) -> UsageRecord:
        return cls(
            id=strawberry.ID(to_global_id("UsageRecord", row.id)),
            started_at=row.started_at,
            ended_at=row.ended_at,
            seconds=row.seconds,
            accelerator=row.accelerator,
            devices=row.devices,
            standard_units_per_device=row.units_per_device.quantize(QUANTITY_SCALE),
            standard_unit_hours=row.standard_unit_hours.quantize(QUANTITY_SCALE),
            unit_price=Money(amount=row.unit_price, currency=row.currency),
            amount=Money(amount=row.amount, currency=row.currency),
            row=row,
        )

    @strawberry.field
    async def job(self, info: Info[Context, None]) -> Annotated[Job, strawberry.lazy("graph.jobs.types")] | None:
        return await info.context.loaders.job.load(self.row.job_id)

    @strawberry.field(description="The inference service whose replica the job was, if it was one.")
    async def service(self, info: Info[Context, None]) -> Annotated[InferenceService, strawberry.lazy("graph.services.types")] | None:
        return await info.context.loaders.service.load(self.row.service_id) if self.row.service_id is not None else None

    @strawberry.field(description="The center that ran the job; null if it is no longer configured.")
    def center(self, info: Info[Context, None]) -> ComputeCenter | None:
        center = info.context.services.centers.get(self.row.center_id)
        return ComputeCenter.from_center(center) if center else None

    @strawberry.field(description="What the center offers of the accelerator the job ran on, asked now.")
    async def compute_unit(self, info: Info[Context, None]) -> ComputeUnit | None:
        if info.context.services.centers.get(self.row.center_id) is None:
            return None
        for unit in await info.context.loaders.capacity.load(self.row.center_id):
            if unit.accelerator.model == self.row.accelerator:
                return ComputeUnit.from_info(unit, info.context.services.centers.currency)
        return None

    @strawberry.field(description="The bill the usage is charged on.")
    async def bill(self, info: Info[Context, None]) -> Bill | None:
        return await _bill(info, self.row.bill_id)


@strawberry.type(description="One line of a bill: a job's usage, or an adjustment (a correction; bills are never edited).")
class BillLine:
    kind: BillLineKind
    description: str
    amount: Money
    created_at: datetime
    row: strawberry.Private[BillLineRow]

    @classmethod
    def from_row(cls, row: BillLineRow, currency: str) -> BillLine:
        return cls(
            kind=BillLineKind[row.kind],
            description=row.description,
            amount=Money(amount=row.amount, currency=currency),
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field(description="A TOKENS line's tokens (what its service's servers reported).")
    def tokens(self) -> BigInt | None:
        return BigInt(self.row.tokens) if self.row.tokens is not None else None

    @strawberry.field(description="The inference service a TOKENS line bills.")
    async def service(self, info: Info[Context, None]) -> Annotated[InferenceService, strawberry.lazy("graph.services.types")] | None:
        return await info.context.loaders.service.load(self.row.service_id) if self.row.service_id is not None else None

    @strawberry.field(description="The usage record of a USAGE line.")
    async def usage(self, info: Info[Context, None]) -> UsageRecord | None:
        if self.row.usage_id is None:
            return None
        return await info.context.loaders.billing.usage.load(self.row.usage_id)

    @strawberry.field
    async def bill(self, info: Info[Context, None]) -> Bill | None:
        return await _bill(info, self.row.bill_id)

    @strawberry.field(description="For an adjustment: the bill it corrects (it may be this one, or a finalized earlier one).")
    async def corrects(self, info: Info[Context, None]) -> Bill | None:
        return await _bill(info, self.row.corrects_bill_id)


@strawberry.type(description="An account's bill for one calendar month: OPEN during the month, then FINALIZED (frozen).")
class Bill(Node):
    id: strawberry.ID
    period: str = strawberry.field(description="YYYY-MM, in the gateway's billing time zone.")
    period_start: datetime
    period_end: datetime = strawberry.field(description="Exclusive: the start of the next month.")
    status: BillStatus
    total: Money = strawberry.field(description="Always the sum of the bill's lines.")
    created_at: datetime
    finalized_at: datetime | None
    row: strawberry.Private[BillRow]

    @classmethod
    def from_row(cls, row: BillRow) -> Bill:
        return cls(
            id=strawberry.ID(to_global_id("Bill", row.id)),
            period=row.period,
            period_start=row.period_start,
            period_end=row.period_end,
            status=BillStatus[row.status],
            total=Money(amount=row.total, currency=row.currency),
            created_at=row.created_at,
            finalized_at=row.finalized_at,
            row=row,
        )

    @strawberry.field
    async def account(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")] | None:
        return await info.context.loaders.account.load(self.row.account_id)

    @strawberry.field(description="The bill's lines, oldest first (keyset paging: every page costs the same).")
    async def lines(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[BillLine]:
        page = await info.context.services.billing_reads.lines(self.row, first=page_size(first), after=decode_cursor(after))
        line_count, currency = self.row.line_count, self.row.currency

        async def count() -> int:
            return line_count

        return connection_from_page(page, lambda row: BillLine.from_row(row, currency), lambda row: row.id, count)

    @strawberry.field(description="Where to download the bill as a FinOps FOCUS CSV (GET).")
    def csv_url(self, info: Info[Context, None]) -> str:
        request = info.context.request
        base = str(request.base_url).rstrip("/") if request is not None else ""
        return base + csv_path(self.row.id)


@strawberry.type(description="A monthly budget crossed a threshold (50, 80 or 100 percent); each is told once a month.")
class BudgetAlert:
    seq: int = strawberry.field(description="Increasing; pass the last one seen as `after` to replay what was missed.")
    kind: BudgetAlertKind
    period: str
    threshold: int = strawberry.field(description="Percent of the budget.")
    budget: Money
    spent: Money = strawberry.field(description="The month's bill total when the threshold was crossed.")
    at: datetime
    account_key: strawberry.Private[int]

    @classmethod
    def from_record(cls, record: AlertRecord) -> BudgetAlert:
        return cls(
            seq=record.id,
            kind=BudgetAlertKind[record.kind],
            period=record.period,
            threshold=record.threshold,
            budget=Money(amount=record.budget, currency=record.currency),
            spent=Money(amount=record.spent, currency=record.currency),
            at=record.at,
            account_key=record.account_id,
        )

    @strawberry.field
    async def account(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")] | None:
        return await info.context.loaders.account.load(self.account_key)


@strawberry.type(description="An account's monthly budget and this month's spending against it.")
class Budget:
    amount: Money
    hard: bool = strawberry.field(description="A hard budget refuses submissions whose hold would cross it (BUDGET_EXCEEDED).")
    period: str
    spent: Money = strawberry.field(description="This month's bill total so far.")
    alerts: list[BudgetAlert] = strawberry.field(description="This month's alerts.")
