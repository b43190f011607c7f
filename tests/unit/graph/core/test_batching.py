"""Loaders: one batch per kind of lookup, and answers that survive a cancelled awaiter."""

from __future__ import annotations

import asyncio

import pytest

from graph.core.batching import keyed, nodes


async def test_one_batch_answers_every_key_asked_together() -> None:
    batches: list[list[int]] = []

    async def fetch(keys: list[int]) -> dict[int, str]:
        batches.append(keys)
        return {key: f"row{key}" for key in keys if key != 3}

    loader = nodes(fetch, str.upper)
    assert await asyncio.gather(loader.load(1), loader.load(2), loader.load(3)) == ["ROW1", "ROW2", None]
    assert batches == [[1, 2, 3]]


async def test_a_cancelled_awaiter_does_not_cancel_the_answer_for_the_others() -> None:
    release = asyncio.Event()

    async def fetch(keys: list[int]) -> dict[int, int]:
        await release.wait()
        return {key: key * 2 for key in keys}

    loader = keyed(fetch)
    cancelled = asyncio.ensure_future(loader.load(1))
    survivor = asyncio.ensure_future(loader.load(1))
    await asyncio.sleep(0)  # both are waiting on the one batch
    cancelled.cancel()
    release.set()
    assert await survivor == 2
    with pytest.raises(asyncio.CancelledError):
        await cancelled
