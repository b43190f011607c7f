"""WebSocket (graphql-transport-ws) specifics: the token in `connection_init`, and limits.

The token comes in the `connection_init` payload as ``{"authorization": "Bearer ..."}``
(GraphiQL sends its Headers tab this way, as ``Authorization``) or ``{"token": "..."}``,
or in the upgrade request's ``Authorization`` header. A connection without a valid one
is closed with 4403 (Forbidden), as the protocol says for a refused `connection_init`;
a `subscribe` before an accepted `connection_init` is closed with 4401.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

from graph.http import bearer_token

TOO_MANY_OPERATIONS = "TOO_MANY_SUBSCRIPTIONS"


class _Missing:
    pass


MISSING = _Missing()


def offered_secret(params: Mapping[str, Any] | None, upgrade_headers: Mapping[str, str]) -> str | None | _Missing:
    """The token a connection offers; None when it offers something unusable, MISSING when nothing."""
    lowered = {str(key).lower(): value for key, value in (params or {}).items()}
    if "authorization" in lowered:
        value = lowered["authorization"]
        return bearer_token(value) if isinstance(value, str) else None
    if "token" in lowered:
        value = lowered["token"]
        return value.strip() or None if isinstance(value, str) else None
    header = upgrade_headers.get("authorization")
    if header is not None:
        return bearer_token(header)
    return MISSING


class TransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    """strawberry's handler, with a coded error when a connection has too many operations."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            error = GraphQLError(
                f"at most {limit} operations may run at once on one connection",
                extensions={"code": TOO_MANY_OPERATIONS, "maximum": limit},
            )
            await self.send_message({"id": message["id"], "type": "error", "payload": [error.formatted]})
            return
        await super().handle_subscribe(message)
