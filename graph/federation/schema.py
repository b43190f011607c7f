"""The federated schema: the plain roots and types, plus `_service` and `_entities`.

`_entities` resolves each representation (``{__typename, id}``) through `resolve_node`,
the same loaders, tenant rules, scopes and cost accounting as `node`: another account's
entity, or a representation whose id names another type, resolves to null. `_service`
answers the subgraph SDL (`schema.federation.graphql`), printed once.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

import strawberry
from strawberry.federation import Schema as FederationSchemaBase
from strawberry.federation.schema import FederationAny
from strawberry.printer import print_schema
from strawberry.tools import merge_types
from strawberry.types import Info

from graph.core.context import Context
from graph.core.inputs import build_inputs_from_plans
from graph.federation.directives import attached
from graph.nodes import resolve_node
from graph.schema import Query, schema_arguments
from graph.schema import schema as plain_schema
from resolvers.common.ids import from_global_id

#: 2.4 or later, so that routers accept the subgraph's subscriptions; 2.9 brings @cost and @listSize
FEDERATION_VERSION: Literal["2.9"] = "2.9"


@strawberry.type(name="_Service")
class SubgraphService:
    sdl: str


@strawberry.type
class ServiceQuery:
    @strawberry.field(name="_service", description="This subgraph's SDL, for a federation router.")
    def service(self, info: Info[Context, None]) -> SubgraphService:
        schema = info.schema
        assert isinstance(schema, FederatedSchema)
        return SubgraphService(sdl=schema.sdl)


class FederatedSchema(FederationSchemaBase):
    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        """As the plain schema: ShapeErrors logs the unexpected ones."""

    async def entities_resolver(self, info: Info, representations: list[FederationAny]) -> list[FederationAny]:  # type: ignore[override]
        """Each representation's object, or null: through `resolve_node`, as `node(id:)` is."""
        results: list[FederationAny] = []
        for representation in representations:
            results.append(await _entity(info, representation))
        return results

    @cached_property
    def sdl(self) -> str:
        with attached(plain_schema._schema):
            return print_schema(self).rstrip() + "\n"

    def as_str(self) -> str:
        return self.sdl


async def _entity(info: Info, representation: Any) -> Any:
    if not isinstance(representation, dict):
        return None
    type_name, global_id = representation.get("__typename"), representation.get("id")
    if not isinstance(global_id, str) or not isinstance(type_name, str):
        return None
    decoded = from_global_id(global_id)
    if decoded is None or decoded[0] != type_name:
        return None
    return await resolve_node(info, global_id)


def build_federated_schema() -> FederatedSchema:
    query = merge_types("Query", (Query, ServiceQuery))
    with attached(plain_schema._schema):
        built = FederatedSchema(query=query, federation_version=FEDERATION_VERSION, **schema_arguments())
    build_inputs_from_plans(built)
    return built


federated_schema = build_federated_schema()
