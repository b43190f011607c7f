"""The audit log: one row per mutation, newest first when read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from store.auth_tables import AuditEntryRow
from store.paging import Page, count_rows, keyset_page
from store.types import utcnow

#: every mutation writes one entry: the statement is built once, on the table (no ORM unit of work)
_INSERT_ENTRY = insert(cast(Table, AuditEntryRow.__table__))


@dataclass(frozen=True)
class NewEntry:
    account_id: int | None
    token_id: int | None
    operation: str
    input: dict[str, Any] | None
    outcome: str
    codes: Sequence[str]
    request_id: str | None
    at: datetime = field(default_factory=utcnow)


async def add_entries(session: AsyncSession | AsyncConnection, entries: Sequence[NewEntry]) -> None:
    """One INSERT of them all, without a RETURNING of the ids."""
    rows = [
        {
            "at": entry.at,
            "account_id": entry.account_id,
            "token_id": entry.token_id,
            "operation": entry.operation,
            "input": entry.input,
            "outcome": entry.outcome,
            "codes": list(entry.codes),
            "request_id": entry.request_id,
        }
        for entry in entries
    ]
    await session.execute(_INSERT_ENTRY, rows)  # as a batch: no RETURNING of the new ids


def _select(account_id: int | None) -> Select[Any]:
    statement = select(AuditEntryRow)
    return statement if account_id is None else statement.where(AuditEntryRow.account_id == account_id)


async def entries_page(session: AsyncSession, account_id: int | None, *, first: int, after: int | None) -> Page[AuditEntryRow]:
    return await keyset_page(session, _select(account_id), AuditEntryRow.id, first=first, after=after)


async def count_entries(session: AsyncSession, account_id: int | None) -> int:
    return await count_rows(session, _select(account_id))
