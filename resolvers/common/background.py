"""Small pieces every background loop of the gateway uses."""

from __future__ import annotations

import asyncio
import contextlib


class Alarm:
    """Wakes a sleeping loop early: ``ring()`` from anywhere, ``sleep(seconds)`` in the loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()

    async def sleep(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._event.wait()
        self._event.clear()


async def stop_task(task: asyncio.Task[object] | None) -> None:
    """Cancel a background task and wait until it has finished."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
