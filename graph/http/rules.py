"""GraphQL over HTTP, as its spec says: media types, status codes, CSRF and body limits.

- ``application/graphql-response+json`` when the client accepts it, else
  ``application/json``. A request that never executed (parse, validation, limits,
  authentication, scope, rate) has no ``data`` key and a 4xx status: 400 in general,
  401 ``UNAUTHENTICATED``, 403 ``FORBIDDEN``, 429 ``THROTTLED`` with ``Retry-After``.
  An executed one is 200, partial data and errors included.
- CSRF: a browser sends a request cross-site without asking first (a "simple"
  request) only without custom headers and with a simple content type. Such requests
  are refused unless they carry a header that forces a preflight:
  ``GraphQL-Require-Preflight``, ``Authorization``, or a non-simple ``Content-Type``
  such as ``application/json``.
- Bodies above ``limits.max_body_bytes`` get 413, long GET query strings 414.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive

GRAPHQL_RESPONSE = "application/graphql-response+json"
SIMPLE_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
PREFLIGHT_HEADERS = ("graphql-require-preflight", "authorization")
#: errors that mean the operation never executed, and the status each gets
REJECTION_STATUS: Mapping[str, int] = {
    "GRAPHQL_PARSE_FAILED": 400,
    "GRAPHQL_VALIDATION_FAILED": 400,
    "QUERY_TOO_COMPLEX": 400,
    "BAD_REQUEST": 400,
    "SUBSCRIPTION_NEEDS_WEBSOCKET": 400,
    "BAD_USER_INPUT": 400,  # without a path: refused before running (a NUL in a string)
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "THROTTLED": 429,
}


class BodyTooLarge(Exception):
    pass


#: deeper JSON than any request needs; deeper would recurse in the decoder or past it
MAX_JSON_DEPTH = 64


def strict_json(data: str | bytes) -> object:
    """JSON as RFC 8259 has it (Python's `NaN` and `Infinity` extensions are refused), nested at
    most MAX_JSON_DEPTH levels. Every failure is a JSONDecodeError, which HTTP answers with 400
    and the WebSocket protocol with 4400."""

    def refuse(constant: str) -> object:
        raise json.JSONDecodeError(f"{constant} is not JSON", constant, 0)

    try:
        value = json.loads(data, parse_constant=refuse)
    except RecursionError:
        raise json.JSONDecodeError(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep", "", 0) from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise json.JSONDecodeError(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep", "", 0)
    return value


def _depth(value: object) -> int:
    """How deeply containers nest in ``value``, without recursing."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH:
            stack.extend((child, level + 1) for child in children)
    return deepest


def media_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accept else "application/json"


def wants_ide(request: Request) -> bool:
    """GraphiQL's page: a browser's GET without a query, nor a persisted query's hash (strawberry's own test)."""
    accept = request.headers.get("accept", "")
    asks = "query" in request.query_params or "extensions" in request.query_params
    return request.method == "GET" and not asks and ("text/html" in accept or "*/*" in accept)


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def csrf_blocked(request: Request) -> bool:
    """A request a browser could have sent cross-site without a preflight."""
    if any(request.headers.get(name) for name in PREFLIGHT_HEADERS):
        return False
    if request.method == "GET":
        return True
    kind = content_type(request)
    return not kind or kind in SIMPLE_CONTENT_TYPES


def bearer_token(value: str) -> str | None:
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


#: how long a request's body may take to arrive, all of it (a half-sent body is a "slowloris")
BODY_SECONDS = 10.0


class BodyTooSlow(Exception):
    pass


def limited_receive(receive: Receive, limit: int, seconds: float = BODY_SECONDS) -> Receive:
    """``receive`` that raises ``BodyTooLarge`` once the body passes ``limit`` bytes, and
    ``BodyTooSlow`` when the whole body has not arrived ``seconds`` after the first read."""
    seen = 0
    deadline: float | None = None
    complete = False

    async def wrapped() -> Message:
        nonlocal seen, deadline, complete
        if complete:
            return await receive()
        loop = asyncio.get_running_loop()
        deadline = deadline if deadline is not None else loop.time() + seconds
        try:
            # a timeout scope, not wait_for: that wraps each read in a task of its own
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyTooSlow() from None
        if message["type"] == "http.request":
            complete = not message.get("more_body", False)
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge()
        return message

    return wrapped


def error_body(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}


def error_response(request: Request, status: int, message: str, code: str, headers: Mapping[str, str] | None = None) -> Response:
    response = JSONResponse(error_body(message, code), status_code=status, media_type=media_type(request))
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def rejection_status(response_data: Mapping[str, Any]) -> int | None:
    """The status of a response whose operation never executed; None when it did."""
    if response_data.get("data") is not None:
        return None
    errors = response_data.get("errors") or []
    codes = [(error.get("extensions") or {}).get("code") for error in errors if not error.get("path")]
    if not errors or len(codes) != len(errors) or not all(code in REJECTION_STATUS for code in codes):
        return None
    return max(REJECTION_STATUS[code] for code in codes)  # type: ignore[index]


#: request errors the spec has a legacy `application/json` client get with 200 (it SHOULD):
#: the document does not parse, does not validate, or its variables do not coerce
LEGACY_OK_CODES = frozenset({"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"})


def legacy_client(request: Request) -> bool:
    """A client that accepts only `application/json`, the spec's legacy media type (one that
    sends no Accept, or `*/*`, gets the status codes of `application/graphql-response+json`)."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and GRAPHQL_RESPONSE not in accept


def status_for(legacy: bool, response_data: Mapping[str, Any]) -> int | None:
    """The status of an operation that never executed, per GraphQL over HTTP: 4xx, except that
    a legacy `application/json` client gets 200 for parse, validation and variable failures
    (the gateway's own refusals, access and limits, keep theirs). None when it executed."""
    status = rejection_status(response_data)
    if status == 400 and legacy:
        codes = {(error.get("extensions") or {}).get("code") for error in response_data.get("errors") or []}
        if codes <= LEGACY_OK_CODES:
            return 200
    return status


def retry_after(response_data: Mapping[str, Any]) -> int | None:
    for error in response_data.get("errors") or []:
        seconds = (error.get("extensions") or {}).get("retryAfter")
        if isinstance(seconds, int):
            return seconds
    return None
