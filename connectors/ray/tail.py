"""Following a Ray job's log through the head's WebSocket tail: each byte crosses the network once.

Ray 2.60 serves a job's log incrementally only as a WebSocket, ``/api/jobs/{id}/logs/tail``
(``GET /api/jobs/{id}/logs`` is the whole log, every time). The socket streams the log from its
first byte in text frames of up to 10 lines or about 20,000 characters (one longer line is one
frame), then each new chunk about once a second, and closes normally a few seconds after the job
ended, once everything is sent. Facts this module relies on (docs/ray.md):

* the client must not offer permessage-deflate: through the head, such a socket gets no frame;
* a frame of fewer than 10 lines and under 20,000 characters is sent only when Ray's reader hit
  the end of the file (``file_tail_iterator``), so after one the follower has *caught up*;
* an unknown job is refused at the upgrade with HTTP 404.

A ``LogFollower`` holds one socket for one job. It feeds every chunk to the job's progress cursor,
keeps the last ``window`` bytes for readers (``read``), counts the UTF-8 bytes received from the
log's start (``received``: the offsets of ``Connector.read_log``), and when the socket drops before
the end it connects again and skips the bytes it already has (Ray replays from the start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from connectors.base import LogChunk
from connectors.ray.progress import LogCursor

logger = logging.getLogger(__name__)

#: Ray's tail sends at most this many lines in one frame, or fewer only at the end of the file
RAY_CHUNK_LINES = 10
RAY_CHUNK_CHARS = 20_000
#: Ray sends one line in one frame whatever its length: a frame beyond this closes the socket (1009)
MAX_FRAME_BYTES = 32 * 1024 * 1024
#: Ray's reader sleeps a second at the end of the file: this long without a frame is caught up too
QUIET_SECONDS = 1.5
RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)


class LogFollower:
    """One job's log tail, read once, with the last ``window`` bytes kept for readers."""

    def __init__(self, url: str, headers: Mapping[str, str], *, window: int, open_timeout: float) -> None:
        self.url = url
        self.headers = dict(headers)
        self.window = window
        self.open_timeout = open_timeout
        self.cursor = LogCursor()
        self.received = 0
        self.done = False  # the socket closed normally: the job ended and its log is all here
        self.missing = False  # Ray does not know the job
        self.problem: str | None = None
        self.caught_up = asyncio.Event()
        self.answered = asyncio.Event()  # Ray answered the upgrade once: the socket opened, or the job is unknown
        self.done_at: float | None = None
        self._kept = bytearray()
        self._last_frame = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name=f"ray-log-tail {self.url}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def settled(self) -> bool:
        """True once the follower has all of the log there is now (or knows it never will)."""
        if self.done or self.missing:
            return True
        return self.caught_up.is_set() or time.monotonic() - self._last_frame >= QUIET_SECONDS

    async def wait_settled(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.settled and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.caught_up.wait(), min(0.1, max(0.0, deadline - time.monotonic())))

    async def wait_answered(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.answered.wait(), timeout)

    def read(self, offset: int, max_bytes: int) -> LogChunk:
        """Bytes from ``offset`` (negative: the last ``-offset``) out of the kept window."""
        kept_from = self.received - len(self._kept)
        if offset > self.received:  # a reader ahead of a follower that started again: nothing new yet
            return LogChunk(b"", offset, offset)
        if offset < 0:
            start = max(kept_from, self.received + offset)
            max_bytes = min(max_bytes, -offset)
        else:
            start = max(kept_from, offset)
        data = bytes(self._kept[start - kept_from : start - kept_from + max(0, max_bytes)])
        return LogChunk(data, start, start + len(data))

    # ------------------------------------------------------------------ the socket

    async def _follow(self) -> None:
        attempt = 0
        while not self.done and not self.missing:
            seen = 0  # bytes of this connection's replay that the follower had already
            try:
                async with connect(
                    self.url,
                    additional_headers=self.headers,
                    compression=None,
                    max_size=MAX_FRAME_BYTES,
                    open_timeout=self.open_timeout,
                    ping_interval=None,  # Ray's aiohttp answers pings, but a busy head is no reason to drop the tail
                ) as socket:
                    self.answered.set()
                    attempt = 0
                    async for frame in socket:
                        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                        seen = self._take(text, seen)
                self.done = True
                self.done_at = time.monotonic()
                self.caught_up.set()
            except InvalidStatus as refusal:
                if refusal.response.status_code == 404:
                    self.missing = True
                    self.caught_up.set()
                    self.answered.set()
                    return
                self.problem = f"the Ray log tail answered HTTP {refusal.response.status_code}"
            except ConnectionClosed as closed:
                self.problem = f"the Ray log tail closed: {closed}"
            except (OSError, TimeoutError, WebSocketException) as error:
                self.problem = f"the Ray log tail failed: {type(error).__name__}: {error}"
            if not self.done:
                logger.info("%s; connecting again (%s)", self.problem, self.url)
                await asyncio.sleep(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)])
                attempt += 1

    def _take(self, text: str, seen: int) -> int:
        """Keep the part of a frame past what the follower has; returns the replay position after it."""
        self._last_frame = time.monotonic()
        data = text.encode()
        end = seen + len(data)
        if end > self.received:
            new = data[max(0, self.received - seen) :]
            self.received += len(new)
            self._kept += new[-self.window :]
            if len(self._kept) > self.window:
                del self._kept[: len(self._kept) - self.window]
            self.cursor.feed(new.decode("utf-8", "replace"))
        if text.count("\n") < RAY_CHUNK_LINES and len(text) < RAY_CHUNK_CHARS:
            self.caught_up.set()
        else:
            self.caught_up.clear()
        return end


class Followers:
    """The followers of the jobs being watched; beyond ``limit`` the least recently used is stopped."""

    def __init__(self, factory: Callable[[str], LogFollower], limit: int = 1024, keep_done_seconds: float = 120.0) -> None:
        self.factory = factory
        self.limit = limit
        self.keep_done_seconds = keep_done_seconds
        self._followers: OrderedDict[str, LogFollower] = OrderedDict()
        self._swept_at = 0.0

    def of(self, submission_id: str) -> LogFollower:
        follower = self._followers.pop(submission_id, None)
        if follower is None:
            follower = self.factory(submission_id)
            follower.start()
        self._followers[submission_id] = follower
        self._evict()
        return follower

    def peek(self, submission_id: str) -> LogFollower | None:
        return self._followers.get(submission_id)

    def _evict(self) -> None:
        now = time.monotonic()
        if now - self._swept_at >= 1.0:  # a sweep per second, not per lookup
            self._swept_at = now
            for submission_id, follower in list(self._followers.items()):
                if follower.done_at is not None and now - follower.done_at > self.keep_done_seconds:
                    self._drop(submission_id)
        while len(self._followers) > self.limit:
            self._drop(next(iter(self._followers)))

    def _drop(self, submission_id: str) -> None:
        follower = self._followers.pop(submission_id, None)
        if follower is not None and follower._task is not None:
            follower._task.cancel()

    async def close(self) -> None:
        followers = list(self._followers.values())
        self._followers.clear()
        for follower in followers:
            await follower.stop()

    def __len__(self) -> int:
        return len(self._followers)
