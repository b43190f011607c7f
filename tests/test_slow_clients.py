"""A served gateway (`aicn serve`) closes connections whose request never finishes arriving."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aicn.serving import HEADER_SECONDS
from graph.http.rules import BODY_SECONDS
from tests.conftest import DatabaseChoice
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
