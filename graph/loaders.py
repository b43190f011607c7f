"""The loaders of one request: ids become nodes in batches, one query per kind of lookup.

They sit above the domains, so a domain's field can reach another domain's nodes
(a job's owner, a dataset's users) without importing it: arrows point down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from graph.access.accounts import Account
from graph.access.tokens import AccountMember, ApiToken
from graph.billing.loaders import BillingLoaders
from graph.core.batching import SharedLoader, grouped, node_lists, nodes
from graph.core.context import Context
from graph.core.relay import Connection
from graph.core.services import Services
from graph.data.types import Dataset, Model
from graph.jobs.inputs import JobFilter
from graph.jobs.lists import list_jobs
from graph.jobs.types import Job
from graph.webhooks.loaders import WebhookLoaders
from resolvers.access.viewer import Viewer
from resolvers.centers.registry import ComputeUnitInfo
from resolvers.common.errors import CenterFault
from resolvers.data.records import DatasetReplicaRow


class Loaders:
    def __init__(self, services: Services, viewer: Viewer) -> None:
        self.services = services
        scope = viewer.scope
        accounts, jobs, data = services.account_reads, services.job_reads, services.data_reads
        self.account: DataLoader[int, Account | None] = nodes(lambda ids: accounts.by_ids(ids, scope), Account.from_row)
        self.tokens: DataLoader[int, list[ApiToken]] = node_lists(accounts.tokens, ApiToken.from_row)
        self.members: DataLoader[int, list[AccountMember]] = node_lists(accounts.members, AccountMember.from_row)
        self.job: DataLoader[int, Job | None] = nodes(lambda ids: jobs.by_ids(ids, scope), Job.from_row)
        self.inputs: DataLoader[int, list[Dataset]] = node_lists(lambda ids: jobs.inputs(ids, scope), Dataset.from_row)
        self.dataset: DataLoader[int, Dataset | None] = nodes(lambda ids: data.datasets_by_ids(ids, scope), Dataset.from_row)
        self.model: DataLoader[int, Model | None] = nodes(lambda ids: data.models_by_ids(ids, scope), Model.from_row)
        self.trained_model: DataLoader[int, Model | None] = nodes(lambda ids: data.models_by_training_jobs(ids, scope), Model.from_row)
        self.replicas: DataLoader[int, list[DatasetReplicaRow]] = grouped(data.replicas, [])
        self.capacity: DataLoader[int, list[ComputeUnitInfo]] = SharedLoader(load_fn=self._load_capacity)
        self.billing = BillingLoaders(services, viewer)
        self.webhooks = WebhookLoaders(services, viewer)

    async def jobs(
        self, info: Info[Context, None], *, first: int | None, after: str | None, filter: JobFilter | None, center_key: int
    ) -> Connection[Job]:
        """A center's jobs (the centers' domain lies below the jobs')."""
        return await list_jobs(info, first=first, after=after, filter=filter, center_key=center_key)

    async def _load_capacity(self, center_ids: Sequence[int]) -> list[list[ComputeUnitInfo] | BaseException]:
        """Every asked center at once, each under its own deadline."""
        registry = self.services.centers

        async def one(center_id: int) -> list[ComputeUnitInfo] | BaseException:
            center = registry.get(center_id)
            if center is None:
                return []
            try:
                return await registry.capacity_of(center)
            except CenterFault as fault:
                return fault

        return list(await asyncio.gather(*(one(center_id) for center_id in center_ids)))
