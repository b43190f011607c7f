"""What read services share: one short read session per call, and lists that count lazily."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from store.db import Database
from store.paging import Page

__all__ = ["Listing", "Page", "Reader"]

RowT = TypeVar("RowT")
T = TypeVar("T")


@dataclass(frozen=True)
class Listing(Generic[RowT]):
    """One keyset page of a list, and how to count the whole list (asked only for `totalCount`)."""

    page: Page[RowT]
    count: Callable[[], Awaitable[int]]


class Reader:
    """A read service: each call opens its own short read session."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def read(self, fetch: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.db.read() as session:
            return await fetch(session)

    async def listing(
        self,
        fetch: Callable[[AsyncSession], Awaitable[Page[RowT]]],
        count: Callable[[AsyncSession], Awaitable[int]],
    ) -> Listing[RowT]:
        page = await self.read(fetch)

        async def count_all() -> int:
            return await self.read(count)

        return Listing(page, count_all)
