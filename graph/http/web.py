"""The browser faces, built by scripts/build-web.sh from web/ into static/ (package data, no Node at run time):
GraphiQL's page for ``GET /graphql``, the console at ``/console``, and their hashed assets under ``/assets``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parent / "static"

#: Every script, style, font and connection from the gateway itself: a page that tried anything else would fail loudly.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
PAGE_HEADERS = {"content-security-policy": CONTENT_SECURITY_POLICY, "cache-control": "no-cache", "x-content-type-options": "nosniff"}


@cache
def page(name: str) -> str:
    """A built page's HTML (read once: the files change only with a new build of the package)."""
    return (STATIC / f"{name}.html").read_text(encoding="utf-8")


def graphiql_page() -> HTMLResponse:
    return HTMLResponse(page("graphiql"), headers=PAGE_HEADERS)


async def console_page(_request: Request) -> Response:
    """The console is one page; its views are the URL's #fragment, so every /console path serves it."""
    return HTMLResponse(page("console"), headers=PAGE_HEADERS)


class HashedAssets(StaticFiles):
    """The bundler names each asset by its content's hash: a browser may keep it for good."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
            response.headers["x-content-type-options"] = "nosniff"
        return response


def web_routes() -> list[BaseRoute]:
    return [
        Route("/console", console_page, methods=["GET", "HEAD"]),
        Route("/console/{rest:path}", console_page, methods=["GET", "HEAD"]),
        Mount("/assets", HashedAssets(directory=STATIC / "assets"), name="assets"),
    ]
