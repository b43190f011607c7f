"""Persisted operations over HTTP, in the convention Apollo clients send.

A request with ``extensions.persistedQuery`` (``version: 1``, ``sha256Hash``) and no
text runs the registered text of that hash, or is answered ``PERSISTED_QUERY_NOT_FOUND``
(the client then sends the text with the hash). A text with a hash is registered once its
SHA-256 matches (``PERSISTED_QUERY_HASH_MISMATCH`` otherwise); registering needs a token.
In safelist mode only texts an admin pushed (`aicn operations push`) run:
``OPERATION_NOT_SAFELISTED``; admin tokens are exempt, so operators keep GraphiQL.

GET answers of queries may be kept by a CDN or browser for ``graph.get_max_age``
seconds: ``Cache-Control: public`` only when no one is authenticated (introspection and
``_service``: the same for everyone), ``private`` otherwise, so that no shared cache
ever gives one token's answer to another; ``Vary: Authorization`` either way. Answers with
errors and every POST answer are ``no-store``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response
from strawberry.http import GraphQLRequestData

from resolvers.access.viewer import Viewer
from resolvers.operations.service import PersistedOperations, sha256_of

if TYPE_CHECKING:
    from aicn.security_settings import GraphSettings

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
NOT_SAFELISTED = "OPERATION_NOT_SAFELISTED"


class PersistedRefusal(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


async def resolve(
    data: GraphQLRequestData, viewer: Viewer, settings: GraphSettings, operations: PersistedOperations, max_length: int
) -> None:
    """Fill in ``data.query`` from the store, register it, or refuse it."""
    mode = settings.persisted_queries
    extension = (data.extensions or {}).get("persistedQuery")
    if extension is None:
        if mode == "safelist" and not viewer.is_admin and data.query is not None:
            found = await operations.find(sha256_of(data.query))
            if found is None or not found.safelisted:
                raise PersistedRefusal(
                    400, "only safelisted operations run here: send one `aicn operations push` registered", NOT_SAFELISTED
                )
        return
    if mode == "off":
        raise PersistedRefusal(400, "persisted queries are off on this gateway: send the query text", NOT_SUPPORTED)
    if not isinstance(extension, dict) or extension.get("version") != 1 or not isinstance(extension.get("sha256Hash"), str):
        raise PersistedRefusal(400, "extensions.persistedQuery needs version 1 and a sha256Hash string", "BAD_REQUEST")
    wanted = extension["sha256Hash"].lower()
    if data.query is None:
        found = await operations.find(wanted)
        if found is None or (mode == "safelist" and not found.safelisted and not viewer.is_admin):
            # Apollo clients look for this message and code, then send the text
            raise PersistedRefusal(200, "PersistedQueryNotFound", NOT_FOUND)
        data.query = found.text
        return
    if sha256_of(data.query) != wanted:
        raise PersistedRefusal(400, "the sha256Hash does not match the SHA-256 of the query text", MISMATCH)
    if mode == "safelist":
        found = await operations.find(wanted)
        if (found is None or not found.safelisted) and not viewer.is_admin:
            raise PersistedRefusal(400, "only safelisted operations run here", NOT_SAFELISTED)
        return
    if viewer.authenticated and len(data.query) <= max_length:
        await operations.register(data.query)


def cache_headers(response: Response, method: str, viewer: Viewer, settings: GraphSettings, executed_cleanly: bool) -> None:
    if method == "GET" and executed_cleanly and response.status_code == 200:
        audience = "private" if viewer.authenticated else "public"
        response.headers["cache-control"] = f"{audience}, max-age={settings.get_max_age}"
    else:
        response.headers["cache-control"] = "no-store"
    response.headers["vary"] = "Authorization, Accept"
