"""Loaders: one batch per kind of lookup, and answers that survive a cancelled awaiter."""

from __future__ import annotations

import asyncio

import pytest

from graph.core.batching import SharedLoader, keyed, nodes


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


async def test_load_all_answers_in_order_in_one_batch_with_failures_in_their_place() -> None:
    batches: list[list[int]] = []

    async def load(keys: list[int]) -> list[int | BaseException]:
        batches.append(keys)
        return [ValueError(f"no {key}") if key == 2 else key * 10 for key in keys]

    loader: SharedLoader[int, int] = SharedLoader(load_fn=load)
    answers = await loader.load_all([3, 2, 1])
    assert answers[0] == 30 and answers[2] == 10
    assert isinstance(answers[1], ValueError) and str(answers[1]) == "no 2"
    assert await loader.load(1) == 10  # cached: no second batch
    assert batches == [[3, 2, 1]]


async def test_a_cancelled_load_all_does_not_cancel_a_field_awaiting_one_of_its_keys() -> None:
    release = asyncio.Event()

    async def load(keys: list[int]) -> list[int]:
        await release.wait()
        return [key + 1 for key in keys]

    loader: SharedLoader[int, int] = SharedLoader(load_fn=load)
    everything = asyncio.ensure_future(loader.load_all([1, 2]))
    one = asyncio.ensure_future(loader.load(2))
    await asyncio.sleep(0)
    everything.cancel()
    release.set()
    assert await one == 3
    with pytest.raises(asyncio.CancelledError):
        await everything
    assert await loader.load_all([1, 2]) == [2, 3]
