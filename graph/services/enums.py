"""The services' enums in the graph (the resolvers' own members, made GraphQL enums in place)."""

from __future__ import annotations

import strawberry

from resolvers.services import states

ServiceState = states.ServiceState
ServiceProtocol = states.ServiceProtocol
strawberry.enum(ServiceState)
strawberry.enum(ServiceProtocol)
