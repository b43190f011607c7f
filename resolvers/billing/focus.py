"""A bill as a FinOps FOCUS cost export (CSV), streamed from the database page by page.

Each bill line is one charge row. Usage lines carry the job (ResourceId, ResourceName),
its center (ProviderName, RegionId), the SKU (center/accelerator), and the quantity in
standard-unit-hours; adjustment lines are ``ChargeCategory=Adjustment`` with no quantity.
All costs are the line's amount (no discounts exist, so billed, effective and list cost
agree). Times are UTC, ISO 8601.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

from resolvers.billing.pricing import MONEY_PLACES, QUANTITY_PLACES
from resolvers.common.ids import to_global_id
from store import billing as billing_store
from store.billing_tables import BillRow
from store.db import Database

PAGE = 1000
SERVICE_NAME = "AI Compute"
CONSUMED_UNIT = "Standard Compute Unit-Hours"
#: a TOKENS line's unit (the tokens an OPENAI service's servers reported)
TOKENS_UNIT = "Tokens"

COLUMNS = (
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeDescription",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ListUnitPrice",
    "ResourceId",
    "ResourceName",
    "RegionId",
    "ServiceName",
    "ProviderName",
    "SkuId",
    "BillingAccountId",
    "SubAccountId",
)


#: columns that hold numbers (a negative adjustment starts with `-` and must stay a number)
NUMERIC = frozenset({"BilledCost", "EffectiveCost", "ListCost", "ConsumedQuantity", "PricingQuantity", "ListUnitPrice"})
#: what a spreadsheet reads as the start of a formula (OWASP "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading `'`."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _when(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fixed(value: Decimal, places: Decimal) -> str:
    """Money at 6 places, quantities at 9, never in exponent notation (spreadsheets read ``8.89E-7`` as text or a float)."""
    return format(value.quantize(places), "f")


def focus_row(bill: BillRow, item: billing_store.ExportLine) -> list[str]:
    line, usage = item.line, item.usage
    account = to_global_id("Account", bill.account_id)
    amount = _fixed(line.amount, MONEY_PLACES)
    common = {
        "BilledCost": amount,
        "EffectiveCost": amount,
        "ListCost": amount,
        "BillingCurrency": bill.currency,
        "BillingPeriodStart": _when(bill.period_start),
        "BillingPeriodEnd": _when(bill.period_end),
        "ChargeDescription": line.description,
        "ServiceName": SERVICE_NAME,
        "BillingAccountId": account,
        "SubAccountId": account,
    }
    if usage is None and line.kind == "TOKENS" and line.tokens is not None and line.service_id is not None:
        tokens = str(line.tokens)
        fields = {
            **common,
            "ChargePeriodStart": _when(bill.period_start),
            "ChargePeriodEnd": _when(bill.period_end),
            "ChargeCategory": "Usage",
            "ConsumedQuantity": tokens,
            "ConsumedUnit": TOKENS_UNIT,
            "PricingQuantity": tokens,
            "PricingUnit": TOKENS_UNIT,
            "ResourceId": to_global_id("InferenceService", line.service_id),
            "ProviderName": "aicn",
        }
    elif usage is None:
        fields = {
            **common,
            "ChargePeriodStart": _when(bill.period_start),
            "ChargePeriodEnd": _when(bill.period_end),
            "ChargeCategory": "Adjustment",
            "ProviderName": "aicn",
        }
    else:
        center = item.center
        hours = _fixed(usage.standard_unit_hours, QUANTITY_PLACES)
        fields = {
            **common,
            "ChargePeriodStart": _when(usage.started_at),
            "ChargePeriodEnd": _when(usage.ended_at),
            "ChargeCategory": "Usage",
            "ConsumedQuantity": hours,
            "ConsumedUnit": CONSUMED_UNIT,
            "PricingQuantity": hours,
            "PricingUnit": CONSUMED_UNIT,
            "ListUnitPrice": _fixed(usage.unit_price, MONEY_PLACES),
            "ResourceId": to_global_id("Job", usage.job_id),
            "ResourceName": item.job.name if item.job else "",
            "RegionId": (center.region or "") if center else "",
            "ProviderName": center.display_name if center else "",
            "SkuId": f"{center.name if center else usage.center_id}/{usage.accelerator}",
        }
    return [fields.get(column, "") if column in NUMERIC else neutralise(fields.get(column, "")) for column in COLUMNS]


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


async def focus_csv(db: Database, bill: BillRow) -> AsyncIterator[str]:
    """The header, then the bill's lines a page at a time (each page its own short read)."""
    yield _csv([list(COLUMNS)])
    after = 0
    while True:
        async with db.read() as session:
            page = await billing_store.export_lines(session, bill.id, after=after, limit=PAGE)
        if not page:
            return
        yield _csv([focus_row(bill, item) for item in page])
        after = page[-1].line.id
        if len(page) < PAGE:
            return
