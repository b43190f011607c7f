"""The event bus: tells live subscribers that something was written.

The database is the source of truth; the bus only carries news of committed events so
that subscribers need not poll. A subscriber that sees a gap in sequence numbers reads
the missing events back from the log, so a lost message costs latency, never an event.

``InMemoryBus`` serves one gateway process; ``RedisBus`` (``AICN_BUS_URL=redis://...``)
serves several gateway instances sharing one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000


class Subscription:
    """Messages of one channel, buffered from the moment of subscribing."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False

    def deliver(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # a subscriber this far behind re-reads from the log; dropping news is safe
            self.overflowed = True

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, or None after ``timeout`` seconds without one."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancellation on 3.11
                return await self.queue.get()
        except TimeoutError:
            return None


class _Watch(Subscription):
    """A subscription that hands each message to a callback as it is delivered, with no queue."""

    def __init__(self, callback: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.callback = callback

    def deliver(self, message: dict[str, Any]) -> None:
        try:
            self.callback(message)
        except Exception:
            log.warning("a bus watcher failed on %s", message, exc_info=True)


class InMemoryBus:
    #: publish() has delivered to every subscriber when it returns (no other process listens)
    synchronous = True

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        #: bumped whenever news may have been lost (a Redis connection dropped or came back):
        #: whoever caches what the news would invalidate compares it before trusting the cache
        self.epoch = 0
        self.connected = True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        """Deliver ``message``; the number of gateway processes it reached (this one's included)."""
        self._deliver(channel, message)
        return 1

    def subscribers(self, channel: str) -> int:
        """How many subscriptions of this process listen on ``channel`` now (read-only: lets a
        caller, such as a test, wait until a subscriber is registered instead of sleeping)."""
        return len(self._subscribers.get(channel, ()))

    def _deliver(self, channel: str, message: dict[str, Any]) -> None:
        for subscription in list(self._subscribers.get(channel, ())):
            subscription.deliver(message)

    def watch(self, channel: str, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``callback`` with each message of ``channel`` the moment it is delivered (before any
        task that was woken by later input runs); returns the function that stops watching."""
        watch = _Watch(callback)
        self._subscribers.setdefault(channel, set()).add(watch)
        return lambda: self._forget(channel, watch)

    def _forget(self, channel: str, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(channel)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[channel]

    def listen(self, channel: str) -> tuple[Subscription, Callable[[], None]]:
        """A subscription buffering from this moment on (no await between the call and the first
        message it gets), and the function that ends it; ``subscribe`` is the usual way."""
        subscription = Subscription()
        self._subscribers.setdefault(channel, set()).add(subscription)
        return subscription, lambda: self._forget(channel, subscription)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        self._subscribers.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            self._forget(channel, subscription)


class RedisBus(InMemoryBus):
    """Publishes through Redis; one pattern subscription per gateway fans out locally."""

    PREFIX = "aicn:"
    synchronous = False

    def __init__(self, url: str, prefix: str | None = None) -> None:
        super().__init__()
        self.connected = False
        if prefix is not None:
            self.PREFIX = prefix
        self.url = url
        self._redis: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(self.url, decode_responses=True)
        await self._redis.ping()
        self._reader = asyncio.create_task(self._read_forever(), name="redis-bus-reader")
        async with asyncio.timeout(10):
            await self._ready.wait()

    async def close(self) -> None:
        self.connected = False
        self.epoch += 1
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._redis is not None:
            await self._redis.aclose()
        await super().close()

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        try:
            return int(await self._redis.publish(self.PREFIX + channel, json.dumps(message, default=str)))
        except Exception:  # the log still has the event; subscribers catch up on their next look
            log.warning("bus publish to %s failed", channel, exc_info=True)
            return 0

    async def _read_forever(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self.PREFIX + "*")
                self.epoch += 1
                self.connected = True
                self._ready.set()
                async for item in pubsub.listen():
                    if item.get("type") != "pmessage":
                        continue
                    channel = str(item["channel"])[len(self.PREFIX) :]
                    self._deliver(channel, json.loads(item["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                self.connected = False
                self.epoch += 1
                log.warning("bus connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
