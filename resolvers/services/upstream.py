"""A lean HTTP/1.1 client for ``POST /invoke`` to replicas: keep-alive connections per replica as
asyncio protocols, responses parsed by httptools (C) as the bytes arrive. httpx spent most of the
gateway's CPU per proxied request (bench/services.py, profiled); this path does one write and
wakes the request once, when its answer is whole."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import lru_cache
from typing import cast
from urllib.parse import urlsplit

import httptools

#: idle connections kept per replica
MAX_IDLE = 64


class UpstreamLost(Exception):
    """The connection failed before a whole answer came (or could not be made)."""


class UpstreamTimeout(Exception):
    """No whole answer within the deadline, on a connection that was made."""


class _Stale(Exception):
    """A kept connection closed before it answered."""


@dataclass
class Answer:
    status: int = 0
    content_type: str = ""
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False
    keep_alive: bool = True

    # httptools' callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value.decode("latin-1")
        elif name == b"connection" and b"close" in value.lower():
            self.keep_alive = False

    def on_body(self, chunk: bytes) -> None:
        self.body += chunk

    def on_message_complete(self) -> None:
        self.complete = True


class _Link(asyncio.Protocol):
    """One kept connection to a replica: one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._answer = Answer()
        self._parser = httptools.HttpResponseParser(self._answer)
        self._waiter: asyncio.Future[None] | None = None
        self._received = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's transports are not asyncio.Transport subclasses)

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamLost(str(error)))
            return
        if self._answer.complete and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamLost() if self._received else _Stale())

    def _fail(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, ends: float) -> Answer:
        """Send ``request``; its whole answer by the loop time ``ends``."""
        assert self.transport is not None
        answer = self._answer = Answer()
        self._parser = httptools.HttpResponseParser(answer)
        self._received = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            async with asyncio.timeout_at(ends):
                await self._waiter
        except TimeoutError:
            self.close()
            raise UpstreamTimeout from None
        except BaseException:
            self.close()
            raise
        finally:
            self._waiter = None
        answer.status = self._parser.get_status_code()
        # (httptools' should_keep_alive() says False once the message is complete: read it ourselves)
        answer.keep_alive = answer.keep_alive and self._parser.get_http_version() == "1.1"
        return answer


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[str, int, bytes]:
    """A URL's host, port and request head up to the content length."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\ncontent-length: "
    return host, port, head.encode("latin-1")


class Upstream:
    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Link]] = {}

    async def post(self, url: str, body: bytes, deadline: float) -> Answer:
        """POST ``body`` (JSON) to ``url``: the whole answer within ``deadline`` seconds."""
        host, port, head = _target(url)
        request = b"%s%d\r\n\r\n%s" % (head, len(body), body)
        idle = self._idle.setdefault((host, port), [])
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline
        while idle:  # a kept connection the replica closed meanwhile fails before any answer: try the next
            link = idle.pop()
            if link.closed:
                continue
            try:
                return self._keep(link, await link.exchange(request, ends), idle)
            except _Stale:
                continue
        try:
            async with asyncio.timeout_at(ends):
                _, link = await loop.create_connection(_Link, host, port)
        except (OSError, TimeoutError):
            raise UpstreamLost from None
        try:
            return self._keep(link, await link.exchange(request, ends), idle)
        except _Stale:
            raise UpstreamLost from None

    @staticmethod
    def _keep(link: _Link, answer: Answer, idle: list[_Link]) -> Answer:
        if answer.keep_alive and not link.closed and len(idle) < MAX_IDLE:
            idle.append(link)
        else:
            link.close()
        return answer

    def forget(self, url: str) -> None:
        """Close the kept connections to a replica (it is gone)."""
        host, port, _ = _target(url)
        for link in self._idle.pop((host, port), []):
            link.close()

    async def close(self) -> None:
        for links in self._idle.values():
            for link in links:
                link.close()
        self._idle.clear()
