"""uvicorn's HTTP/1.1 protocol with a deadline on a request's headers.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but a connection
that has sent part of its first request's headers stays open for ever (one host can hold
thousands of descriptors, a "slowloris"). Here a connection whose first request's headers
have not all arrived within ``HEADER_SECONDS`` of connecting is closed; each following
request's wait is bounded by the keep-alive timeout, and the app bounds a body's arrival.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5


class DeadlineH11Protocol(H11Protocol):
    header_seconds = HEADER_SECONDS
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline = self.loop.call_later(self.header_seconds, self._headers_late)

    def _headers_late(self) -> None:
        if self.cycle is None and not self.transport.is_closing():  # no request's headers arrived in time
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)
