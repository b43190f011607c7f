"""``POST /datasets/upload`` and ``POST /models/upload``: a file's bytes into the gateway's artifact store.

Authorised like the graph's mutations (a bearer token with the submit scope). The query
string names it (``name``, optional ``version``, and ``format`` or ``framework``); the
``X-Checksum`` header says what the bytes hash to, ``Content-Length`` how many there are.
A folder comes as a tar stream with ``Content-Type: application/x-tar`` and the folder's
checksum. A refusal is JSON ``{"errors": [{"message", "extensions": {"code"}}]}`` with its
status; success is ``201`` with the new record's id, uri, size and checksum, or ``200`` with
the record the same upload (name, version, checksum) made before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graph.http.rules import error_response
from resolvers.access.viewer import SUBMIT, Viewer
from resolvers.common.ids import to_global_id
from resolvers.data.uploads import ArtifactStore, Upload, UploadRefused


def upload_routes(store: ArtifactStore, viewer_of: Callable[[Request], Awaitable[Viewer | None]]) -> list[Route]:
    def receive(kind: str, label: str) -> Callable[[Request], Awaitable[Response]]:
        async def upload(request: Request) -> Response:
            viewer = await viewer_of(request)
            if viewer is None or not viewer.can(SUBMIT):
                return error_response(
                    request, 401, "a token with the submit scope is required", "UNAUTHENTICATED", {"www-authenticate": "Bearer"}
                )
            length = request.headers.get("content-length")
            wanted = Upload(
                kind=kind,
                name=request.query_params.get("name", ""),
                version=request.query_params.get("version"),
                checksum=request.headers.get("x-checksum"),
                length=int(length) if length is not None and length.isdigit() else None,
                label=request.query_params.get(label),
                folder=request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/x-tar",
            )
            try:
                received = await store.receive(viewer, wanted, request.stream())
            except UploadRefused as refused:
                return error_response(request, refused.status, refused.message, refused.code)
            except ClientDisconnect:
                return error_response(request, 400, "the client went away before the whole body came", "LENGTH_MISMATCH")
            row = received.row
            body = {"id": to_global_id(kind, row.id), "name": row.name, "version": row.version, "uri": row.uri}
            body.update(sizeBytes=str(row.size_bytes), checksum=row.checksum or "")
            return JSONResponse({"data": body}, status_code=201 if received.created else 200)

        return upload

    return [
        Route("/datasets/upload", receive("Dataset", "format"), methods=["POST"]),
        Route("/models/upload", receive("Model", "framework"), methods=["POST"]),
    ]
