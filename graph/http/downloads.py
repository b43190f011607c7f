"""``GET /datasets/{id}/download`` and ``GET /models/{id}/download``: the caller's data, streamed, with ranges.

Authorised like the graph (a bearer token with the read scope); another account's dataset
answers exactly like a missing one (404). One file is sent as it is; a folder as a tar.
A ``Range: bytes=a-b`` header gets 206 with that part; a range outside the file gets 416.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from graph.http.rules import bearer_token
from resolvers.access.viewer import READ, Viewer
from resolvers.common.ids import int_key
from resolvers.data.downloads import Download, Downloads, RangeNotSatisfiable, byte_range
from resolvers.data.objects import ObjectStoreFailed
from resolvers.data.transfers import TransferService


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status, headers=headers)


class ClosedStream(StreamingResponse):
    """Chunks read in worker threads, their source closed however sending ends. A client that goes away
    mid-way would otherwise leave the generator (an S3 body and its read-ahead thread, an open file)
    to the garbage collector."""

    def __init__(self, chunks: Generator[bytes, None, None], status_code: int, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(chunks, status_code=status_code, media_type=media_type, headers=headers)
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # no chunk is being read now (a worker thread's read is waited for, even when cancelled);
            # closing may join the read-ahead thread: in a thread, and shielded from the cancellation
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.chunks.close)


def download_routes(
    downloads: Downloads, viewer_of: Callable[[Request], Awaitable[Viewer | None]], transfers: TransferService | None = None
) -> list[Route]:
    def serve(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def download(request: Request) -> Response:
            viewer = await viewer_of(request)
            if viewer is None or not viewer.can(READ):
                return _error(401, "a token with the read scope is required", "UNAUTHENTICATED", {"www-authenticate": "Bearer"})
            key = int_key(request.path_params["node_id"], kind)
            try:
                found = await downloads.locate(kind, key, viewer.scope) if key is not None else None
            except ObjectStoreFailed as failed:
                return _error(503, failed.message, failed.code)
            if found is None:
                return _error(404, f"no such {kind.lower()} with a copy the gateway can read", "NOT_FOUND")
            return _stream(request, found)

        return download

    async def transfer_source(request: Request) -> Response:
        """A transfer's source, for the center or peer holding the token granted for that one transfer."""
        secret = bearer_token(request.headers.get("authorization") or "")
        key = int_key(request.path_params["node_id"], "Transfer")
        source = await transfers.granted_source(key, secret) if transfers is not None and key is not None and secret else None
        try:
            found = await downloads.of_uris([source]) if source is not None else None
        except ObjectStoreFailed as failed:
            return _error(503, failed.message, failed.code)
        if found is None:
            return _error(404, "no such transfer open to this token", "NOT_FOUND")
        return _stream(request, found)

    return [
        Route("/datasets/{node_id}/download", serve("Dataset"), methods=["GET"]),
        Route("/models/{node_id}/download", serve("Model"), methods=["GET"]),
        Route("/transfers/{node_id}/source", transfer_source, methods=["GET"]),
    ]


def _stream(request: Request, found: Download) -> Response:
    length = found.length
    try:
        wanted = byte_range(request.headers.get("range"), length)
    except RangeNotSatisfiable:
        return _error(416, f"the range is outside the {length} bytes", "RANGE_NOT_SATISFIABLE", {"content-range": f"bytes */{length}"})
    headers = {"accept-ranges": "bytes", "content-disposition": f'attachment; filename="{found.filename}"'}
    if wanted is None:
        headers["content-length"] = str(length)
        return ClosedStream(found.chunks(), 200, found.media_type, headers)
    first, last = wanted
    headers.update({"content-length": str(last - first + 1), "content-range": f"bytes {first}-{last}/{length}"})
    return ClosedStream(found.chunks(first, last), 206, found.media_type, headers)
