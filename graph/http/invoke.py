"""``POST /services/{serviceId}/invoke``: JSON in, the model's JSON out, with the same tokens and
tenant rules as GraphQL (another account's service answers exactly like a missing one: 404)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resolvers.access.viewer import SUBMIT, Viewer
from resolvers.services.service import ServiceService

#: the HTTP status of each refusal (the body carries the code)
STATUS = {
    "SERVICE_NOT_FOUND": 404,
    "PAYLOAD_TOO_LARGE": 413,
    "INVALID_INPUT": 422,
    "SERVICE_NOT_READY": 503,
    "BACKEND_ERROR": 502,
    "REPLICA_FAILED": 502,
    "SERVICE_TIMEOUT": 504,
}


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status)


def invoke_routes(services: ServiceService, viewer_of: Callable[[Request], Awaitable[Viewer | None]]) -> list[Route]:
    async def invoke(request: Request) -> Response:
        viewer = await viewer_of(request)
        if viewer is None or not viewer.authenticated:
            response = _error(401, "a token with the submit scope is required", "UNAUTHENTICATED")
            response.headers["www-authenticate"] = "Bearer"
            return response
        if not viewer.can(SUBMIT):
            return _error(403, "invoking a service needs the submit scope", "FORBIDDEN")
        service = await services.find(viewer, request.path_params["service_id"], recent=True)
        if service is None:
            return _error(404, "no such service", "SERVICE_NOT_FOUND")
        limit = services.policy.max_payload_bytes
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            return _error(413, f"the input is larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _error(413, f"the input is larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
        try:
            json.loads(body)
        except ValueError:
            return _error(400, "the body must be JSON", "BAD_REQUEST")
        answer = await services.invoke_raw(service, body)
        if not answer.ok:
            return _error(STATUS.get(answer.code or "", 502), answer.message or "", answer.code or "BACKEND_ERROR")
        answered = Response(answer.raw, media_type="application/json")
        answered.headers["x-latency-ms"] = f"{answer.latency_ms or 0:.3f}"
        return answered

    return [Route("/services/{service_id}/invoke", invoke, methods=["POST"])]
