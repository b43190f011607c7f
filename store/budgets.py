"""Budget alerts: each threshold of an account's month is recorded once, then announced."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.billing_tables import BudgetAlertRow


async def thresholds_reached(session: AsyncSession, account_id: int, period: str) -> set[int]:
    rows = await session.scalars(
        select(BudgetAlertRow.threshold).where(BudgetAlertRow.account_id == account_id, BudgetAlertRow.period == period)
    )
    return set(rows)


def add_alert(
    session: AsyncSession,
    account_id: int,
    period: str,
    threshold: int,
    budget: Decimal,
    spent: Decimal,
    currency: str,
    kind: str = "BUDGET",
) -> BudgetAlertRow:
    alert = BudgetAlertRow(
        account_id=account_id, kind=kind, period=period, threshold=threshold, budget=budget, spent=spent, currency=currency
    )
    session.add(alert)
    return alert


async def alerts_after(session: AsyncSession, owner_id: int | None, after: int, limit: int) -> list[BudgetAlertRow]:
    statement = select(BudgetAlertRow).where(BudgetAlertRow.id > after)
    if owner_id is not None:
        statement = statement.where(BudgetAlertRow.account_id == owner_id)
    return list(await session.scalars(statement.order_by(BudgetAlertRow.id).limit(limit)))


async def alerts_by_accounts(session: AsyncSession, account_ids: Sequence[int], period: str) -> dict[int, list[BudgetAlertRow]]:
    grouped: dict[int, list[BudgetAlertRow]] = {account_id: [] for account_id in account_ids}
    rows = await session.scalars(
        select(BudgetAlertRow)
        .where(BudgetAlertRow.account_id.in_(account_ids), BudgetAlertRow.period == period)
        .order_by(BudgetAlertRow.id)
    )
    for row in rows:
        grouped[row.account_id].append(row)
    return grouped
