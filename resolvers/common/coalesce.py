"""Identical reads asked in one turn of the event loop run once.

Thousands of subscribers of one job replay its log from the same position and recheck it
at the same moments: each would make the same query. Here the first caller schedules the
read and the others asking for the same key before it starts join it. The read starts
only after every caller that joins it has asked, so none of them sees an older state of
the database than its own read would have (a subscriber's bus subscription, taken before
it asks, still covers everything committed after).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class CoalescedReads(Generic[T]):
    def __init__(self) -> None:
        self._waiting: dict[Hashable, asyncio.Future[T]] = {}

    async def read(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        future = self._waiting.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[key] = future
            asyncio.get_running_loop().create_task(self._run(key, future, fetch))
        return await asyncio.shield(future)

    async def _run(self, key: Hashable, future: asyncio.Future[T], fetch: Callable[[], Awaitable[T]]) -> None:
        del self._waiting[key]  # from now on, a caller asks for a read of its own (a newer state)
        try:
            result = await fetch()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: the waiters get it, no "never retrieved" warning
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        future.set_result(result)
