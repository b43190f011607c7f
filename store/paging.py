"""Keyset pagination: a page is ``WHERE id < :after ORDER BY id DESC LIMIT :first + 1``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Page(Generic[RowT]):
    rows: Sequence[RowT]
    has_next: bool
    has_previous: bool


async def keyset_page(
    session: AsyncSession,
    statement: Select[Any],
    key: InstrumentedAttribute[Any],
    *,
    first: int,
    after: Any | None = None,
    descending: bool = True,
) -> Page[Any]:
    """One page of ``statement`` ordered by the unique ``key``, starting after ``after``."""
    if after is not None:
        statement = statement.where(key < after if descending else key > after)
    statement = statement.order_by(key.desc() if descending else key.asc()).limit(first + 1)
    rows = list((await session.scalars(statement)).all())
    return Page(rows=rows[:first], has_next=len(rows) > first, has_previous=after is not None)


async def count_rows(session: AsyncSession, statement: Select[Any]) -> int:
    """How many rows ``statement`` matches, counted by the database."""
    counted = select(func.count()).select_from(statement.order_by(None).subquery())
    return int((await session.execute(counted)).scalar_one())
