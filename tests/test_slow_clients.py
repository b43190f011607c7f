"""A served gateway (`aicn serve`, and the test gateways served the same way) closes connections whose\nrequest never finishes arriving, on every request of a keep-alive connection."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

import pytest
import websockets

from aicn.serving import BODY_GRACE_SECONDS, HEADER_SECONDS, DeadlineHttpProtocol
from graph.http.rules import BODY_SECONDS
from tests.conftest import DatabaseChoice, Gateway
from tests.served_gateway import ServedGateway, write_config


async def test_a_half_sent_request_is_closed(database: DatabaseChoice, tmp_path: Path) -> None:
    gateway = ServedGateway(write_config(tmp_path, database.url or "", database.schema))
    await gateway.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and never the rest
        await writer.drain()
        opened = time.monotonic()
        closed = await asyncio.wait_for(reader.read(), HEADER_SECONDS + 20)  # b"" once the server closes
        assert closed == b"" or b"408" in closed or b"400" in closed
        assert time.monotonic() - opened < HEADER_SECONDS + 20
        writer.close()
        assert (await gateway.client.post("{ __typename }")).status_code == 200  # and it still serves
    finally:
        await gateway.stop()


async def test_a_body_that_never_finishes_arriving_gets_a_408(database: DatabaseChoice, tmp_path: Path) -> None:
    gateway = ServedGateway(write_config(tmp_path, database.url or "", database.schema))
    await gateway.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        head = f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {gateway.token}\r\n"
        writer.write((head + "Content-Length: 1000\r\n\r\n").encode() + b'{"query": "{ __typename')  # and never the rest
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), BODY_SECONDS + 20)
        assert answer.startswith(b"HTTP/1.1 408") and b"REQUEST_TIMEOUT" in answer, answer[:300]
        writer.close()
        assert (await gateway.client.post("{ __typename }")).status_code == 200
    finally:
        await gateway.stop()


# ---------------------------------------------------------------------- every request on a keep-alive connection

QUERY = b'{"query": "{ __typename }"}'


def graphql_request(token: str, body: bytes = QUERY, length: int | None = None) -> bytes:
    head = (
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return head + await reader.readexactly(length)


async def dribble_until_closed(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes, limit: float) -> bytes:
    """Send ``data`` a byte a second (each byte restarts uvicorn's keep-alive timer); what arrived once the server closed."""

    async def dribble() -> None:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1)  # the pace of the attack, not a wait for a condition

    sender = asyncio.create_task(dribble())
    try:
        return await asyncio.wait_for(reader.read(), limit)
    finally:
        sender.cancel()
        writer.close()


async def after_one_request(gateway: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]))
    writer.write(graphql_request(gateway.admin.token or ""))
    answer = await read_response(reader)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    return reader, writer, time.monotonic()


async def second_request_headers_dribbled(gateway: Gateway) -> None:
    reader, writer, answered = await after_one_request(gateway)
    closed = await dribble_until_closed(writer, reader, graphql_request(gateway.admin.token or "") * 4, HEADER_SECONDS + 10)
    assert closed.startswith(b"HTTP/1.1 408"), closed[:200]
    assert HEADER_SECONDS - 1 <= time.monotonic() - answered < HEADER_SECONDS + 5


async def second_request_body_dribbled(gateway: Gateway) -> None:
    reader, writer, _ = await after_one_request(gateway)
    writer.write(graphql_request(gateway.admin.token or "", b"", length=1000))
    headers_sent = time.monotonic()
    closed = await dribble_until_closed(writer, reader, b" " * 1000, BODY_SECONDS + BODY_GRACE_SECONDS + 10)
    assert closed.startswith(b"HTTP/1.1 408") and b"REQUEST_TIMEOUT" in closed, closed[:300]
    assert BODY_SECONDS - 1 <= time.monotonic() - headers_sent < BODY_SECONDS + BODY_GRACE_SECONDS + 5


async def websocket_outlives_the_deadlines(gateway: Gateway) -> None:
    async with websockets.connect(gateway.client.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {gateway.client.token}"}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await asyncio.sleep(HEADER_SECONDS + BODY_GRACE_SECONDS)  # past every HTTP deadline: the time under test
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "pong"


async def test_every_request_on_a_keep_alive_connection_has_deadlines_a_websocket_none(gateway: Gateway) -> None:
    """Through the test gateway, served as `aicn serve` is: uvicorn's keep-alive timer restarts with every
    byte, and the header deadline once covered only a connection's first request."""
    await asyncio.gather(
        second_request_headers_dribbled(gateway), second_request_body_dribbled(gateway), websocket_outlives_the_deadlines(gateway)
    )
    assert (await gateway.client.post("{ __typename }")).status_code == 200  # and it still serves


# ---------------------------------------------------------------------- uploads: as long as the body keeps coming


async def test_an_upload_may_take_longer_than_the_body_deadline_while_its_body_keeps_coming(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DeadlineHttpProtocol, "body_seconds", 2.0)  # the deadline, shortened for the test
    pieces = [bytes([index]) * 1000 for index in range(15)]
    data = b"".join(pieces)
    reader, writer = await asyncio.open_connection("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]))
    head = (
        f"POST /datasets/upload?name=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {gateway.client.token}\r\n"
        f"X-Checksum: sha256:{hashlib.sha256(data).hexdigest()}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode())
    began = time.monotonic()
    for piece in pieces:  # 3 s in all, never 2 s without a byte
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.2)
    assert time.monotonic() - began > 2.0
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert answer.startswith(b"HTTP/1.1 201"), answer
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]))
    writer.write(head.replace("name=slow", "name=stalled").encode() + pieces[0])  # and then nothing
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 30) == b""  # closed once 2 s passed without a byte
    writer.close()
