"""One graphql-transport-ws connection to a peer, carrying a ``jobEvents`` subscription per followed job.

When the connection drops (the peer restarts, the network breaks), the link connects again
and subscribes each job again with ``after`` = the last seq it applied, so the peer replays
what happened meanwhile: no event is lost, none applied twice. While it is down, the
connector polls. The token travels in ``connection_init`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from connectors.peer.documents import EVENTS

log = logging.getLogger(__name__)

PROTOCOL = "graphql-transport-ws"
ACK_SECONDS = 10.0
#: a peer that keeps refusing (down, or the token revoked) is tried at most this seldom
MAX_RECONNECT_SECONDS = 10.0


class LiveLink:
    def __init__(
        self,
        center: str,
        ws_url: str,
        token: str,
        *,
        position: Callable[[str], int],
        on_event: Callable[[str, dict[str, Any]], None],
        on_gone: Callable[[str], None],
        on_subscribed: Callable[[str], None],
        reconnect_seconds: float = 0.5,
    ) -> None:
        self.center = center
        self.ws_url = ws_url
        self._token = token
        self._position = position
        self._on_event = on_event
        self._on_gone = on_gone
        self._on_subscribed = on_subscribed
        self.reconnect_seconds = reconnect_seconds
        self._wanted: set[str] = set()
        self._operations: dict[str, str] = {}  # operation id -> external id
        self._by_job: dict[str, str] = {}  # external id -> operation id
        self._ids = itertools.count(1)
        self._socket: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.connections = 0  # how many times it connected (a restart shows as one more)

    def __repr__(self) -> str:
        return f"LiveLink(center={self.center!r}, url={self.ws_url!r}, following={len(self._wanted)})"

    @property
    def connected(self) -> bool:
        return self._socket is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"peer-link-{self.center}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def follow(self, external_id: str) -> None:
        if external_id in self._wanted:
            return
        self._wanted.add(external_id)
        if self._socket is not None:
            await self._subscribe(self._socket, external_id)

    def following(self, external_id: str) -> bool:
        """True while this connection carries the job's subscription."""
        return self._socket is not None and external_id in self._by_job

    def forget(self, external_id: str) -> None:
        self._wanted.discard(external_id)
        operation = self._by_job.pop(external_id, None)
        if operation is not None:
            self._operations.pop(operation, None)
            if self._socket is not None:
                asyncio.get_running_loop().create_task(self._send(self._socket, {"id": operation, "type": "complete"}))

    async def _run(self) -> None:
        failures = 0
        while True:
            connections = self.connections
            try:
                async with websockets.connect(self.ws_url, subprotocols=[PROTOCOL], open_timeout=ACK_SECONDS) as socket:  # type: ignore[list-item]
                    await self._serve(socket)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # refused, reset, closed: connect again
                log.debug("live link to peer %s dropped: %s", self.center, type(error).__name__)
            finally:
                self._socket = None
                self._operations.clear()
                self._by_job.clear()
            failures = 0 if self.connections > connections else failures + 1
            await asyncio.sleep(min(self.reconnect_seconds * 2 ** max(0, failures - 1), MAX_RECONNECT_SECONDS))

    async def _serve(self, socket: ClientConnection) -> None:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {self._token}"}}))
        ack = json.loads(await asyncio.wait_for(socket.recv(), ACK_SECONDS))
        if ack.get("type") != "connection_ack":
            return
        self._socket = socket
        self.connections += 1
        for external_id in sorted(self._wanted):
            await self._subscribe(socket, external_id)
        async for raw in socket:
            self._handle(socket, json.loads(raw))

    async def _subscribe(self, socket: ClientConnection, external_id: str) -> None:
        operation = str(next(self._ids))
        self._operations[operation] = external_id
        self._by_job[external_id] = operation
        variables = {"id": external_id, "after": self._position(external_id)}
        await self._send(socket, {"id": operation, "type": "subscribe", "payload": {"query": EVENTS, "variables": variables}})
        self._on_subscribed(external_id)

    async def _send(self, socket: ClientConnection, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # a closed socket: the reader notices and reconnects
            await socket.send(json.dumps(message))

    def _handle(self, socket: ClientConnection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ping":
            asyncio.get_running_loop().create_task(self._send(socket, {"type": "pong"}))
            return
        external_id = self._operations.get(str(message.get("id")))
        if external_id is None:
            return
        if kind == "next":
            payload = message.get("payload") or {}
            event = (payload.get("data") or {}).get("jobEvents")
            if isinstance(event, dict):
                self._on_event(external_id, event)
            elif _not_found(payload.get("errors")):
                self._gone(external_id)
        elif kind == "error":
            if _not_found(message.get("payload")):
                self._gone(external_id)
        elif kind == "complete":  # the job ended: its stream is over
            self._wanted.discard(external_id)
            self._by_job.pop(external_id, None)
            self._operations.pop(str(message.get("id")), None)

    def _gone(self, external_id: str) -> None:
        self._wanted.discard(external_id)
        operation = self._by_job.pop(external_id, None)
        if operation is not None:
            self._operations.pop(operation, None)
        self._on_gone(external_id)


def _not_found(errors: Any) -> bool:
    if not isinstance(errors, list):
        return False
    return any(isinstance(error, dict) and (error.get("extensions") or {}).get("code") == "NOT_FOUND" for error in errors)
