"""The centers' root fields: the centers, their compute units and capacity, the accelerator catalog."""

from __future__ import annotations

from importlib import metadata

import strawberry
from strawberry.types import Info

from graph.centers.types import AcceleratorType, Capacity, ComputeCenter, ComputeUnit, all_compute_units
from graph.core.context import Context
from graph.core.relay import Connection, connection_from_list
from resolvers.common.ids import decode_cursor, page_size


@strawberry.type
class CenterQuery:
    @strawberry.field(description="The centers of the network.")
    def centers(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[ComputeCenter]:
        centers = [ComputeCenter.from_center(center) for center in info.context.services.centers.all()]
        return connection_from_list(centers, page_size(first), decode_cursor(after))

    @strawberry.field(
        description="Compute units of every center, asked concurrently. A center that does not answer adds an error naming it."
    )
    async def compute_units(
        self, info: Info[Context, None], accelerator: str | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[ComputeUnit]:
        size, cursor = page_size(first), decode_cursor(after)
        return connection_from_list(await all_compute_units(info, accelerator), size, cursor)

    @strawberry.field(description="The whole network's capacity in standard compute units.")
    async def capacity(self, info: Info[Context, None]) -> Capacity:
        return Capacity.from_units(await all_compute_units(info, None))


@strawberry.type
class CatalogQuery:
    @strawberry.field(description="The device models the network knows and their standard units.")
    def accelerator_catalog(self, info: Info[Context, None]) -> list[AcceleratorType]:
        return [AcceleratorType.from_model(model) for model in info.context.services.centers.catalog]

    @strawberry.field(description="The catalog's version: the shipped table's date, with +local when the config changes it.")
    def accelerator_catalog_version(self, info: Info[Context, None]) -> str:
        return info.context.services.centers.catalog.version


@strawberry.type(description="This gateway: its stable id (peers know it by that) and its version.")
class GatewayInfo:
    id: str
    version: str


@strawberry.type
class GatewayQuery:
    @strawberry.field(description="This gateway's stable id and version: what a peer gateway asks first.")
    def gateway(self, info: Info[Context, None]) -> GatewayInfo:
        return GatewayInfo(id=info.context.services.jobs.gateway_id, version=gateway_version())


def gateway_version() -> str:
    try:
        return metadata.version("aicn")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
