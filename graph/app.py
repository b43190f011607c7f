"""The ASGI app: GraphQL (HTTP and WebSocket) and GraphiQL on /graphql, plus health probes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from cross_web import HTTPException
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from graph.context import Context
from graph.exports import export_routes
from graph.loaders import Loaders
from graph.schema import schema

if TYPE_CHECKING:
    from aicn.runtime import Runtime

GRAPHQL_RESPONSE = "application/graphql-response+json"
REQUEST_ERROR_CODES = {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"}


def error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


class GraphQLApp(GraphQL[Context, None]):
    """strawberry's ASGI view with coded JSON errors and GraphQL-over-HTTP status codes."""

    def __init__(self, runtime: "Runtime") -> None:
        super().__init__(schema, graphql_ide="graphiql")
        self.runtime = runtime

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:  # type: ignore[override]
        viewer = self.runtime.default_viewer
        assert viewer is not None, "the runtime has not started"
        return Context(runtime=self.runtime, viewer=viewer, loaders=Loaders(self.runtime, viewer), request=request, response=response)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as error:
            code = "METHOD_NOT_ALLOWED" if error.status_code == 405 else "BAD_REQUEST"
            response = JSONResponse(error_body(error.reason, code), status_code=error.status_code, media_type=_media_type(request))
        await response(scope, receive, send)

    def create_response(self, response_data: Any, sub_response: Response) -> Response:  # type: ignore[override]
        response = super().create_response(response_data, sub_response)
        request: Request | None = getattr(sub_response, "aicn_request", None)
        if request is not None:
            response.headers["content-type"] = _media_type(request)
        if isinstance(response_data, Mapping) and _is_request_error(response_data):
            response.status_code = 400
        return response

    async def get_sub_response(self, request: Request | WebSocket) -> Response:  # type: ignore[override]
        sub_response = await super().get_sub_response(request)
        sub_response.aicn_request = request  # type: ignore[attr-defined]
        return sub_response


def _media_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accept else "application/json"


def _is_request_error(response_data: Mapping[str, Any]) -> bool:
    """Parse, validation and variable errors: the request never executed."""
    if response_data.get("data") is not None:
        return False
    errors = response_data.get("errors") or []
    return bool(errors) and all(
        (error.get("extensions") or {}).get("code") in REQUEST_ERROR_CODES and not error.get("path") for error in errors
    )


def create_app(runtime: "Runtime") -> Starlette:
    graphql = GraphQLApp(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        try:
            async with runtime.db.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        if runtime.default_viewer is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready", "centers": len(runtime.registry.all())})

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/graphql", graphql, methods=["GET", "POST", "OPTIONS"]),
            WebSocketRoute("/graphql", graphql),
            *export_routes(runtime, lambda _request: runtime.default_viewer),
        ],
        lifespan=lifespan,
    )

