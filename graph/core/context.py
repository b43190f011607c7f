"""Per-request context: who asks, the services, the loaders, and partial-answer errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql.error import GraphQLError

from graph.core.services import Services
from resolvers.access.viewer import Viewer

if TYPE_CHECKING:
    from aicn.security_settings import LimitSettings
    from graph.loaders import Loaders


@dataclass
class Context:
    services: Services
    limits: LimitSettings
    viewer: Viewer
    #: builds the request's loaders for a viewer (graph.loaders sits above the domains that use them)
    make_loaders: Callable[[Services, Viewer], Loaders]
    request: Any = None
    response: Any = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    partial_errors: list[GraphQLError] = field(default_factory=list)
    #: whose rate-limit bucket pays for this request's operations (a token, or an address)
    throttle_key: str = ""
    #: a WebSocket connection: operations arrive over time, so each re-checks the token
    websocket: bool = False
    #: the `connection_init` payload of a WebSocket (strawberry sets it)
    connection_params: dict[str, Any] | None = None
    #: the gateways this request came through (the ``aicn-via`` header of a peer's call), origin first
    via: tuple[str, ...] = ()
    _loaders: Loaders | None = field(init=False, default=None, repr=False)

    @property
    def loaders(self) -> Loaders:
        """The loaders, built on first use: a subscription event answered from another
        subscriber's shared execution never builds any (graph/core/sharing.py)."""
        if self._loaders is None:
            self._loaders = self.make_loaders(self.services, self.viewer)
        return self._loaders

    def become(self, viewer: Viewer, throttle_key: str) -> None:
        """Act as ``viewer`` from now on (a WebSocket after its `connection_init`)."""
        self.viewer = viewer
        self.throttle_key = throttle_key
        self.refresh_loaders()

    def refresh_loaders(self) -> None:
        """Forget cached lookups: a subscription's context lives as long as its connection."""
        self._loaders = None
