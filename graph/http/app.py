"""The ASGI app: GraphQL (HTTP and WebSocket) and GraphiQL on /graphql, the console on /console, plus health probes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from connectors.hops import VIA, VIA_HEADER, parse_via
from graph.core.context import Context
from graph.core.services import Services
from graph.gate.extension import unauthenticated
from graph.http import logs
from graph.http.downloads import download_routes
from graph.http.exports import export_routes
from graph.http.invoke import invoke_routes
from graph.http.metrics import metrics_route
from graph.http.openai import openai_routes
from graph.http.persisted import PersistedRefusal, cache_headers, resolve
from graph.http.request_ids import RequestIds, new_request_id, offered_id
from graph.http.rules import (
    BODY_SECONDS,
    BodyTooLarge,
    BodyTooSlow,
    bearer_token,
    csrf_blocked,
    error_response,
    is_loopback,
    legacy_client,
    limited_receive,
    media_type,
    retry_after,
    status_for,
    strict_json,
    wants_ide,
)
from graph.http.uploads import upload_routes
from graph.http.web import graphiql_page, web_routes
from graph.http.ws import MISSING, TransportWSHandler, offered_secret
from graph.loaders import Loaders
from graph.schema import schema
from resolvers.access.viewer import ANONYMOUS, Viewer

if TYPE_CHECKING:
    from aicn.security_settings import AuthSettings, GraphSettings, HttpSettings, LimitSettings
    from aicn.watch_settings import MetricsSettings


class FaceSettings(Protocol):
    """The settings the face reads."""

    @property
    def limits(self) -> LimitSettings: ...
    @property
    def auth(self) -> AuthSettings: ...
    @property
    def http(self) -> HttpSettings: ...
    @property
    def graph(self) -> GraphSettings: ...
    @property
    def metrics(self) -> MetricsSettings: ...


class Gateway(Protocol):
    """What the app serves: the composition root (aicn.runtime.Runtime), seen from the face."""

    @property
    def settings(self) -> FaceSettings: ...
    @property
    def services(self) -> Services: ...
    @property
    def default_viewer(self) -> Viewer | None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def database_answers(self) -> bool: ...
    def replica_report(self) -> dict[str, object]: ...


CSRF_MESSAGE = (
    "this request could have come from another site (CSRF): send it with Content-Type: application/json, "
    "an Authorization header, or a GraphQL-Require-Preflight header"
)
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="aicn"'}


class GraphQLApp(GraphQL[Context, None]):
    """strawberry's ASGI view, behind authentication and the GraphQL-over-HTTP rules of graph/http/rules.py."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, gateway: Gateway) -> None:
        settings = gateway.settings
        super().__init__(
            served_schema(settings.graph.federation),
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=settings.limits.max_subscriptions_per_connection,
            allowed_origins=settings.http.cors_origins,
        )
        self.gateway = gateway

    # ------------------------------------------------------------------ who is asking

    async def authenticate(self, request: Request) -> Viewer | None:
        """The caller of an HTTP request: None for a bad token, ANONYMOUS for none at all."""
        header = request.headers.get("authorization")
        if header is not None:
            secret = bearer_token(header)
            return await self.gateway.services.access.authenticate(secret) if secret else None
        return self._tokenless(request.client.host if request.client else None)

    def _tokenless(self, host: str | None) -> Viewer:
        if self.gateway.settings.auth.mode == "dev" and is_loopback(host) and self.gateway.default_viewer is not None:
            return self.gateway.default_viewer
        return ANONYMOUS

    @staticmethod
    def _throttle_key(viewer: Viewer, request: Request | WebSocket) -> str:
        if viewer.token_id is not None:
            return f"token:{viewer.token_id}"
        host = request.client.host if request.client else "unknown"
        return f"{'dev' if viewer.authenticated else 'anonymous'}:{host}"

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        assert self.gateway.default_viewer is not None, "the gateway has not started"
        viewer: Viewer = getattr(request.state, "viewer", ANONYMOUS)
        return Context(
            services=self.gateway.services,
            limits=self.gateway.settings.limits,
            viewer=viewer,
            make_loaders=Loaders,
            request=request,
            response=response,
            request_id=getattr(request.state, "request_id", None) or new_request_id(),
            throttle_key=self._throttle_key(viewer, request),
            websocket=isinstance(request, WebSocket),
            via=parse_via(request.headers.get(VIA_HEADER)),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        request: WebSocket = context.request
        offered = offered_secret(context.connection_params, request.headers)
        if offered is MISSING:
            viewer: Viewer | None = self._tokenless(request.client.host if request.client else None)
        else:
            viewer = await self.gateway.services.access.authenticate(offered) if isinstance(offered, str) else None
        if viewer is None or not viewer.authenticated:
            raise ConnectionRejectionError()
        context.become(viewer, self._throttle_key(viewer, request))
        return cast(UnsetType, UNSET)

    # ------------------------------------------------------------------ HTTP

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        request_id = state.get("request_id") or logs.request_id_from(offered_id(scope), new_request_id())
        state["request_id"] = request_id
        previous = logs.REQUEST_ID.set(request_id)
        try:
            if scope["type"] != "http":
                await super().__call__(scope, receive, send)
                return
            response = await self._serve(scope, receive)
            response.headers["x-request-id"] = request_id
            await response(scope, receive, send)
        finally:
            logs.REQUEST_ID.reset(previous)

    async def _serve(self, scope: Scope, receive: Receive) -> Response:
        limit = self.gateway.settings.limits.max_body_bytes
        request = Request(scope=scope, receive=limited_receive(receive, limit))
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            return error_response(request, 413, f"the request body is larger than {limit} bytes", "REQUEST_TOO_LARGE")
        if len(scope.get("query_string", b"")) > limit:
            return error_response(request, 414, f"the query string is longer than {limit} bytes", "REQUEST_TOO_LARGE")
        try:
            if request.method in ("GET", "POST") and not wants_ide(request):
                if csrf_blocked(request):
                    return error_response(request, 400, CSRF_MESSAGE, "BAD_REQUEST")
                viewer = await self.authenticate(request)
                if viewer is None:
                    message = unauthenticated("the token is not valid (unknown, revoked or expired)").message
                    return error_response(request, 401, message, "UNAUTHENTICATED", WWW_AUTHENTICATE)
                request.state.viewer = viewer
            via = parse_via(request.headers.get(VIA_HEADER))
            if self.gateway.services.jobs.gateway_id in via:
                message = f"this gateway is already on the call's path ({', '.join(via)}): answering would loop"
                return error_response(request, 409, message, "PEER_LOOP")
            token = VIA.set(via)  # a peer connector called while serving this request forwards the path
            try:
                return await self.run(request)
            finally:
                VIA.reset(token)
        except PersistedRefusal as refusal:
            return error_response(request, refusal.status, refusal.message, refusal.code)
        except BodyTooLarge:
            return error_response(request, 413, f"the request body is larger than {limit} bytes", "REQUEST_TOO_LARGE")
        except BodyTooSlow:
            return error_response(request, 408, f"the request body did not arrive within {BODY_SECONDS:g} s", "REQUEST_TIMEOUT")
        except HTTPException as error:
            return _http_error(request, error)

    async def execute_operation(
        self, request: Any, request_adapter: Any, request_data: Any, context: Any, root_value: Any, sub_response: Any
    ) -> Any:
        if isinstance(request_data, GraphQLRequestData) and isinstance(request, Request):
            viewer: Viewer = getattr(request.state, "viewer", ANONYMOUS)
            await resolve(
                request_data,
                viewer,
                self.gateway.settings.graph,
                self.gateway.services.operations,
                self.gateway.settings.limits.max_query_length,
            )
        return await super().execute_operation(request, request_adapter, request_data, context, root_value, sub_response)

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Not for a GET that names a persisted query by its hash (no `query`, but `extensions`)."""
        return request.query_params.get("extensions") is None and bool(super().should_render_graphql_ide(request))

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        """GraphiQL as built into the package (graph/http/web.py): every asset from this gateway."""
        return graphiql_page()

    def decode_json(self, data: str | bytes) -> object:
        return strict_json(data)

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        request: Request | None = getattr(sub_response, "aicn_request", None)
        legacy = request is not None and legacy_client(request)
        status = status_for(legacy, response_data) if isinstance(response_data, Mapping) else None
        if status is not None:  # it never executed: no `data` key, as the GraphQL-over-HTTP spec asks
            response_data = {key: value for key, value in response_data.items() if key != "data"}
        response = super().create_response(response_data, sub_response)
        if request is not None:
            response.headers["content-type"] = media_type(request)
            clean = isinstance(response_data, Mapping) and not response_data.get("errors")
            cache_headers(response, request.method, getattr(request.state, "viewer", ANONYMOUS), self.gateway.settings.graph, clean)
        if status is not None:
            response.status_code = status
            if status == 401:
                response.headers.update(WWW_AUTHENTICATE)
            seconds = retry_after(response_data)
            if status == 429 and seconds is not None:
                response.headers["retry-after"] = str(seconds)
        return response

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.aicn_request = request  # type: ignore[attr-defined]
        return sub_response


def served_schema(federation: bool) -> Any:
    """The plain schema, or the federated subgraph's (built on first use)."""
    if not federation:
        return schema
    from graph.federation.schema import federated_schema

    return federated_schema


def _http_error(request: Request, error: HTTPException) -> Response:
    if error.status_code == 405 or (request.method == "GET" and "not allowed when using GET" in error.reason):
        allow = "POST" if request.method == "GET" else "GET, POST"
        return error_response(request, 405, error.reason, "METHOD_NOT_ALLOWED", {"Allow": allow})
    code = "NOT_FOUND" if error.status_code == 404 else "BAD_REQUEST"
    return error_response(request, error.status_code, error.reason, code)


async def _to_graphiql(_request: Request) -> RedirectResponse:
    """``GET /`` leads a newcomer to GraphiQL."""
    return RedirectResponse("/graphql", status_code=307)


def create_app(gateway: Gateway) -> Starlette:
    logs.install()
    graphql = GraphQLApp(gateway)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if not await gateway.database_answers():
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        if gateway.default_viewer is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        # a replica that holds no lease is as ready as one that holds them all (README "Running several gateways")
        return JSONResponse({"status": "ready", "centers": len(gateway.services.centers.all()), **gateway.replica_report()})

    middleware: list[Middleware] = [Middleware(RequestIds)]
    origins = gateway.settings.http.cors_origins
    if origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "graphql-require-preflight"],
                expose_headers=["retry-after", "x-request-id"],
                max_age=600,
            )
        )
    return Starlette(
        routes=[
            Route("/", _to_graphiql, methods=["GET", "HEAD"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/graphql", graphql, methods=["GET", "POST", "OPTIONS"]),
            WebSocketRoute("/graphql", graphql),
            *export_routes(gateway.services.billing_reads, graphql.authenticate),
            *invoke_routes(gateway.services.services, graphql.authenticate),
            *openai_routes(gateway.services.services, graphql.authenticate),
            *([metrics_route(gateway.services.monitoring, gateway.settings.metrics)] if gateway.settings.metrics.enabled else []),
            *web_routes(),
            *(upload_routes(gateway.services.uploads, graphql.authenticate) if gateway.services.uploads else []),
            *(
                download_routes(gateway.services.downloads, graphql.authenticate, gateway.services.transfers)
                if gateway.services.downloads
                else []
            ),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
