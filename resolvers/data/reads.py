"""What the face reads of datasets and models: by id, by training job, replicas, keyset lists."""

from __future__ import annotations

from collections.abc import Sequence

from resolvers.common.reading import Listing, Reader
from store import datasets as dataset_store
from store.tables import DatasetReplicaRow, DatasetRow, ModelReplicaRow, ModelRow


class DataReads(Reader):
    async def datasets_by_ids(self, ids: Sequence[int], scope: int | None) -> dict[int, DatasetRow]:
        return await self.read(lambda session: dataset_store.datasets_by_ids(session, ids, scope))

    async def models_by_ids(self, ids: Sequence[int], scope: int | None) -> dict[int, ModelRow]:
        return await self.read(lambda session: dataset_store.models_by_ids(session, ids, scope))

    async def models_by_training_jobs(self, job_ids: Sequence[int], scope: int | None) -> dict[int, ModelRow]:
        return await self.read(lambda session: dataset_store.models_by_training_jobs(session, job_ids, scope))

    async def datasets_by_producers(self, job_ids: Sequence[int], scope: int | None) -> dict[int, DatasetRow]:
        return await self.read(lambda session: dataset_store.datasets_by_producers(session, job_ids, scope))

    async def model_replicas(self, model_ids: Sequence[int]) -> dict[int, list[ModelReplicaRow]]:
        return await self.read(lambda session: dataset_store.replicas_by_models(session, model_ids))

    async def replicas(self, dataset_ids: Sequence[int]) -> dict[int, list[DatasetReplicaRow]]:
        return await self.read(lambda session: dataset_store.replicas_by_datasets(session, dataset_ids))

    async def datasets(self, scope: int | None, *, first: int, after: int | None) -> Listing[DatasetRow]:
        return await self.listing(
            lambda session: dataset_store.datasets_page(session, scope, first=first, after=after),
            lambda session: dataset_store.count_datasets(session, scope),
        )

    async def models(self, scope: int | None, *, first: int, after: int | None) -> Listing[ModelRow]:
        return await self.listing(
            lambda session: dataset_store.models_page(session, scope, first=first, after=after),
            lambda session: dataset_store.count_models(session, scope),
        )
