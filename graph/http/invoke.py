"""``POST /services/{serviceId}/invoke``: JSON in, the model's JSON out, with the same tokens and
tenant rules as GraphQL (another account's service answers exactly like a missing one: 404)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resolvers.access.viewer import SUBMIT, Viewer
from resolvers.services.records import ServiceRow
from resolvers.services.service import ServiceService

#: the HTTP status of each refusal (the body carries the code)
STATUS = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "SERVICE_NOT_FOUND": 404,
    "WRONG_PROTOCOL": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "INVALID_INPUT": 422,
    "SERVICE_NOT_READY": 503,
    "BACKEND_ERROR": 502,
    "REPLICA_FAILED": 502,
    "SERVICE_TIMEOUT": 504,
}

ViewerOf = Callable[[Request], Awaitable[Viewer | None]]


@dataclass(frozen=True)
class Refusal:
    message: str
    code: str

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 502)


async def service_of(services: ServiceService, viewer_of: ViewerOf, request: Request) -> ServiceRow | Refusal:
    """The service a request names, if its token may send requests to it."""
    viewer = await viewer_of(request)
    if viewer is None or not viewer.authenticated:
        return Refusal("a token with the submit scope is required", "UNAUTHENTICATED")
    if not viewer.can(SUBMIT):
        return Refusal("invoking a service needs the submit scope", "FORBIDDEN")
    service = await services.find(viewer, request.path_params["service_id"], recent=True)
    return service if service is not None else Refusal("no such service", "SERVICE_NOT_FOUND")


async def body_of(request: Request, limit: int) -> bytes | Refusal:
    """The request's body, refused once it is over ``limit`` bytes (before it is all read)."""
    declared = request.headers.get("content-length", "")
    too_large = Refusal(f"the input is larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return too_large
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return too_large
    return body


async def request_of(services: ServiceService, viewer_of: ViewerOf, request: Request) -> tuple[ServiceRow, bytes] | Refusal:
    """The service a request is for and its body, or why it is refused before it is sent."""
    service = await service_of(services, viewer_of, request)
    if isinstance(service, Refusal):
        return service
    body = await body_of(request, services.policy.max_payload_bytes)
    return body if isinstance(body, Refusal) else (service, body)


def refusal_response(document: dict[str, Any], refusal: Refusal, status: int | None = None) -> JSONResponse:
    """``document`` telling ``refusal``, with its status (a missing token also asks for a Bearer one)."""
    response = JSONResponse(document, status_code=status or refusal.status)
    if refusal.code == "UNAUTHENTICATED":
        response.headers["www-authenticate"] = "Bearer"
    return response


def _error(refusal: Refusal, status: int | None = None) -> JSONResponse:
    return refusal_response({"errors": [{"message": refusal.message, "extensions": {"code": refusal.code}}]}, refusal, status)


def invoke_routes(services: ServiceService, viewer_of: ViewerOf) -> list[Route]:
    async def invoke(request: Request) -> Response:
        read = await request_of(services, viewer_of, request)
        if isinstance(read, Refusal):
            return _error(read)
        service, body = read
        try:
            json.loads(body)
        except ValueError:
            return _error(Refusal("the body must be JSON", "BAD_REQUEST"), 400)
        answer = await services.invoke_raw(service, body)
        if not answer.ok:
            return _error(Refusal(answer.message or "", answer.code or "BACKEND_ERROR"))
        answered = Response(answer.raw, media_type="application/json")
        answered.headers["x-latency-ms"] = f"{answer.latency_ms or 0:.3f}"
        return answered

    return [Route("/services/{service_id}/invoke", invoke, methods=["POST"])]
