"""One graphql-transport-ws connection to a peer, carrying a subscription per followed thing:
``jobEvents`` for each job, ``serviceEvents`` for each inference service (each a ``Feed``).

When the connection drops (the peer restarts, the network breaks), the link connects again
and subscribes each one again with ``after`` = the last seq it applied, so the peer replays
what happened meanwhile: no event is lost, none applied twice. While it is down, the
connector polls. The token travels in ``connection_init`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

log = logging.getLogger(__name__)

PROTOCOL = "graphql-transport-ws"
ACK_SECONDS = 10.0
#: a peer that keeps refusing (down, or the token revoked) is tried at most this seldom
MAX_RECONNECT_SECONDS = 10.0
JOBS = "jobs"
SERVICES = "services"

#: (feed, the followed thing's id at the peer)
Key = tuple[str, str]


@dataclass(frozen=True)
class Feed:
    """One kind of subscription: its document (variables ``id`` and ``after``), the field its events
    come in, and where they go."""

    document: str
    field: str
    position: Callable[[str], int]
    on_event: Callable[[str, dict[str, Any]], None]
    on_gone: Callable[[str], None]
    on_subscribed: Callable[[str], None]


class LiveLink:
    def __init__(self, center: str, ws_url: str, token: str, *, feeds: Mapping[str, Feed], reconnect_seconds: float = 0.5) -> None:
        self.center = center
        self.ws_url = ws_url
        self._token = token
        self._feeds = dict(feeds)
        self.reconnect_seconds = reconnect_seconds
        self._wanted: set[Key] = set()
        self._operations: dict[str, Key] = {}  # operation id -> what it follows
        self._by_key: dict[Key, str] = {}  # what it follows -> operation id
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

    async def follow(self, external_id: str, feed: str = JOBS) -> None:
        key = (feed, external_id)
        if key in self._wanted:
            return
        self._wanted.add(key)
        if self._socket is not None:
            await self._subscribe(self._socket, key)

    def following(self, external_id: str, feed: str = JOBS) -> bool:
        """True while this connection carries the job's (or service's) subscription."""
        return self._socket is not None and (feed, external_id) in self._by_key

    def forget(self, external_id: str, feed: str = JOBS) -> None:
        key = (feed, external_id)
        self._wanted.discard(key)
        operation = self._by_key.pop(key, None)
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
                self._by_key.clear()
            failures = 0 if self.connections > connections else failures + 1
            await asyncio.sleep(min(self.reconnect_seconds * 2 ** max(0, failures - 1), MAX_RECONNECT_SECONDS))

    async def _serve(self, socket: ClientConnection) -> None:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {self._token}"}}))
        ack = json.loads(await asyncio.wait_for(socket.recv(), ACK_SECONDS))
        if ack.get("type") != "connection_ack":
            return
        self._socket = socket
        self.connections += 1
        for key in sorted(self._wanted):
            await self._subscribe(socket, key)
        async for raw in socket:
            self._handle(socket, json.loads(raw))

    async def _subscribe(self, socket: ClientConnection, key: Key) -> None:
        feed = self._feeds[key[0]]
        operation = str(next(self._ids))
        self._operations[operation] = key
        self._by_key[key] = operation
        variables = {"id": key[1], "after": feed.position(key[1])}
        await self._send(socket, {"id": operation, "type": "subscribe", "payload": {"query": feed.document, "variables": variables}})
        feed.on_subscribed(key[1])

    async def _send(self, socket: ClientConnection, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # a closed socket: the reader notices and reconnects
            await socket.send(json.dumps(message))

    def _handle(self, socket: ClientConnection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ping":
            asyncio.get_running_loop().create_task(self._send(socket, {"type": "pong"}))
            return
        key = self._operations.get(str(message.get("id")))
        if key is None:
            return
        feed = self._feeds[key[0]]
        if kind == "next":
            payload = message.get("payload") or {}
            event = (payload.get("data") or {}).get(feed.field)
            if isinstance(event, dict):
                feed.on_event(key[1], event)
            elif _not_found(payload.get("errors")):
                self._gone(key)
        elif kind == "error":
            if _not_found(message.get("payload")):
                self._gone(key)
        elif kind == "complete":  # the job (or service) ended: its stream is over
            self._wanted.discard(key)
            self._by_key.pop(key, None)
            self._operations.pop(str(message.get("id")), None)

    def _gone(self, key: Key) -> None:
        self._wanted.discard(key)
        operation = self._by_key.pop(key, None)
        if operation is not None:
            self._operations.pop(operation, None)
        self._feeds[key[0]].on_gone(key[1])


def _not_found(errors: Any) -> bool:
    if not isinstance(errors, list):
        return False
    return any(isinstance(error, dict) and (error.get("extensions") or {}).get("code") == "NOT_FOUND" for error in errors)
