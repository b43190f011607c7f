"""Any object by its global id: the `node` and `nodes` root fields."""

from __future__ import annotations

import asyncio
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from graph.centers.types import ComputeCenter, ComputeUnit
from graph.core.context import Context
from graph.core.relay import Node
from resolvers.common.errors import BadRequest
from resolvers.common.ids import from_global_id, parse_key

MAX_NODES = 100


async def resolve_node(info: Info[Context, None], global_id: str) -> Node | None:
    """Any object by its global id; another account's id answers exactly like a missing one."""
    decoded = from_global_id(global_id)
    if decoded is None:
        return None
    type_name, key = decoded
    loaders = info.context.loaders
    registry = info.context.services.centers
    number = parse_key(key)
    if type_name == "ComputeCenter" and number is not None:
        center = registry.get(number)
        return ComputeCenter.from_center(center) if center else None
    if type_name == "ComputeUnit":
        center_key = parse_key(key.partition("/")[0])
        if center_key is None or registry.get(center_key) is None:
            return None
        for unit in await loaders.capacity.load(center_key):
            if unit.key == key:
                return ComputeUnit.from_info(unit, registry.currency)
        return None
    if number is None:
        return None
    by_number: dict[str, DataLoader[int, Any]] = {
        "Job": loaders.job,
        "Dataset": loaders.dataset,
        "Model": loaders.model,
        "Account": loaders.account,
        "Bill": loaders.billing.bill,
        "UsageRecord": loaders.billing.usage,
        "WebhookEndpoint": loaders.webhooks.endpoint,
    }
    loader = by_number.get(type_name)
    node: Node | None = await loader.load(number) if loader is not None else None
    return node


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        return await resolve_node(info, id)

    @strawberry.field(description="Many objects by their global ids (at most 100), in the order asked; null where none.")
    async def nodes(self, info: Info[Context, None], ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise BadRequest(f"at most {MAX_NODES} ids at once")
        return list(await asyncio.gather(*(resolve_node(info, global_id) for global_id in ids)))
