"""DataLoaders, one set per request: each kind of lookup is one query per batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from strawberry.dataloader import DataLoader

from graph.billing.loaders import BillingLoaders
from resolvers.access.viewer import Viewer
from resolvers.centers.registry import ComputeUnitInfo
from resolvers.common.errors import CenterFault
from store import accounts as account_store
from store import datasets as dataset_store
from store import jobs as job_store
from store import tenancy
from store import tokens as token_store
from store.auth_tables import AccountMemberRow, ApiTokenRow
from store.tables import AccountRow, DatasetReplicaRow, DatasetRow, JobRow, ModelRow

if TYPE_CHECKING:
    from aicn.runtime import Runtime

K = TypeVar("K")
V = TypeVar("V")


class Loaders:
    def __init__(self, runtime: Runtime, viewer: Viewer) -> None:
        self.runtime = runtime
        self.viewer = viewer
        db = runtime.db
        scope = viewer.scope

        def keyed(fetch: Callable[[Any, list[K]], Awaitable[dict[K, V]]]) -> DataLoader[K, V | None]:
            async def load(keys: list[K]) -> list[V | None]:
                async with db.read() as session:
                    found = await fetch(session, keys)
                return [found.get(key) for key in keys]

            return DataLoader(load_fn=load)

        def grouped(fetch: Callable[[Any, list[K]], Awaitable[dict[K, V]]], empty: Any) -> DataLoader[K, V]:
            async def load(keys: list[K]) -> list[V]:
                async with db.read() as session:
                    found = await fetch(session, keys)
                return [found.get(key, empty) for key in keys]

            return DataLoader(load_fn=load)

        self.account: DataLoader[int, AccountRow | None] = keyed(
            lambda s, ids: account_store.accounts_by_ids(s, [i for i in ids if scope is None or i == scope])
        )
        self.job: DataLoader[int, JobRow | None] = keyed(lambda s, ids: job_store.jobs_by_ids(s, ids, scope))
        self.dataset: DataLoader[int, DatasetRow | None] = keyed(lambda s, ids: dataset_store.datasets_by_ids(s, ids, scope))
        self.model: DataLoader[int, ModelRow | None] = keyed(lambda s, ids: dataset_store.models_by_ids(s, ids, scope))
        self.inputs: DataLoader[int, list[DatasetRow]] = grouped(lambda s, ids: _own_inputs(s, ids, scope), [])
        self.trained_model: DataLoader[int, ModelRow | None] = keyed(lambda s, ids: dataset_store.models_by_training_jobs(s, ids, scope))
        self.replicas: DataLoader[int, list[DatasetReplicaRow]] = grouped(dataset_store.replicas_by_datasets, [])
        self.tokens: DataLoader[int, list[ApiTokenRow]] = grouped(token_store.tokens_by_accounts, [])
        self.members: DataLoader[int, list[AccountMemberRow]] = grouped(tenancy.members_by_accounts, [])
        self.capacity: DataLoader[int, list[ComputeUnitInfo]] = DataLoader(load_fn=self._load_capacity)
        self.billing = BillingLoaders(runtime, viewer)

    async def _load_capacity(self, center_ids: Sequence[int]) -> list[list[ComputeUnitInfo] | BaseException]:
        """Every asked center at once, each under its own deadline."""

        registry = self.runtime.registry
        centers = [registry.get(center_id) for center_id in center_ids]

        async def one(center: Any) -> list[ComputeUnitInfo] | BaseException:
            if center is None:
                return []
            try:
                return await registry.capacity_of(center)
            except CenterFault as fault:
                return fault

        return list(await asyncio.gather(*(one(center) for center in centers)))


async def _own_inputs(session: Any, job_ids: list[int], scope: int | None) -> dict[int, list[DatasetRow]]:
    """A job's inputs that the viewer may see (an admin may have given a job another account's data)."""
    grouped = await job_store.inputs_by_jobs(session, job_ids)
    if scope is None:
        return grouped
    return {job_id: [row for row in rows if row.owner_id == scope] for job_id, rows in grouped.items()}
