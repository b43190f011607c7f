"""GraphQL over HTTP (queries, mutations) and graphql-transport-ws (subscriptions) to one gateway.

Every failure becomes a ClientError with the gateway's own code (``extensions.code``, a payload's
``userErrors``) or one of the client's: GATEWAY_UNREACHABLE, GATEWAY_TIMEOUT, BAD_RESPONSE, CLOSED.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from aicn.client.config import Connection
from aicn.client.errors import ClientError

REQUEST_SECONDS = 30.0


def first_error(errors: Sequence[Any]) -> ClientError:
    error = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    extensions = error.get("extensions") if isinstance(error.get("extensions"), Mapping) else {}
    code = str((extensions or {}).get("code") or "GRAPHQL_ERROR")
    return ClientError(code, str(error.get("message") or "the gateway answered an error without a message"))


def raise_user_errors(payload: Mapping[str, Any]) -> None:
    """A mutation's refusal: its first userError, naming the field it is about."""
    errors = payload.get("userErrors") or []
    if errors:
        error = errors[0]
        field = ".".join(str(part) for part in error.get("field") or [])
        raise ClientError(str(error.get("code") or "REFUSED"), (f"{field}: " if field else "") + str(error.get("message")))


class Gateway:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._http = httpx.AsyncClient(
            timeout=REQUEST_SECONDS,
            headers={"Authorization": f"Bearer {connection.token}", "Accept": "application/graphql-response+json, application/json"},
        )

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self._http.post(self.connection.url, json={"query": query, "variables": dict(variables or {})})
        except httpx.TimeoutException:
            raise ClientError("GATEWAY_TIMEOUT", f"{self.connection.url} did not answer within {REQUEST_SECONDS:g}s") from None
        except httpx.HTTPError as error:
            raise ClientError("GATEWAY_UNREACHABLE", f"cannot reach {self.connection.url}: {error or type(error).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            raise ClientError(f"HTTP_{response.status_code}", f"{self.connection.url} answered something that is not GraphQL") from None
        if not isinstance(body, Mapping):
            raise ClientError("BAD_RESPONSE", "the gateway's answer is not a JSON object")
        if body.get("errors"):
            raise first_error(body["errors"])
        if not isinstance(body.get("data"), Mapping):
            raise ClientError(f"HTTP_{response.status_code}", "the gateway answered without data")
        return dict(body["data"])

    async def subscribe(self, query: str, variables: Mapping[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Each event's data, until the gateway completes the subscription."""
        try:
            async with connect(self.connection.ws_url, subprotocols=["graphql-transport-ws"], open_timeout=REQUEST_SECONDS) as socket:  # type: ignore[list-item]
                await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {self.connection.token}"}}))
                ack = json.loads(await socket.recv())
                if ack.get("type") != "connection_ack":
                    raise ClientError("BAD_RESPONSE", f"the gateway did not accept the connection: {ack}")
                operation = uuid.uuid4().hex
                await socket.send(
                    json.dumps({"id": operation, "type": "subscribe", "payload": {"query": query, "variables": dict(variables or {})}})
                )
                async for raw in socket:
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "ping":
                        await socket.send(json.dumps({"type": "pong"}))
                    elif kind == "complete":
                        return
                    elif kind == "error":
                        raise first_error(message.get("payload") or [])
                    elif kind == "next":
                        payload = message.get("payload") or {}
                        if payload.get("errors"):
                            raise first_error(payload["errors"])
                        yield dict(payload.get("data") or {})
        except ConnectionClosed as closed:
            reason = closed.rcvd.reason if closed.rcvd is not None else "no reason given"
            code = {4401: "UNAUTHENTICATED", 4403: "FORBIDDEN"}.get(closed.rcvd.code if closed.rcvd else 0, "CLOSED")
            raise ClientError(code, f"the gateway closed the connection: {reason}") from None
        except InvalidStatus as refusal:
            raise ClientError(f"HTTP_{refusal.response.status_code}", f"{self.connection.ws_url} refused the WebSocket") from None
        except (OSError, TimeoutError, WebSocketException) as error:
            raise ClientError("GATEWAY_UNREACHABLE", f"cannot reach {self.connection.ws_url}: {error or type(error).__name__}") from None
