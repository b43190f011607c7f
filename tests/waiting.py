"""Waiting for a condition with a deadline, instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from store.bus import InMemoryBus

T = TypeVar("T")


async def eventually(condition: Callable[[], T | Awaitable[T]], what: str, *, timeout: float = 10.0, interval: float = 0.01) -> T:
    """The first truthy value of ``condition()`` (sync or async), checked until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not so within {timeout:g} s (last: {value!r})")
        await asyncio.sleep(interval)


async def subscribed(bus: InMemoryBus, channel: str, watch: Coroutine[Any, Any, T], *, timeout: float = 10.0) -> asyncio.Task[T]:
    """Start ``watch`` (a coroutine that subscribes) and return its task once its subscription
    is registered on ``channel``: news published from then on reaches it. A watcher that fails
    before it gets there fails here, with its own error."""
    before = bus.subscribers(channel)
    task = asyncio.create_task(watch)
    try:
        await eventually(lambda: task.done() or bus.subscribers(channel) > before, f"a new subscriber on {channel!r}", timeout=timeout)
    except BaseException:
        task.cancel()
        raise
    if task.done():
        task.result()
    return task
