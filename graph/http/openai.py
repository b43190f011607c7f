"""``/services/{serviceId}/v1/...``: an OPENAI service's OpenAI-compatible API, passed through as is
to a READY replica (chat/completions, completions, embeddings, models...), streamed answers
relayed chunk by chunk. Same tokens and tenant rules as ``/invoke``; the gateway's own refusals
are OpenAI-shaped (``{"error": {"message", "type", "code"}}``), since OpenAI clients parse that."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from graph.http.invoke import Refusal, ViewerOf, refusal_response, request_of
from resolvers.services.proxy import Passthrough, Relay
from resolvers.services.service import ServiceService

#: the OpenAI error ``type`` of each HTTP status the gateway refuses with
TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
}


def openai_error(refusal: Refusal) -> JSONResponse:
    error = {"message": refusal.message, "type": TYPES.get(refusal.status, "server_error"), "code": refusal.code}
    return refusal_response({"error": error}, refusal)


class RelayedStream(StreamingResponse):
    """A replica's event stream, sent on as it comes; the relay is closed however sending ends."""

    def __init__(self, relay: Relay) -> None:
        assert relay.stream is not None
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        super().__init__(relay.stream, status_code=relay.status, media_type=relay.content_type, headers=headers)
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.relay.close is not None:
                await self.relay.close()


def openai_routes(services: ServiceService, viewer_of: ViewerOf) -> list[Route]:
    async def passthrough(request: Request) -> Response:
        read = await request_of(services, viewer_of, request)
        if isinstance(read, Refusal):
            return openai_error(read)
        service, body = read
        outgoing = Passthrough(
            method=request.method,
            path=request.path_params["path"],
            query=request.url.query,
            body=body,
            content_type=request.headers.get("content-type"),
            accept=request.headers.get("accept"),
        )
        answer = await services.passthrough(service, outgoing)
        if not isinstance(answer, Relay):
            return openai_error(Refusal(answer.message or "", answer.code or "BACKEND_ERROR"))
        if answer.stream is not None:
            return RelayedStream(answer)
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    return [Route("/services/{service_id}/v1/{path:path}", passthrough, methods=["GET", "POST"])]
