"""What a successful job leaves in ``AICN_OUTPUT_DIR``, kept as a model version and/or a dataset.

The job asked for it at submission (``outputModelName``, ``outputDatasetName``). When it
succeeds, the gateway measures the folder (size and checksum, ``digest.measure``) and
registers version ``job-<id>`` with the job as its producer and the job's center as the
first, verified replica (a ``file://`` URI of the folder on that center). Registration is
written in the same transaction as the SUCCEEDED event; the measuring is done before it
when the reconciler can (``prime``), so the transaction does not wait on the disk.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.centers.registry import CenterRegistry
from resolvers.data.areas import JobArea, file_uri
from resolvers.data.digest import Measured, measure
from store import datasets as dataset_store
from store.tables import DatasetReplicaRow, DatasetRow, JobRow, ModelReplicaRow, ModelRow
from store.types import utcnow

log = logging.getLogger(__name__)

#: replica states: a verified copy, and one being made (the only two ``replicas`` lists)
VERIFIED = "VERIFIED"
COPYING = "COPYING"


def wants_outputs(job: JobRow) -> bool:
    return bool(job.output_model_name or job.output_dataset_name)


def output_version(job: JobRow) -> str:
    return f"job-{job.id}"


class OutputCatcher:
    def __init__(self, registry: CenterRegistry) -> None:
        self.registry = registry
        self._measured: dict[int, Measured] = {}

    def area_of(self, job: JobRow) -> JobArea | None:
        center = self.registry.get(job.center_id) if job.center_id is not None else None
        if center is None or center.data_root is None:
            return None
        return JobArea(center.data_root, job.reference)

    async def prime(self, job: JobRow) -> None:
        """Measure the job's output folder now, outside any transaction (the job has just succeeded)."""
        if wants_outputs(job) and job.id not in self._measured:
            found = await self._measure(job)
            if found is not None:
                self._measured[job.id] = found

    async def _measure(self, job: JobRow) -> Measured | None:
        area = self.area_of(job)
        if area is None or not area.output_dir.is_dir():
            return None
        return await measure(area.output_dir)

    async def register(self, session: AsyncSession, job: JobRow) -> None:
        """Register what the job asked to keep; once (a second call finds its versions)."""
        if not wants_outputs(job):
            return
        area = self.area_of(job)
        measured = self._measured.pop(job.id, None) or await self._measure(job)
        if area is None or measured is None:
            log.warning("job %s succeeded but its center keeps no output folder; nothing registered", job.reference)
            return
        uri = file_uri(area.output_dir)
        now = utcnow()
        version = output_version(job)
        assert job.center_id is not None
        if job.output_model_name and await dataset_store.find_model(session, job.owner_id, job.output_model_name, version) is None:
            model = ModelRow(owner_id=job.owner_id, name=job.output_model_name, trained_by_job_id=job.id)
            await _keep(session, model, version, uri, measured)
            session.add(ModelReplicaRow(model_id=model.id, center_id=job.center_id, uri=uri, state=VERIFIED, verified_at=now))
        if job.output_dataset_name and await dataset_store.find_dataset(session, job.owner_id, job.output_dataset_name, version) is None:
            dataset = DatasetRow(owner_id=job.owner_id, name=job.output_dataset_name, produced_by_job_id=job.id)
            await _keep(session, dataset, version, uri, measured)
            session.add(DatasetReplicaRow(dataset_id=dataset.id, center_id=job.center_id, uri=uri, state=VERIFIED, verified_at=now))


async def _keep(session: AsyncSession, row: ModelRow | DatasetRow, version: str, uri: str, measured: Measured) -> None:
    row.version, row.uri, row.size_bytes, row.checksum = version, uri, measured.size_bytes, measured.checksum
    session.add(row)
    await session.flush()
