"""The audit log: one row per mutation, newest first when read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Select, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.auth_tables import AuditEntryRow
from store.paging import Page, count_rows, keyset_page
from store.types import utcnow

#: every mutation writes one entry: the statement is built once, on the table (no ORM unit of work)
_INSERT_ENTRY = insert(cast(Table, AuditEntryRow.__table__))


async def add_entry(
    session: AsyncSession,
    *,
    account_id: int | None,
    token_id: int | None,
    operation: str,
    input: dict[str, Any] | None,
    outcome: str,
    codes: Sequence[str],
    request_id: str | None,
) -> None:
    """One INSERT, without a RETURNING of the id."""
    entry = {
        "at": utcnow(),
        "account_id": account_id,
        "token_id": token_id,
        "operation": operation,
        "input": input,
        "outcome": outcome,
        "codes": list(codes),
        "request_id": request_id,
    }
    await session.execute(_INSERT_ENTRY, [entry])  # as a batch of one: no RETURNING of the new id


def _select(account_id: int | None) -> Select[Any]:
    statement = select(AuditEntryRow)
    return statement if account_id is None else statement.where(AuditEntryRow.account_id == account_id)


async def entries_page(session: AsyncSession, account_id: int | None, *, first: int, after: int | None) -> Page[AuditEntryRow]:
    return await keyset_page(session, _select(account_id), AuditEntryRow.id, first=first, after=after)


async def count_entries(session: AsyncSession, account_id: int | None) -> int:
    return await count_rows(session, _select(account_id))
