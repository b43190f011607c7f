"""A lean HTTP/1.1 client for ``POST /invoke`` to replicas: keep-alive connections per replica over
asyncio streams, responses parsed by httptools (C). httpx spent most of the gateway's CPU per
proxied request (bench/services.py, profiled); this path does one write and a few reads."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

#: idle connections kept per replica
MAX_IDLE = 64
READ_SIZE = 65536


class UpstreamLost(Exception):
    """The connection failed before a whole answer came (or could not be made)."""


class UpstreamTimeout(Exception):
    """No whole answer within the deadline, on a connection that was made."""


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


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Upstream:
    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    async def post(self, url: str, body: bytes, deadline: float) -> Answer:
        """POST ``body`` (JSON) to ``url``: the whole answer within ``deadline`` seconds."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        idle = self._idle.setdefault((host, port), [])
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline
        while idle:  # a kept connection the replica closed meanwhile fails before any answer: try the next
            connection = idle.pop()
            try:
                return await self._exchange(connection, head + body, ends, idle, reused=True)
            except _Stale:
                continue
        try:
            async with asyncio.timeout_at(ends):
                connection = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            raise UpstreamLost from None
        try:
            return await self._exchange(connection, head + body, ends, idle, reused=False)
        except _Stale:
            raise UpstreamLost from None

    async def _exchange(self, connection: Connection, request: bytes, ends: float, idle: list[Connection], *, reused: bool) -> Answer:
        reader, writer = connection
        answer = Answer()
        parser = httptools.HttpResponseParser(answer)
        received = False
        try:
            async with asyncio.timeout_at(ends):
                writer.write(request)
                await writer.drain()
                while not answer.complete:
                    data = await reader.read(READ_SIZE)
                    if not data:
                        if not received and reused:
                            raise _Stale
                        raise UpstreamLost
                    received = True
                    parser.feed_data(data)
                    if not answer.status:
                        answer.status = parser.get_status_code() or 0
            answer.status = parser.get_status_code()
            # (httptools' should_keep_alive() says False once the message is complete: read it ourselves)
            answer.keep_alive = answer.keep_alive and parser.get_http_version() == "1.1"
        except TimeoutError:
            writer.close()
            raise UpstreamTimeout from None
        except (OSError, httptools.HttpParserError):
            writer.close()
            if not received and reused:
                raise _Stale from None
            raise UpstreamLost from None
        except BaseException:
            writer.close()
            raise
        if answer.keep_alive and len(idle) < MAX_IDLE:
            idle.append(connection)
        else:
            writer.close()
        return answer

    def forget(self, url: str) -> None:
        """Close the kept connections to a replica (it is gone)."""
        parts = urlsplit(url)
        for _, writer in self._idle.pop((parts.hostname or "127.0.0.1", parts.port or 80), []):
            writer.close()

    async def close(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()


class _Stale(Exception):
    """A kept connection closed before it answered."""
