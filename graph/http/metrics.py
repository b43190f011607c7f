"""``GET /metrics``: the Prometheus text format, for a scraper.

It answers without an API token: a scraper is not an account, and what it reads is aggregate
(counts, latencies, center names, operation names; no account, job or secret). Still, those
say how busy the gateway is and which operations clients run, so with no ``[metrics] token``
set only loopback callers are answered (a scraper on this host, or a sidecar); set a token
(scrapers send ``Authorization: Bearer <token>``) or ``public = true`` to serve it further.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graph.http.rules import bearer_token, is_loopback
from resolvers.monitoring.snapshot import CONTENT_TYPE, Monitoring

if TYPE_CHECKING:
    from aicn.watch_settings import MetricsSettings


def metrics_route(monitoring: Monitoring, settings: MetricsSettings) -> Route:
    async def metrics(request: Request) -> Response:
        refusal = _refusal(request, settings)
        if refusal is not None:
            return refusal
        return Response(await monitoring.exposition(), media_type=CONTENT_TYPE)

    return Route("/metrics", metrics, methods=["GET"])


def _refusal(request: Request, settings: MetricsSettings) -> Response | None:
    if settings.token is not None:
        offered = bearer_token(request.headers.get("authorization", "")) or ""
        if not hmac.compare_digest(offered.encode(), settings.token.get_secret_value().encode()):
            return JSONResponse(
                {"error": "UNAUTHENTICATED", "message": "send the metrics token as Authorization: Bearer <token>"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="aicn-metrics"'},
            )
        return None
    if not settings.public and not is_loopback(request.client.host if request.client else None):
        message = "metrics are served to loopback callers only: set [metrics] token (or public = true) to scrape from elsewhere"
        return JSONResponse({"error": "FORBIDDEN", "message": message}, status_code=403)
    return None
