"""A small test client: GraphQL over HTTP (httpx) and over graphql-transport-ws (websockets)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import websockets


class GraphQLClient:
    """Speaks as the holder of ``token`` (an API token), or anonymously without one."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers)

    async def close(self) -> None:
        await self.http.aclose()

    async def post(self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, **kwargs)

    async def execute(self, query: str, variables: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """The response body; fails the test on any GraphQL error."""
        response = await self.post(query, variables, headers=headers)
        body = response.json()
        assert response.status_code == 200, body
        assert "errors" not in body, body["errors"]
        return body["data"]

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/graphql"

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None, *, timeout: float = 30) -> AsyncIterator[dict[str, Any]]:
        """Yield each `next` payload's data until the server completes the subscription."""
        async with websockets.connect(self.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
            payload = {"authorization": f"Bearer {self.token}"} if self.token else {}
            await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
            ack = json.loads(await asyncio.wait_for(socket.recv(), timeout))
            assert ack["type"] == "connection_ack", ack
            operation_id = uuid.uuid4().hex
            await socket.send(
                json.dumps({"id": operation_id, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}})
            )
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), timeout))
                if message["type"] == "ping":
                    await socket.send(json.dumps({"type": "pong"}))
                    continue
                if message["type"] == "complete":
                    return
                if message["type"] == "error":
                    raise AssertionError(f"subscription error: {message['payload']}")
                assert message["type"] == "next", message
                payload = message["payload"]
                assert "errors" not in payload, payload["errors"]
                yield payload["data"]
