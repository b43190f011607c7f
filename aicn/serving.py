"""How the gateway is served: uvicorn's httptools HTTP/1.1 protocol with a deadline on every request's arrival.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but any byte cancels
that timer, and nothing bounds a request whose headers or body stop half way (one host could
hold thousands of descriptors, a "slowloris"). Here every request on a connection, the first
and each one after a response on a keep-alive connection, has:

* ``HEADER_SECONDS`` for all of its headers, counted from the connection's start or from the
  previous response's end: a connection that sent part of a request gets a 408 and is closed,
  an idle one is closed;
* ``BODY_SECONDS`` (the app's own deadline, which answers 408 ``REQUEST_TIMEOUT``) plus
  ``BODY_GRACE_SECONDS`` for all of its body, counted from its headers: past that the
  connection is closed, whichever route the request went to; a request answered before its
  body arrived (the app's 408 or 413) is closed ``BODY_GRACE_SECONDS`` after its answer.

An upload (``STREAMED_BODY_PATHS``: up to ``upload_max_bytes``, gigabytes) may take as long as
its body keeps coming: its body deadline starts again with every byte that arrives, so only
a body that stops for ``BODY_SECONDS + BODY_GRACE_SECONDS`` is closed.

A WebSocket upgrade leaves these deadlines behind (its protocol has its own: 4408 for a late init).
Its keepalive pings are spread out (``SpreadPingWebSocketProtocol``).
``server_config`` is the one uvicorn configuration of ``aicn serve`` and of the test gateways.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from graph.http.rules import BODY_SECONDS

HEADER_SECONDS = 10.0
#: past the app's own body deadline, so that its 408 answer goes out before the protocol closes
BODY_GRACE_SECONDS = 2.0
KEEP_ALIVE_SECONDS = 5
#: routes whose body is streamed to storage as it arrives (see ``graph.http.uploads``)
STREAMED_BODY_PATHS = frozenset({"/datasets/upload", "/models/upload"})
#: each keepalive ping comes after between this share of uvicorn's ``ws_ping_interval`` and all of it
PING_SPREAD = 0.5
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class DeadlineHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, in C: cheaper per request than the pure-Python h11) with the deadlines above."""

    header_seconds = HEADER_SECONDS
    body_seconds = BODY_SECONDS + BODY_GRACE_SECONDS
    _deadline: asyncio.TimerHandle | None = None
    #: the parser has begun a request whose headers are not all in yet
    _partial = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_message_begin(self) -> None:
        self._partial = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._partial = False
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before and not self.transport.is_closing():
            self._await_body(self.cycle)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if (
            cycle is not None
            and cycle.more_body
            and not cycle.response_complete  # refused early: the rest of its body only drains (_drained)
            and cycle.scope["path"] in STREAMED_BODY_PATHS
            and not self.transport.is_closing()
        ):
            self._await_body(cycle)  # still coming: the upload's deadline starts again

    def on_response_complete(self) -> None:
        if self.transport.is_closing():
            pass
        elif self.cycle is not None and self.cycle.more_body:
            # answered before its body arrived (408, 413): the rest would only hold the connection
            self._set_deadline(BODY_GRACE_SECONDS, self._drained, self.cycle)
        else:
            self._await_headers()  # first: a pipelined request started below replaces it
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_deadline()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._set_deadline(self.header_seconds, self._headers_late, self.cycle)

    def _await_body(self, cycle: RequestResponseCycle) -> None:
        self._set_deadline(self.body_seconds, self._body_late, cycle)

    def _headers_late(self, cycle_before: RequestResponseCycle | None) -> None:
        if self.cycle is not cycle_before or self.transport.is_closing():
            return  # the next request's headers arrived in time
        if self._partial:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def _body_late(self, cycle: RequestResponseCycle) -> None:
        if self.cycle is cycle and cycle.more_body and not self.transport.is_closing():
            self.transport.close()

    def _drained(self, cycle: RequestResponseCycle) -> None:
        if self.cycle is cycle and not self.transport.is_closing():
            self.transport.close()

    def _set_deadline(self, seconds: float, callback: Any, cycle: RequestResponseCycle | None) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, callback, cycle)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class SpreadPingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (websockets' sans-I/O core), each keepalive ping at a random point
    of the last half of the interval. uvicorn pings every connection ``ws_ping_interval`` after the
    last: subscribers that connected together (a dashboard's page reloaded by many browsers, clients
    reconnecting after a restart) were pinged together forever, 2,000 pings in one go holding the
    event loop, and every subscriber's events, for about 400 ms every 20 s."""

    def schedule_ping(self) -> None:
        assert self.ping_interval is not None
        interval = self.ping_interval * random.uniform(PING_SPREAD, 1.0)
        self.ping_timer = self.loop.call_later(max(0.0, interval - self.last_ping_rtt), self.send_keepalive_ping)


def server_config(app: Any, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration the gateway is served with: these deadlines, this keep-alive."""
    return uvicorn.Config(app, http=DeadlineHttpProtocol, ws=SpreadPingWebSocketProtocol, timeout_keep_alive=KEEP_ALIVE_SECONDS, **options)
