"""Storage metering: the bytes an account keeps, charged per GB-month on the month's bill.

A verified copy (a dataset or model replica) counts from the moment it was verified to
the end of the month (nothing is deleted yet); a GB is 10^9 bytes and a month is the
billing month's own length, so a 2 GB copy kept for half of a 30-day month is 1 GB-month.
The line is posted once, when the bill is finalized.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from store import transfers as transfer_store

GB = Decimal(10**9)
GB_MONTHS_PLACES = Decimal("0.000000001")


async def gb_months(session: AsyncSession, account_id: int, start: datetime, end: datetime) -> Decimal:
    """GB-months the account kept within [start, end)."""
    month_seconds = Decimal(str((end - start).total_seconds()))
    total = Decimal(0)
    for size, verified_at in await transfer_store.verified_copies(session, account_id):
        begun = max(verified_at, start)
        if begun >= end:
            continue
        kept = Decimal(str((end - begun).total_seconds()))
        total += Decimal(size) / GB * kept / month_seconds
    return total.quantize(GB_MONTHS_PLACES, rounding=ROUND_HALF_UP)


def storage_charge(amount_gb_months: Decimal, price_per_gb_month: Decimal) -> Decimal:
    return (amount_gb_months * price_per_gb_month).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
