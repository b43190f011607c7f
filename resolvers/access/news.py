"""News that every gateway must have heard before the change that made it is answered.

A cache of rows another gateway may change (tokens, accounts) drops an entry as the news of its
change arrives. ``announce`` publishes the news and, on a bus between processes, waits until every
gateway listening confirmed it (within ``ACK_SECONDS``), so that the very next request on any
replica sees the change; ``acknowledge`` is how a listener confirms.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from store.bus import InMemoryBus

#: how long an announcement waits for the other gateways' confirmations (one that lost its bus
#: connection stops trusting its caches anyway)
ACK_SECONDS = 1.0
log = logging.getLogger(__name__)


async def announce(bus: InMemoryBus, channel: str, acks: str, message: dict[str, Any]) -> None:
    """Publish ``message`` on ``channel``; on a bus between processes, wait for every listener's confirmation on ``acks``."""
    if bus.synchronous:
        await bus.publish(channel, message)
        return
    nonce = secrets.token_hex(8)
    async with bus.subscribe(acks) as heard_on:
        reached = await bus.publish(channel, {**message, "ack": nonce})
        deadline = time.monotonic() + ACK_SECONDS
        heard = 0
        while heard < reached:
            answer = await heard_on.get(timeout=max(0.0, deadline - time.monotonic()))
            if answer is None:
                log.warning("only %d of %d bus listeners confirmed %s %s", heard, reached, channel, message)
                return
            heard += answer.get("ack") == nonce


class Acknowledger:
    """Confirms news on ``acks`` as a watcher handled it (the tasks that publish the confirmations are kept until done)."""

    def __init__(self, bus: InMemoryBus, acks: str) -> None:
        self.bus = bus
        self.acks = acks
        self._tasks: set[asyncio.Task[int]] = set()

    def confirm(self, message: dict[str, object]) -> None:
        nonce = message.get("ack")
        if isinstance(nonce, str) and not self.bus.synchronous:
            task = asyncio.get_running_loop().create_task(self.bus.publish(self.acks, {"ack": nonce}))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
