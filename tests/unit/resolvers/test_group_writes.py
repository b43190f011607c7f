"""``GroupedWrites``: what is asked while a batch is being written goes in the next one, and
every caller returns only once its own item is written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from resolvers.common.group_writes import GroupedWrites


class Store:
    """A write that waits to be let through, so a test decides when each batch commits."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.written: list[int] = []
        self.gate = asyncio.Event()
        self.refuse: set[int] = set()

    async def write(self, items: Sequence[int]) -> None:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.refuse & set(items):
            raise ValueError(f"refused {sorted(self.refuse & set(items))}")
        self.written.extend(items)


async def until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0)


async def test_items_asked_while_a_batch_is_written_go_together_in_the_next() -> None:
    store = Store()
    group = GroupedWrites(store.write)
    first = asyncio.ensure_future(group.add(1))
    await until(lambda: store.batches)  # the first batch is under way, with the only item there was
    rest = [asyncio.ensure_future(group.add(item)) for item in (2, 3, 4)]
    await asyncio.sleep(0)
    assert store.batches == [[1]] and not first.done()  # nobody returns before its write
    store.gate.set()
    await asyncio.gather(first, *rest)
    assert store.batches == [[1], [2, 3, 4]]
    assert store.written == [1, 2, 3, 4]


async def test_a_lone_item_is_written_at_once_in_a_batch_of_its_own() -> None:
    store = Store()
    store.gate.set()
    group = GroupedWrites(store.write)
    await group.add(7)
    await group.add(8)
    assert store.batches == [[7], [8]]


async def test_a_failed_batch_fails_its_own_callers_only() -> None:
    store = Store()
    group = GroupedWrites(store.write)
    first = asyncio.ensure_future(group.add(1))
    await until(lambda: store.batches)
    store.refuse = {1}
    later = [asyncio.ensure_future(group.add(item)) for item in (2, 3)]
    await asyncio.sleep(0)
    store.gate.set()
    with pytest.raises(ValueError, match=r"refused \[1\]"):
        await first
    await asyncio.gather(*later)
    assert store.written == [2, 3]


async def test_a_caller_cancelled_while_it_waits_leaves_its_item_written() -> None:
    store = Store()
    group = GroupedWrites(store.write)
    waiting = asyncio.ensure_future(group.add(5))
    await until(lambda: store.batches)
    waiting.cancel()  # a client that hung up: its mutation has happened, its entry is still written
    store.gate.set()
    await until(lambda: store.written)
    assert store.written == [5]
