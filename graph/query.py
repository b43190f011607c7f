"""The Query root."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from graph.access.accounts import Account
from graph.centers.types import AcceleratorType, Capacity, ComputeCenter, ComputeUnit, all_compute_units
from graph.core.context import Context
from graph.core.relay import Connection, Node, connection_from_list, connection_from_page
from graph.data.types import Dataset, Model
from graph.jobs.mutations import ResourceRequestInput
from graph.jobs.offers import Offer, resolve_offers
from graph.jobs.types import Job, JobFilter, PlacementPolicy, list_jobs
from resolvers.common.errors import BadRequest
from resolvers.common.ids import decode_cursor, from_global_id, page_size
from store import datasets as dataset_store
from store.paging import Page

NodeT = TypeVar("NodeT")

MAX_NODES = 100


async def resolve_node(info: Info[Context, None], global_id: str) -> Node | None:
    """Any object by its global id; another account's id answers exactly like a missing one."""
    decoded = from_global_id(global_id)
    if decoded is None:
        return None
    type_name, key = decoded
    loaders = info.context.loaders
    registry = info.context.runtime.registry
    if type_name == "ComputeCenter" and key.isdigit():
        center = registry.get(int(key))
        return ComputeCenter.from_center(center) if center else None
    if type_name == "ComputeUnit":
        center_key, _, _rest = key.partition("/")
        if not center_key.isdigit() or registry.get(int(center_key)) is None:
            return None
        for unit in await loaders.capacity.load(int(center_key)):
            if unit.key == key:
                return ComputeUnit.from_info(unit, registry.currency)
        return None
    if not key.isdigit() or int(key) >= 2**63:
        return None
    number = int(key)
    if type_name == "Job":
        row = await loaders.job.load(number)
        return Job.from_row(row) if row else None
    if type_name == "Dataset":
        dataset = await loaders.dataset.load(number)
        return Dataset.from_row(dataset) if dataset else None
    if type_name == "Model":
        model = await loaders.model.load(number)
        return Model.from_row(model) if model else None
    if type_name in ("Bill", "UsageRecord"):
        from graph.billing.types import resolve_billing_node

        return await resolve_billing_node(info, type_name, number)
    if type_name == "Account":
        viewer = info.context.viewer
        if viewer.scope is not None and number != viewer.scope:
            return None
        account = await loaders.account.load(number)
        return Account.from_row(account) if account else None
    return None


async def owned_page(
    info: Info[Context, None],
    first: int | None,
    after: str | None,
    fetch: Callable[..., Awaitable[Page[Any]]],
    count_all: Callable[[Any, int | None], Awaitable[int]],
    convert: Callable[[Any], NodeT],
) -> Connection[NodeT]:
    """A keyset page of the caller's own rows (all rows for admins)."""
    size, cursor, scope, db = page_size(first), decode_cursor(after), info.context.viewer.scope, info.context.runtime.db
    async with db.read() as session:
        page = await fetch(session, scope, first=size, after=cursor)

    async def count() -> int:
        async with db.read() as session:
            return await count_all(session, scope)

    return connection_from_page(page, convert, lambda row: row.id, count)


@strawberry.type
class Query:
    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        return await resolve_node(info, id)

    @strawberry.field(description="Many objects by their global ids (at most 100), in the order asked; null where none.")
    async def nodes(self, info: Info[Context, None], ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise BadRequest(f"at most {MAX_NODES} ids at once")
        return list(await asyncio.gather(*(resolve_node(info, global_id) for global_id in ids)))

    @strawberry.field(description="The account of the caller.")
    async def viewer(self, info: Info[Context, None]) -> Account:
        row = await info.context.loaders.account.load(info.context.viewer.account_id)
        assert row is not None
        return Account.from_row(row)

    @strawberry.field(description="The centers of the network.")
    def centers(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[ComputeCenter]:
        centers = [ComputeCenter.from_center(center) for center in info.context.runtime.registry.all()]
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

    @strawberry.field(description="Every center's quote for a resource request, asked concurrently, best first by `policy`.")
    async def offers(
        self, info: Info[Context, None], request: ResourceRequestInput, policy: PlacementPolicy = PlacementPolicy.CHEAPEST
    ) -> list[Offer]:
        return await resolve_offers(info, request, policy)

    @strawberry.field(description="The device models the network knows and their standard units.")
    def accelerator_catalog(self, info: Info[Context, None]) -> list[AcceleratorType]:
        return [AcceleratorType.from_model(model) for model in info.context.runtime.registry.catalog]

    @strawberry.field(description="The catalog's version: the shipped table's date, with +local when the config changes it.")
    def accelerator_catalog_version(self, info: Info[Context, None]) -> str:
        return info.context.runtime.registry.catalog.version

    @strawberry.field(description="The caller's jobs, newest first.")
    async def jobs(
        self, info: Info[Context, None], filter: JobFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[Job]:
        return await list_jobs(info, first=first, after=after, filter=filter)

    @strawberry.field(description="The caller's datasets, newest first.")
    async def datasets(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[Dataset]:
        return await owned_page(info, first, after, dataset_store.datasets_page, dataset_store.count_datasets, Dataset.from_row)

    @strawberry.field(description="The caller's models, newest first.")
    async def models(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[Model]:
        return await owned_page(info, first, after, dataset_store.models_page, dataset_store.count_models, Model.from_row)
