"""The gateway's HTTP/1.1 client for ``/invoke``, against real loopback servers: connections are
kept and reused as the answer allows, one the replica closed while idle is replaced without
failing the request, a hang ends at the deadline, a cut answer is a lost replica."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from resolvers.services.upstream import Upstream, UpstreamLost, UpstreamTimeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


def answer(body: bytes, *, version: str = "1.1", close: bool = False) -> bytes:
    connection = "connection: close\r\n" if close else ""
    return f"HTTP/{version} 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n{connection}\r\n".encode() + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return await reader.readexactly(length)


@asynccontextmanager
async def server(handle: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server; ``connections`` lists each accepted connection's number."""
    connections: list[int] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections) + 1)
        try:
            await handle(reader, writer, connections[-1])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(accepted, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/invoke", connections
    finally:
        listening.close()


async def echo_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
    while True:
        body = await read_request(reader)
        writer.write(answer(b'{"echo": ' + body + b"}"))
        await writer.drain()


async def test_a_kept_connection_carries_every_request_in_turn() -> None:
    upstream = Upstream()
    async with server(echo_forever) as (url, connections):
        for n in range(5):
            got = await upstream.post(url, b'{"n": %d}' % n, 5)
            assert (got.status, got.content_type, bytes(got.body)) == (200, "application/json", b'{"echo": {"n": %d}}' % n)
        assert connections == [1]
        together = await asyncio.gather(*(upstream.post(url, b"%d" % n, 5) for n in range(4)))
        assert [bytes(got.body) for got in together] == [b'{"echo": %d}' % n for n in range(4)]
        assert len(connections) == 4  # three more, side by side
    await upstream.close()


async def test_a_connection_the_replica_closed_while_idle_is_replaced_and_the_request_answered() -> None:
    async def one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()

    upstream = Upstream()
    async with server(one_answer_then_close) as (url, connections):
        for _ in range(3):
            assert (await upstream.post(url, b"{}", 5)).status == 200
        assert connections == [1, 2, 3]
    await upstream.close()


@pytest.mark.parametrize("ending", ["http/1.0", "connection: close"])
async def test_an_answer_that_ends_its_connection_is_not_kept(ending: str) -> None:
    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        await read_request(reader)
        writer.write(answer(b"[]", version="1.0") if ending == "http/1.0" else answer(b"[]", close=True))
        await writer.drain()
        await reader.read()  # the client must be the one to close

    upstream = Upstream()
    async with server(answer_once) as (url, connections):
        first = await upstream.post(url, b"{}", 5)
        assert (first.status, bytes(first.body), first.keep_alive) == (200, b"[]", False)
        await upstream.post(url, b"{}", 5)
        assert connections == [1, 2]
    await upstream.close()


async def test_a_hanging_replica_times_out_at_the_deadline() -> None:
    async def hang(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter, _n: int) -> None:
        await read_request(reader)
        await reader.read()

    upstream = Upstream()
    async with server(hang) as (url, _connections):
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await upstream.post(url, b"{}", 0.3)
        assert 0.3 <= time.monotonic() - started < 3
    await upstream.close()


async def test_an_answer_cut_short_is_a_lost_replica() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        await read_request(reader)
        writer.write(answer(b'{"long": "answer"}')[:-5])
        await writer.drain()

    upstream = Upstream()
    async with server(cut) as (url, _connections):
        with pytest.raises(UpstreamLost):
            await upstream.post(url, b"{}", 5)
    await upstream.close()
    with pytest.raises(UpstreamLost):  # nothing listens there any more
        await Upstream().post(url, b"{}", 5)
