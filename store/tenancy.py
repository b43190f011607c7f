"""Accounts as tenants: creating and listing them, and their members."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.auth_tables import AccountMemberRow
from store.paging import Page, count_rows, keyset_page
from store.tables import AccountRow


async def account_by_name(session: AsyncSession, name: str) -> AccountRow | None:
    return await session.scalar(select(AccountRow).where(AccountRow.name == name))


async def create_account(session: AsyncSession, name: str, members: Sequence[tuple[str, str]] = ()) -> AccountRow:
    """A new account with its members, given as (name, role)."""
    account = AccountRow(name=name)
    session.add(account)
    await session.flush()
    session.add_all(AccountMemberRow(account_id=account.id, name=member, role=role) for member, role in members)
    await session.flush()
    return account


async def accounts_page(session: AsyncSession, *, first: int, after: int | None) -> Page[AccountRow]:
    return await keyset_page(session, select(AccountRow), AccountRow.id, first=first, after=after)


async def count_accounts(session: AsyncSession) -> int:
    return await count_rows(session, select(AccountRow))


async def members_by_accounts(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, list[AccountMemberRow]]:
    grouped: dict[int, list[AccountMemberRow]] = {account_id: [] for account_id in account_ids}
    rows = await session.scalars(select(AccountMemberRow).where(AccountMemberRow.account_id.in_(account_ids)).order_by(AccountMemberRow.id))
    for row in rows:
        grouped[row.account_id].append(row)
    return grouped
