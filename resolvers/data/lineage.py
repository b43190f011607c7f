"""Lineage the gateway records itself: the model a successful job was asked to produce."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from store import datasets as dataset_store
from store.tables import JobRow, ModelRow


async def register_output_model(session: AsyncSession, job: JobRow) -> None:
    """Register ``job.output_model_name`` as trained by the job, once, when the job succeeds.

    Its URI names the job's output; register a new version with the real location once the
    model has been copied somewhere lasting.
    """
    if not job.output_model_name:
        return
    version = f"job-{job.id}"
    if await dataset_store.find_model(session, job.owner_id, job.output_model_name, version) is not None:
        return
    session.add(
        ModelRow(
            owner_id=job.owner_id,
            name=job.output_model_name,
            version=version,
            uri=f"aicn://jobs/{job.reference}/output",
            trained_by_job_id=job.id,
        )
    )
