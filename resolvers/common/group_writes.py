"""Writes asked for while one is under way go together in the next, in one transaction (a group commit).

Every mutation writes its audit entry before it answers. Written one transaction each, eight
concurrent mutations make eight commits, each with a session to open and close, and on SQLite
eight turns of its one writer. Here the first caller starts a batch at once; whoever asks
while it is being written joins the next one, which starts when it ends. Every caller still
waits for the commit of the batch that holds its item, so nothing is answered before it is
written, and a lone caller waits no longer than it did alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupedWrites(Generic[T]):
    def __init__(self, write: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        """``write`` stores a batch in one transaction, or raises (every caller of the batch gets it)."""
        self._write = write
        self._items: list[T] = []
        self._batch: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        """Returns once ``item`` is written; raises what writing its batch raised."""
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        batch = self._batch
        self._items.append(item)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain(), name="grouped-writes")
        await asyncio.shield(batch)

    async def _drain(self) -> None:
        try:
            while self._items:
                items, batch = self._items, self._batch
                self._items, self._batch = [], None
                assert batch is not None
                try:
                    await self._write(items)
                except BaseException as error:
                    batch.set_exception(error)
                    batch.exception()  # retrieved: the callers get it, no "never retrieved" warning
                    if isinstance(error, asyncio.CancelledError):
                        raise
                else:
                    batch.set_result(None)
        finally:
            self._writer = None
            if self._items:  # cancelled between batches (at shutdown): their callers must not wait forever
                assert self._batch is not None
                self._batch.set_exception(RuntimeError("the writer stopped before writing this batch"))
                self._batch.exception()
                self._items, self._batch = [], None
