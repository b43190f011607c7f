"""Accounts (tenants)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.tables import AccountRow


async def ensure_account(session: AsyncSession, name: str) -> AccountRow:
    found = await session.scalar(select(AccountRow).where(AccountRow.name == name))
    if found is not None:
        return found
    account = AccountRow(name=name)
    session.add(account)
    await session.flush()
    return account


async def accounts_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, AccountRow]:
    rows = await session.scalars(select(AccountRow).where(AccountRow.id.in_(ids)))
    return {row.id: row for row in rows}
