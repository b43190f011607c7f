"""Every HTTP answer names its request: ``X-Request-Id``, the caller's own when it sent a usable one.

The id is also in the request's log lines (graph/http/logs.py) and in an INTERNAL error's
``extensions.requestId``, so one id ties a client's report to the gateway's log.
"""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.http import logs

HEADER = b"x-request-id"


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def offered_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            return str(value.decode("latin-1"))
    return None


class RequestIds:
    """ASGI middleware: choose the id, keep it for the request's logs, return it in the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = logs.request_id_from(offered_id(scope), new_request_id())
        scope.setdefault("state", {})["request_id"] = request_id
        previous = logs.REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == HEADER for name, _ in headers):
                    headers.append((HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.REQUEST_ID.reset(previous)
