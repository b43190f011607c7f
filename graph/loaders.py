"""The loaders of one request: ids become nodes in batches, one query per kind of lookup.

They sit above the domains, so a domain's field can reach another domain's nodes
(a job's owner, a dataset's users) without importing it: arrows point down.
"""

from __future__ import annotations

import asyncio
from functools import cached_property

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from graph.access.accounts import Account
from graph.access.tokens import AccountMember, ApiToken
from graph.billing.loaders import BillingLoaders
from graph.core.batching import CallPerKey, complete, grouped, node_lists, nodes
from graph.core.context import Context
from graph.core.relay import Connection
from graph.core.services import Services
from graph.data.transfers import Transfer
from graph.data.types import Dataset, Model
from graph.jobs.inputs import JobFilter
from graph.jobs.lists import list_jobs
from graph.jobs.types import Job
from graph.services.lists import list_services
from graph.services.types import InferenceService
from graph.webhooks.loaders import WebhookLoaders
from resolvers.access.viewer import Viewer
from resolvers.centers.registry import ComputeUnitInfo
from resolvers.data.records import DatasetReplicaRow, ModelReplicaRow


class Loaders:
    """A request's loaders, each made on first use (most requests touch one or two of them)."""

    def __init__(self, services: Services, viewer: Viewer) -> None:
        self.services = services
        self.viewer = viewer
        self.scope = viewer.scope
        self._queue_positions: asyncio.Task[dict[int, int]] | None = None

    @cached_property
    def account(self) -> DataLoader[int, Account | None]:
        accounts = self.services.account_reads
        scope = self.scope
        return nodes(lambda ids: accounts.by_ids(ids, scope), Account.from_row)

    @cached_property
    def tokens(self) -> DataLoader[int, list[ApiToken]]:
        accounts = self.services.account_reads
        return node_lists(accounts.tokens, ApiToken.from_row)

    @cached_property
    def members(self) -> DataLoader[int, list[AccountMember]]:
        accounts = self.services.account_reads
        return node_lists(accounts.members, AccountMember.from_row)

    @cached_property
    def job(self) -> DataLoader[int, Job | None]:
        jobs = self.services.job_reads
        scope = self.scope
        return nodes(lambda ids: jobs.by_ids(ids, scope), Job.from_row)

    @cached_property
    def inputs(self) -> DataLoader[int, list[Dataset]]:
        jobs = self.services.job_reads
        scope = self.scope
        return node_lists(lambda ids: jobs.inputs(ids, scope), Dataset.from_row)

    @cached_property
    def dataset(self) -> DataLoader[int, Dataset | None]:
        data = self.services.data_reads
        scope = self.scope
        return nodes(lambda ids: data.datasets_by_ids(ids, scope), Dataset.from_row)

    @cached_property
    def model(self) -> DataLoader[int, Model | None]:
        data = self.services.data_reads
        scope = self.scope
        return nodes(lambda ids: data.models_by_ids(ids, scope), Model.from_row)

    @cached_property
    def trained_model(self) -> DataLoader[int, Model | None]:
        data = self.services.data_reads
        scope = self.scope
        return nodes(lambda ids: data.models_by_training_jobs(ids, scope), Model.from_row)

    @cached_property
    def produced_dataset(self) -> DataLoader[int, Dataset | None]:
        data = self.services.data_reads
        scope = self.scope
        return nodes(lambda ids: data.datasets_by_producers(ids, scope), Dataset.from_row)

    @cached_property
    def transfer(self) -> DataLoader[int, Transfer | None]:
        data = self.services.data_reads
        scope = self.scope
        return nodes(lambda ids: data.transfers_by_ids(ids, scope), Transfer.from_row)

    @cached_property
    def replicas(self) -> DataLoader[int, list[DatasetReplicaRow]]:
        data = self.services.data_reads
        return grouped(data.replicas, [])

    @cached_property
    def model_replicas(self) -> DataLoader[int, list[ModelReplicaRow]]:
        data = self.services.data_reads
        return grouped(data.model_replicas, [])

    @cached_property
    def capacity(self) -> CallPerKey[int, list[ComputeUnitInfo]]:
        return CallPerKey(self._capacity_of)

    @cached_property
    def stored_bytes(self) -> DataLoader[int, int]:
        return grouped(self.services.data.stored_bytes, 0)

    @cached_property
    def billing(self) -> BillingLoaders:
        return BillingLoaders(self.services, self.viewer)

    @cached_property
    def queue_length(self) -> DataLoader[int, int]:
        jobs = self.services.job_reads
        return complete(jobs.queue_lengths)

    @cached_property
    def webhooks(self) -> WebhookLoaders:
        return WebhookLoaders(self.services, self.viewer)

    @cached_property
    def service(self) -> DataLoader[int, InferenceService | None]:
        services, scope = self.services.service_reads, self.scope
        return nodes(lambda ids: services.by_ids(ids, scope), InferenceService.from_row)

    async def queue_positions(self) -> dict[int, int]:
        """The network queue's order, read once per request however many jobs ask."""
        if self._queue_positions is None:
            self._queue_positions = asyncio.ensure_future(self.services.job_reads.queue_positions())
        return await asyncio.shield(self._queue_positions)

    async def model_services(
        self, info: Info[Context, None], *, first: int | None, after: str | None, model_key: int
    ) -> Connection[InferenceService]:
        """A model's services (the data domain lies below the services')."""
        return await list_services(info, first=first, after=after, filter=None, model_key=model_key)

    async def jobs(
        self, info: Info[Context, None], *, first: int | None, after: str | None, filter: JobFilter | None, center_key: int
    ) -> Connection[Job]:
        """A center's jobs (the centers' domain lies below the jobs')."""
        return await list_jobs(info, first=first, after=after, filter=filter, center_key=center_key)

    async def _capacity_of(self, center_id: int) -> list[ComputeUnitInfo]:
        """A center's units, under its own deadline (a CenterFault when it does not answer)."""
        registry = self.services.centers
        center = registry.get(center_id)
        return [] if center is None else await registry.capacity_of(center)
