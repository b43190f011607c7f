"""WebSocket (graphql-transport-ws) specifics: the token in `connection_init`, and limits.

The token comes in the `connection_init` payload as ``{"authorization": "Bearer ..."}``
(GraphiQL sends its Headers tab this way, as ``Authorization``) or ``{"token": "..."}``,
or in the upgrade request's ``Authorization`` header. A connection without a valid one
is closed with 4403 (Forbidden), as the protocol says for a refused `connection_init`;
a `subscribe` before an accepted `connection_init` is closed with 4401. When the token is
revoked, its open connections are closed with 4403 at once (news of the revocation comes
over the event bus), and when it expires they are closed with 4403 at its expiry; each new
operation checks the token again anyway.

Each connection's messages wait in an outbox that one writer task sends in order, so an
operation never waits for its client's socket: a client that does not read holds back only
itself. When more than ``limits.subscription_queue`` messages wait, the client has fallen
too far behind: the connection is closed with 4413 (``SLOW_CONSUMER``), and the client
reconnects and resumes with `after` (`jobUpdates`: `since`), losing nothing. A result that
several subscribers share (graph/core/sharing.py) is serialized once and its text sent to each;
subscribers that have joined their group's stream (graph/core/fanout.py) get its finished frames
through ``send_frame``, under the same queue limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage, Message, SubscribeMessage

from graph.core.fanout import Seat, current_seat
from graph.core.sharing import SharedResults
from graph.http.rules import bearer_token
from resolvers.common import metrics

TOO_MANY_OPERATIONS = "TOO_MANY_SUBSCRIPTIONS"
#: the close code of a connection whose client fell more than `limits.subscription_queue` messages behind
SLOW_CONSUMER_CODE = 4413
SLOW_CONSUMER = "SLOW_CONSUMER"


class _Missing:
    pass


MISSING = _Missing()


def offered_secret(params: Mapping[str, Any] | None, upgrade_headers: Mapping[str, str]) -> str | _Missing | None:
    """The token a connection offers; None when it offers something unusable, MISSING when nothing."""
    lowered = {str(key).lower(): value for key, value in (params or {}).items()}
    if "authorization" in lowered:
        value = lowered["authorization"]
        return bearer_token(value) if isinstance(value, str) else None
    if "token" in lowered:
        value = lowered["token"]
        return value.strip() or None if isinstance(value, str) else None
    header = upgrade_headers.get("authorization")
    if header is not None:
        return bearer_token(header)
    return MISSING


class TransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    """strawberry's handler, closing on revocation, with a coded error for too many operations."""

    _watcher: asyncio.Task[None] | None = None
    _writer: asyncio.Task[None] | None = None
    _closing = False
    _slow_close: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        token_id = self.context.viewer.token_id
        if self.connection_acknowledged and token_id is not None and self._watcher is None:
            self._watcher = asyncio.create_task(self._close_when_revoked(token_id))

    async def _close_when_revoked(self, token_id: int) -> None:
        access = self.context.services.access
        async with access.revocations() as news:
            left = await access.seconds_left(token_id)
            if left == 0:  # revoked or expired before we listened
                await self.websocket.close(code=4403, reason="the token has been revoked or has expired")
                return
            expires = None if left is None else asyncio.get_running_loop().time() + left
            while True:
                wait = None if expires is None else max(0.0, expires - asyncio.get_running_loop().time())
                try:
                    message = await asyncio.wait_for(news.get(), wait)
                except TimeoutError:
                    await self.websocket.close(code=4403, reason="the token has expired")
                    return
                if message is not None and message.get("tokenId") == token_id:
                    await self.websocket.close(code=4403, reason="the token has been revoked")
                    return

    async def shutdown(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
        await super().shutdown()

    async def run_operation(self, operation: Operation[Any, None]) -> None:
        metrics.subscriptions_open.inc()
        seat = Seat(self, operation, operation.id)
        if not hasattr(self, "_seats"):
            self._seats: dict[str, Seat] = {}
        self._seats[operation.id] = seat
        current_seat.set(seat)  # the operation's own task: its resolver finds its seat (graph/core/fanout.py)
        try:
            await super().run_operation(operation)
        finally:
            metrics.subscriptions_open.dec()
            if self._seats.get(operation.id) is seat:
                del self._seats[operation.id]

    def runs(self, operation: Any) -> bool:
        """Whether ``operation`` still runs here (a client's `complete` forgets it before its task ends)."""
        return self.operations.get(operation.id) is operation

    async def send_message(self, message: Message) -> None:
        if self._closing:
            return
        if message["type"] == "next":
            metrics.subscription_events.inc()
            seat = getattr(self, "_seats", {}).get(message["id"])
            if seat is not None:  # what its group's frames must carry besides the data (the gate's cost report)
                payload = message["payload"]
                seat.plain = not payload.get("errors")
                seat.tail = payload_rest(payload) + "}}"
        if not self._enqueue(encode(message, self.context.services.shared_results)):
            await self._close_slow(self.context.limits.subscription_queue)
            return
        if len(self._outbox) > self.context.limits.subscription_queue // 2:
            await asyncio.sleep(0)  # a burst (a long replay): let the writer catch up before more

    def send_frame(self, text: str) -> bool:
        """A `next` frame's finished text, made once for a group of subscribers (graph/core/fanout.py);
        True when the outbox is past half its limit."""
        if self._closing:
            return False
        if not self._enqueue(text):
            self._closing = True
            self._slow_close = asyncio.create_task(self._close_slow(self.context.limits.subscription_queue))
            return False
        return len(self._outbox) > int(self.context.limits.subscription_queue) // 2

    def _enqueue(self, text: str) -> bool:
        """Into the outbox for the writer; False when the client is more than the queue limit behind."""
        if not hasattr(self, "_outbox"):
            self._outbox: deque[str] = deque()
            self._queued = asyncio.Event()
        if len(self._outbox) >= self.context.limits.subscription_queue:
            return False
        self._outbox.append(text)
        self._queued.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_forever(), name="ws-writer")
        return True

    async def _write_forever(self) -> None:
        try:
            while True:
                await self._queued.wait()
                self._queued.clear()
                while self._outbox:
                    await self.websocket.ws.send_text(self._outbox.popleft())  # type: ignore[attr-defined]
        except Exception:  # the client has gone: the connection's own loop ends it
            self._closing = True
            self._outbox.clear()

    async def _close_slow(self, limit: int) -> None:
        self._closing = True
        metrics.slow_subscribers_closed.inc()
        if self._writer is not None:
            self._writer.cancel()
        self._outbox.clear()
        reason = f"{SLOW_CONSUMER}: more than {limit} messages waited; reconnect and resume with `after`"
        with contextlib.suppress(Exception):
            await self.websocket.close(code=SLOW_CONSUMER_CODE, reason=reason)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if self.connection_acknowledged and limit is not None and message["id"] not in self.operations and len(self.operations) >= limit:
            error = GraphQLError(
                f"at most {limit} operations may run at once on one connection",
                extensions={"code": TOO_MANY_OPERATIONS, "maximum": limit},
            )
            await self.send_message({"id": message["id"], "type": "error", "payload": [error.formatted]})
            return
        await super().handle_subscribe(message)


def encode(message: Message, shared: SharedResults) -> str:
    """The message's JSON text; a shared result's data goes in as the text made once for all."""
    fields: dict[str, Any] = dict(message)
    payload = fields.get("payload")
    data_text = shared.data_text(payload.get("data")) if fields["type"] == "next" and isinstance(payload, dict) else None
    if data_text is None or not isinstance(payload, dict):
        return json.dumps(fields, separators=(",", ":"))
    rest = payload_rest(payload)
    return f'{{"id":{json.dumps(fields["id"])},"type":"next","payload":{{"data":{data_text}{rest}}}}}'


def payload_rest(payload: Mapping[str, Any]) -> str:
    """The JSON text of a `next` payload's members but ``data``, each after a comma."""
    return "".join(f",{json.dumps(key)}:{json.dumps(value, separators=(',', ':'))}" for key, value in payload.items() if key != "data")
